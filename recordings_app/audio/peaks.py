"""Waveform peaks of a finished recording, and the level of a live frame.

Plain Python and numpy, no Django. Peaks are computed once, when a
recording is stored, so no page load ever reads the audio.
"""

from __future__ import annotations

import math
import wave
from typing import BinaryIO

import numpy as np

from .pcm import CHANNELS, SAMPLE_WIDTH

PEAK_SLICES = 1000  # bars in a recording's waveform
PEAK_SCALE = 1000  # a full-scale sample
# Samples read at a time for the waveform (2 MB): an hour-long call costs
# no more memory than a minute-long one.
_PEAK_CHUNK_SAMPLES = 1024 * 1024


def frame_level(frame: bytes) -> float:
    """How loud a frame is, 0 (silence, or -60 dBFS) to 1 (full scale), for a meter.

    Called a few times a second per call for the live dashboard, never per frame.
    """
    samples = np.frombuffer(frame[: len(frame) & ~1], dtype="<i2")
    if not samples.size:
        return 0.0
    peak = int(np.abs(samples.astype(np.int32)).max())
    if peak == 0:
        return 0.0
    decibels = 20 * math.log10(peak / 32768)
    return round(max(0.0, 1 + decibels / 60), 3)


def wav_peaks(stream: BinaryIO, *, slices: int = PEAK_SLICES) -> list[int]:
    """The waveform of a 16-bit mono WAV: the loudest sample of each slice, 0-1000.

    min(slices, samples) values (fewer for very short audio), read a
    chunk at a time from any file-like object, so it works on storage files.
    """
    try:
        wav = wave.open(stream, "rb")  # noqa: SIM115
    except (wave.Error, EOFError) as error:
        raise ValueError(f"not a PCM WAV file ({error or 'too short'})") from None
    with wav:
        if wav.getsampwidth() != SAMPLE_WIDTH or wav.getnchannels() != CHANNELS:
            raise ValueError("not 16-bit mono audio")
        total = wav.getnframes()
        count = min(slices, total)
        if count == 0:
            return []
        # Slice k holds samples bounds[k] to bounds[k + 1]: sizes differ by
        # at most one, and there are exactly `count` of them.
        bounds = np.arange(count + 1, dtype=np.int64) * total // count
        peaks: list[int] = []
        buffered = np.empty(0, dtype="<i2")  # starts at the next slice
        offset = 0  # where `buffered` starts in the file, in samples
        while len(peaks) < count and (data := wav.readframes(_PEAK_CHUNK_SAMPLES)):
            samples = np.frombuffer(data[: len(data) & ~1], dtype="<i2")
            buffered = np.concatenate([buffered, samples]) if buffered.size else samples
            done = len(peaks)
            whole = int(np.searchsorted(bounds, offset + len(buffered), "right")) - 1
            if whole > done:
                starts = bounds[done : whole + 1] - offset
                peaks.extend(_loudest(buffered[: starts[-1]], starts[:-1]))
                buffered = buffered[starts[-1] :]
                offset += int(starts[-1])
        if buffered.size and len(peaks) < count:  # a file shorter than its header
            peaks.extend(_loudest(buffered, np.zeros(1, dtype=np.int64)))
        return peaks


def _loudest(samples: np.ndarray, starts: np.ndarray) -> list[int]:
    """Max |sample| of each slice from starts[k] to starts[k + 1], 0-1000."""
    # Highs and lows in int16, widened only per slice: -32768 has no int16 abs.
    highs = np.maximum.reduceat(samples, starts).astype(np.int32)
    lows = np.minimum.reduceat(samples, starts).astype(np.int32)
    loudest = np.maximum(highs, -lows)
    scaled = np.minimum(np.rint(loudest * PEAK_SCALE / 32768), PEAK_SCALE)
    return scaled.astype(int).tolist()
