"""Spooling a call's audio to disk as it arrives, and finishing it as a WAV.

Plain Python, no Django. The spool file *is* the WAV: `wave` writes a header
up front and patches its sizes at close, so finishing a call is a rename,
whatever its length, and memory never grows with the call. A JSON file
beside each spool holds what is needed to rebuild the recording without the
process that wrote it.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import wave
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

SAMPLE_WIDTH = 2  # 16-bit signed little-endian PCM
CHANNELS = 1
FRAME_SECONDS = 0.020  # Vonage sends one message per 20 ms
WAV_HEADER_SIZE = 44  # what `wave` writes for PCM
_WRITE_BUFFER = 64 * 1024


def frame_bytes(sample_rate: int) -> int:
    """Bytes in one 20 ms frame: 640 at 16 kHz."""
    return int(sample_rate * FRAME_SECONDS) * SAMPLE_WIDTH * CHANNELS


@dataclass(frozen=True)
class SpoolMeta:
    """Written beside the spool when it opens, so a crash leaves enough to recover."""

    call_uuid: str
    conversation_uuid: str
    sample_rate: int
    started_at: str  # ISO 8601, UTC
    audio_file: str


@dataclass(frozen=True)
class FinishedSpool:
    """A closed spool: a complete WAV file on disk and what went into it."""

    path: Path
    meta_path: Path
    meta: SpoolMeta
    sample_count: int
    frame_count: int  # binary WebSocket messages received
    bytes_received: int
    odd_byte_carries: int  # frames that ended mid-sample and were joined to the next
    trailing_byte_dropped: bool  # the call ended with half a sample
    ended_at: datetime

    @property
    def duration_seconds(self) -> float:
        return self.sample_count / self.meta.sample_rate

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def discard(self) -> None:
        """Remove the spool and its metadata (a call with no audio keeps nothing)."""
        self.path.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)


def _safe_name_part(value: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in value)[:80] or "call"


class SpoolWriter:
    """Streams one call's PCM frames into a WAV file in the spool directory."""

    def __init__(
        self,
        spool_dir: Path,
        *,
        call_uuid: str,
        conversation_uuid: str,
        sample_rate: int,
        flush_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        spool_dir.mkdir(parents=True, exist_ok=True)
        started = datetime.now(UTC)
        # Unique per socket: a reconnect of the same call gets a file of its own.
        stem = "{}-{}-{}".format(
            _safe_name_part(call_uuid or conversation_uuid),
            started.strftime("%Y%m%dT%H%M%S"),
            secrets.token_hex(4),
        )
        self.path = spool_dir / f"{stem}.wav"
        self.meta_path = spool_dir / f"{stem}.json"
        self.meta = SpoolMeta(
            call_uuid=call_uuid,
            conversation_uuid=conversation_uuid,
            sample_rate=sample_rate,
            started_at=started.isoformat(),
            audio_file=self.path.name,
        )
        # "x": a spool is never opened over another one.
        with open(self.meta_path, "x") as meta_file:
            json.dump(asdict(self.meta), meta_file)
        self._file = open(self.path, "xb", buffering=_WRITE_BUFFER)  # noqa: SIM115
        self._wav = wave.open(self._file, "wb")  # noqa: SIM115
        self._wav.setnchannels(CHANNELS)
        self._wav.setsampwidth(SAMPLE_WIDTH)
        self._wav.setframerate(sample_rate)
        self._clock = clock
        self._flush_seconds = flush_seconds
        self._next_flush = clock() + flush_seconds
        self._carry = b""
        self._closed: FinishedSpool | None = None
        self.sample_count = 0
        self.frame_count = 0
        self.bytes_received = 0
        self.odd_byte_carries = 0

    @property
    def sample_rate(self) -> int:
        return self.meta.sample_rate

    def write(self, frame: bytes) -> None:
        """Append one binary frame; an odd trailing byte waits for the next frame."""
        self.frame_count += 1
        self.bytes_received += len(frame)
        if self._carry:
            frame = self._carry + frame
            self._carry = b""
        if len(frame) & 1:
            self._carry = frame[-1:]
            frame = frame[:-1]
            self.odd_byte_carries += 1
        self._wav.writeframesraw(frame)
        self.sample_count += len(frame) // SAMPLE_WIDTH
        now = self._clock()
        if now >= self._next_flush:
            self._file.flush()
            self._next_flush = now + self._flush_seconds

    def close(self) -> FinishedSpool:
        """Patch the WAV header with the final sizes and sync the file to disk."""
        if self._closed is not None:
            return self._closed
        self._wav.close()  # writes the final sizes into the header
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._closed = FinishedSpool(
            path=self.path,
            meta_path=self.meta_path,
            meta=self.meta,
            sample_count=self.sample_count,
            frame_count=self.frame_count,
            bytes_received=self.bytes_received,
            odd_byte_carries=self.odd_byte_carries,
            trailing_byte_dropped=bool(self._carry),
            ended_at=datetime.now(UTC),
        )
        return self._closed
