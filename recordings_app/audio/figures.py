"""A recording's figures: one definition, filled once from its spool.

The Recording row is made from these (Recording.from_figures), and the
spool's "stored" note keeps the same values, so that recovery rebuilds the
very row the socket would have saved. Plain Python, no Django.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

_TIMES = ("started_at", "ended_at")


@dataclass(frozen=True)
class RecordingFigures:
    """What one socket's audio is, in numbers: its format, length, gaps, hashes."""

    sample_rate: int
    sample_count: int  # 16-bit mono samples in the WAV
    frame_count: int  # binary WebSocket messages received
    size_bytes: int  # of the file as stored (before sealing: what a download gives)
    started_at: datetime
    ended_at: datetime
    # Defaults as the model's: a "stored" note written before a figure was
    # kept still recovers.
    expected_frame_count: int = 0  # from the socket's wall-clock length
    gap_count: int = 0  # pauses between frames longer than one frame
    longest_gap_ms: int = 0
    odd_byte_carries: int = 0  # frames that ended mid-sample, joined to the next
    paused_seconds: float = 0.0  # replaced by silence while recording was paused
    ended_paused: bool = False  # the call ended while recording was paused
    sha256: str = ""  # of the file as stored (before sealing: what a download gives)
    # Of the 16-bit PCM as recorded: the same in WAV and FLAC, so it proves a
    # conversion lost nothing.
    pcm_sha256: str = ""
    format: str = "wav"  # audio.codecs.FORMATS
    # The data key sealing the file (audio.sealing), wrapped; blank: not sealed.
    key_id: str = ""
    wrapped_key: str = ""
    recovered: bool = False  # rebuilt from the spool after the writer died
    # The waveform (audio.peaks); None in a note written before waveforms
    # were kept: compute it from the stored file.
    peaks: list[int] | None = None

    @property
    def duration_seconds(self) -> float:
        return self.sample_count / self.sample_rate

    @classmethod
    def names(cls) -> list[str]:
        """The figures' names: the Recording model has a field for each."""
        return [figure.name for figure in fields(cls)]

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies the peaks one by one, a
        # millisecond of every call's end.
        data = {name: getattr(self, name) for name in self.names()}
        if self.peaks is not None:
            data["peaks"] = list(self.peaks)
        for name in _TIMES:
            data[name] = data[name].isoformat()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordingFigures:
        """Read figures back from to_json() (extra keys are ignored)."""
        known = {name: data[name] for name in cls.names() if name in data}
        for name in _TIMES:
            known[name] = datetime.fromisoformat(known[name])
        return cls(**known)
