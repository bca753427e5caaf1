"""The audio we take: 16-bit signed little-endian mono PCM in 20 ms frames."""

from __future__ import annotations

SAMPLE_WIDTH = 2  # bytes per sample
CHANNELS = 1
FRAME_SECONDS = 0.020  # Vonage sends one message per 20 ms
# The rates an NCCO may ask Vonage to stream at.
SUPPORTED_SAMPLE_RATES = (8000, 16000, 24000)
WAV_HEADER_SIZE = 44  # what `wave` writes for PCM (and audio.codecs.wav_header)


def frame_bytes(sample_rate: int) -> int:
    """Bytes in one 20 ms frame: 640 at 16 kHz."""
    return int(sample_rate * FRAME_SECONDS) * SAMPLE_WIDTH * CHANNELS
