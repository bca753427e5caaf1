"""The formats a recording is stored in: WAV, FLAC (lossless) and Ogg/Opus (lossy).

Plain Python, no Django. Encoding and decoding go through libsndfile
(`soundfile`); nothing here is a codec of its own. Everything works a block
at a time, so an hour-long call costs no more memory than a minute.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import soundfile

from .pcm import CHANNELS, SAMPLE_WIDTH
from .spool import private_file

WAV, FLAC, OPUS = "wav", "flac", "opus"
FORMATS = (WAV, FLAC, OPUS)
LOSSLESS = (WAV, FLAC)
CONTENT_TYPES = {WAV: "audio/wav", FLAC: "audio/flac", OPUS: "audio/ogg"}
EXTENSIONS = {WAV: "wav", FLAC: "flac", OPUS: "opus"}
_SOUNDFILE_FORMATS = {
    WAV: ("WAV", "PCM_16"),
    FLAC: ("FLAC", "PCM_16"),
    OPUS: ("OGG", "OPUS"),
}
# libsndfile maps 0 (best) to 1 (smallest) onto Opus' bitrate: 0.94 gives
# about 20 kbit/s on 16 kHz speech (bench/formats.py), clear speech at a
# sixth of FLAC's size.
_COMPRESSION_LEVELS = {FLAC: 0.8, OPUS: 0.94}
# Samples per block (2 MB of PCM).
BLOCK_SAMPLES = 1024 * 1024


class UnreadableAudio(ValueError):
    """Stored audio that libsndfile cannot decode; the message says why."""


def encode(wav_path: Path, out_path: Path, *, to: str) -> None:
    """Write a 16-bit mono WAV file as `to` (wav, flac or opus), block by block."""
    container, subtype = _SOUNDFILE_FORMATS[to]
    with soundfile.SoundFile(wav_path) as source:
        options = {}
        if to in _COMPRESSION_LEVELS:
            options["compression_level"] = _COMPRESSION_LEVELS[to]
        with soundfile.SoundFile(
            out_path,
            "w",
            samplerate=source.samplerate,
            channels=CHANNELS,
            format=container,
            subtype=subtype,
            **options,
        ) as target:
            for block in source.blocks(BLOCK_SAMPLES, dtype="int16"):
                target.write(block)


# A lossy decoder may end a few samples short of what was recorded (the
# encoder's padding); more missing than this is damage, never padded over.
_SHORT_TOLERANCE_SECONDS = 0.1


class _Watched:
    """A stream handed to libsndfile, remembering what its reads raised.

    libsndfile calls read() from C: an exception there (a sealed chunk that
    fails its tag, a storage error) is swallowed and looks like the end of
    the file. Kept here, it is raised again after the decoder returns.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.failure: BaseException | None = None

    def _guard(self, method, *args):
        try:
            return method(*args)
        except Exception as error:
            self.failure = self.failure or error
            raise

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size)
        except Exception as error:
            # Kept, and the end of the file for libsndfile: raised once it returns.
            self.failure = self.failure or error
            return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._guard(self._stream.seek, offset, whence)

    def tell(self) -> int:
        return self._guard(self._stream.tell)

    def check(self) -> None:
        if self.failure is not None:
            raise self.failure


def pcm_blocks(
    stream: BinaryIO, *, sample_count: int, start: int = 0
) -> Iterator[bytes]:
    """The 16-bit little-endian PCM of a stored file, exactly sample_count
    samples (from sample `start` on: a seek, for an HTTP Range).

    A lossy decoder may give a few samples more or fewer than were recorded:
    the audio is cut, or padded with at most 0.1 s of silence, to the
    recorded length. A file that ends sooner, or fails to read, raises
    UnreadableAudio (or the stream's own error): never silence for audio.
    """
    watched = _Watched(stream)
    try:
        decoder = soundfile.SoundFile(watched)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        watched.check()
        raise UnreadableAudio(f"not audio libsndfile can read ({error})") from None
    remaining = sample_count - start
    with decoder:
        tolerance = int(decoder.samplerate * _SHORT_TOLERANCE_SECONDS)
        if start:
            try:
                decoder.seek(start)
            except (soundfile.LibsndfileError, RuntimeError) as error:
                watched.check()
                raise UnreadableAudio(
                    f"cannot seek in the stored audio ({error})"
                ) from None
        while remaining > 0:
            try:
                block = decoder.read(min(BLOCK_SAMPLES, remaining), dtype="int16")
            except (soundfile.LibsndfileError, RuntimeError) as error:
                watched.check()
                raise UnreadableAudio(
                    f"the stored audio breaks off ({error})"
                ) from None
            watched.check()
            if not len(block):
                break
            remaining -= len(block)
            yield block.astype("<i2", copy=False).tobytes()
    if remaining > tolerance:
        raise UnreadableAudio(
            f"the stored file holds {sample_count - remaining} of the "
            f"{sample_count} samples recorded: it is damaged or cut short"
        )
    if remaining > 0:
        yield bytes(remaining * SAMPLE_WIDTH)


def wav_header(*, sample_rate: int, sample_count: int) -> bytes:
    """The 44-byte header of a 16-bit mono PCM WAV of sample_count samples."""
    data_size = sample_count * SAMPLE_WIDTH
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_size,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        CHANNELS,
        sample_rate,
        sample_rate * CHANNELS * SAMPLE_WIDTH,
        CHANNELS * SAMPLE_WIDTH,
        SAMPLE_WIDTH * 8,
        b"data",
        data_size,
    )


def decode_to_wav(
    stream: BinaryIO, wav_path: Path, *, sample_rate: int, sample_count: int
) -> None:
    """Write a stored file's audio out as a 16-bit mono WAV (for peaks, archiving)."""
    with open(wav_path, "xb", opener=private_file) as out:
        out.write(wav_header(sample_rate=sample_rate, sample_count=sample_count))
        for block in pcm_blocks(stream, sample_count=sample_count):
            out.write(block)
