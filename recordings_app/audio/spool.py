"""The spool: a call's audio on disk as it arrives, finished as a WAV.

The only module that reads or writes spool files and their metadata.
Plain Python, no Django. The spool file *is* the WAV: `wave` writes a header
up front and patches its sizes at close, so finishing a call is a rename,
whatever its length, and memory never grows with the call. A JSON file
beside each spool holds what is needed to rebuild the recording without the
process that wrote it; the writer holds a lock on the spool while the call
is live, so recovery never takes a spool from under a running call.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import struct
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .figures import RecordingFigures
from .hashing import wav_hashes
from .pcm import CHANNELS, FRAME_SECONDS, SAMPLE_WIDTH, WAV_HEADER_SIZE
from .peaks import wav_peaks

logger = logging.getLogger(__name__)

# Frames arriving further apart than this left at least one frame's hole.
GAP_SECONDS = 2 * FRAME_SECONDS

# Holds at most one flush interval of audio (0.5 s at 24 kHz is 24 KB):
# memory per call stays small.
_WRITE_BUFFER = 32 * 1024


class SpoolInUse(Exception):
    """A live call still writes this spool."""


class SpoolGone(Exception):
    """Another process finished this spool a moment ago."""


# A call's audio is personal data: only the server's own user reads it.
PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700


def private_file(path: str, flags: int) -> int:
    """An `opener` for open(): a new file is created readable by its owner only."""
    return os.open(path, flags, PRIVATE_FILE)


@contextlib.contextmanager
def finishing_lock(meta_path: Path) -> Iterator[None]:
    """Only one process at a time turns a spool into a recording.

    Held on the metadata file while a spool is stored: a recovery run never
    races the socket that is finishing it, nor another recovery run.
    """
    try:
        handle = open(meta_path)  # noqa: SIM115
    except FileNotFoundError:
        raise SpoolGone(meta_path.name) from None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpoolInUse(meta_path.name) from None
        if not meta_path.exists():  # finished between our open and our lock
            raise SpoolGone(meta_path.name)
        yield


class BrokenSpool(Exception):
    """A spool that cannot be turned into a recording; the message says why."""


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
    paused_samples: int = 0  # replaced by silence while recording was paused
    ended_paused: bool = False  # the call ended while recording was paused
    expected_frame_count: int = 0  # from the socket's wall-clock length
    gap_count: int = 0  # pauses between frames longer than one frame
    longest_gap_ms: int = 0
    recovered: bool = False  # rebuilt from the spool after the writer died

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

    def figures(self) -> RecordingFigures:
        """The recording's figures; reads the whole file (hashes, waveform)."""
        file_hash, pcm_hash = wav_hashes(self.path)
        return RecordingFigures(
            sample_rate=self.meta.sample_rate,
            sample_count=self.sample_count,
            frame_count=self.frame_count,
            expected_frame_count=self.expected_frame_count,
            gap_count=self.gap_count,
            longest_gap_ms=self.longest_gap_ms,
            size_bytes=self.size_bytes,
            odd_byte_carries=self.odd_byte_carries,
            paused_seconds=self.paused_samples / self.meta.sample_rate,
            ended_paused=self.ended_paused,
            sha256=file_hash,
            pcm_sha256=pcm_hash,
            recovered=self.recovered,
            started_at=datetime.fromisoformat(self.meta.started_at),
            ended_at=self.ended_at,
            peaks=self.peaks(),
        )

    def peaks(self) -> list[int]:
        """The waveform, computed once here so no page load ever reads the audio."""
        try:
            with open(self.path, "rb") as audio:
                return wav_peaks(audio)
        except ValueError:  # a header recovery could not make sense of
            logger.warning("%s: no waveform, the WAV header is unreadable", self.path)
            return []


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
        spool_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
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
        with open(self.meta_path, "x", opener=private_file) as meta_file:
            json.dump(asdict(self.meta), meta_file)
        self._file = open(  # noqa: SIM115
            self.path, "xb", buffering=_WRITE_BUFFER, opener=private_file
        )
        # Held until close (or the process dies): recovery skips locked spools.
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._wav = wave.open(self._file, "wb")  # noqa: SIM115
        self._wav.setnchannels(CHANNELS)
        self._wav.setsampwidth(SAMPLE_WIDTH)
        self._wav.setframerate(sample_rate)
        self._clock = clock
        self._flush_seconds = flush_seconds
        self._opened_at = self._last_frame_at = clock()
        self._next_flush = self._opened_at + flush_seconds
        self.gap_count = 0
        self.longest_gap = 0.0
        self._carry = b""
        self._closed: FinishedSpool | None = None
        self.sample_count = 0
        self.frame_count = 0
        self.bytes_received = 0
        self.odd_byte_carries = 0
        # While paused (card details, say) audio is replaced by silence of
        # the same length: nothing sensitive is kept, the timeline stays true.
        self.paused = False
        self.paused_samples = 0

    @property
    def sample_rate(self) -> int:
        return self.meta.sample_rate

    @property
    def seconds(self) -> float:
        return self.sample_count / self.meta.sample_rate

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
        if self.paused:
            frame = bytes(len(frame))
            self.paused_samples += len(frame) // SAMPLE_WIDTH
        self._wav.writeframesraw(frame)
        self.sample_count += len(frame) // SAMPLE_WIDTH
        now = self._clock()
        gap = now - self._last_frame_at
        self._last_frame_at = now
        if gap > GAP_SECONDS and self.frame_count > 1:
            self.gap_count += 1
            self.longest_gap = max(self.longest_gap, gap)
        if now >= self._next_flush:
            self._file.flush()
            self._next_flush = now + self._flush_seconds

    def close(self) -> FinishedSpool:
        """Patch the WAV header with the final sizes and sync the file to disk."""
        if self._closed is not None:
            return self._closed
        elapsed = self._clock() - self._opened_at
        try:
            self._wav.close()  # writes the final sizes into the header
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()  # and releases the lock
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
            paused_samples=self.paused_samples,
            ended_paused=self.paused,
            expected_frame_count=round(elapsed / FRAME_SECONDS),
            gap_count=self.gap_count,
            longest_gap_ms=round(self.longest_gap * 1000),
        )
        return self._closed


def orphaned_spools(spool_dir: Path, *, grace_seconds: float) -> list[Path]:
    """Metadata files of spools nobody has written for grace_seconds."""
    if not spool_dir.is_dir():
        return []
    cutoff = time.time() - grace_seconds
    orphans = []
    for meta_path in sorted(spool_dir.glob("*.json")):
        audio = meta_path.with_suffix(".wav")
        newest = max(
            (p.stat().st_mtime for p in (meta_path, audio) if p.exists()), default=0
        )
        if newest <= cutoff:
            orphans.append(meta_path)
    return orphans


def read_meta(meta_path: Path) -> dict:
    try:
        return json.loads(meta_path.read_text())
    except (OSError, ValueError) as error:
        raise BrokenSpool(f"{meta_path.name}: unreadable metadata ({error})") from None


def note_stored(meta_path: Path, *, name: str, figures: RecordingFigures) -> None:
    """Say in the spool's metadata that its file is now in storage, as `name`.

    Written before the row is saved: if the row fails, recovery finds the
    file by this note and saves the row from the same figures.
    """
    meta = json.loads(meta_path.read_text())
    meta["stored"] = {"name": name, **figures.to_json()}
    meta_path.write_text(json.dumps(meta))


def stored_note(meta: dict) -> tuple[str, RecordingFigures] | None:
    """The storage name and figures note_stored() wrote, if it did."""
    stored = meta.get("stored")
    if not stored:
        return None
    # Notes written before the figures had started_at take the spool's.
    figures = RecordingFigures.from_json({"started_at": meta["started_at"]} | stored)
    return stored["name"], figures


def recover_spool(meta_path: Path) -> FinishedSpool:
    """Rebuild a finished spool from a writer that died mid-call.

    The header's sizes are stale (written before the crash); the data is
    everything after it, to the last whole sample, and the header is
    patched in place to say so.
    """
    raw = read_meta(meta_path)
    try:
        meta = SpoolMeta(**raw | {"audio_file": meta_path.with_suffix(".wav").name})
    except TypeError:
        raise BrokenSpool(f"{meta_path.name}: metadata lacks fields") from None
    path = meta_path.with_suffix(".wav")
    if not path.exists():
        raise BrokenSpool(f"{path.name} is missing")
    with open(path, "r+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpoolInUse(path.name) from None
        size = os.fstat(handle.fileno()).st_size
        data_size = max(size - WAV_HEADER_SIZE, 0) // SAMPLE_WIDTH * SAMPLE_WIDTH
        if data_size:
            header = handle.read(WAV_HEADER_SIZE)
            if (
                header[:4] != b"RIFF"
                or header[8:12] != b"WAVE"
                or header[36:40] != b"data"
            ):
                raise BrokenSpool(f"{path.name} does not start with a WAV header")
            handle.truncate(WAV_HEADER_SIZE + data_size)
            handle.seek(4)
            handle.write(struct.pack("<I", 36 + data_size))
            handle.seek(40)
            handle.write(struct.pack("<I", data_size))
            handle.flush()
            os.fsync(handle.fileno())
        mtime = os.fstat(handle.fileno()).st_mtime
    sample_count = data_size // SAMPLE_WIDTH
    frame_samples = int(meta.sample_rate * FRAME_SECONDS)
    started = datetime.fromisoformat(meta.started_at)
    ended = datetime.fromtimestamp(mtime, UTC)
    return FinishedSpool(
        path=path,
        meta_path=meta_path,
        meta=meta,
        sample_count=sample_count,
        frame_count=-(-sample_count // frame_samples),
        bytes_received=data_size,
        odd_byte_carries=0,
        trailing_byte_dropped=False,
        ended_at=ended,
        expected_frame_count=round((ended - started).total_seconds() / FRAME_SECONDS),
        recovered=True,
    )
