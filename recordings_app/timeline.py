"""A call's timeline: its events placed on its recordings' time axis.

No ORM: it takes the rows the view read, and says where each event falls
and which ones get a marker on the waveform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import CallEvent, Recording


# Events worth a marker on the waveform; the table lists every event.
_MARKED = {
    "ringing": "Ringing",
    "answered": "Answered",
    "completed": "Call completed",
    "websocket:dtmf": "Key pressed",
    "recording:paused": "Recording paused",
    "recording:resumed": "Recording resumed",
    "recording:ended-paused": "Call ended while paused",
}


@dataclass
class TimelineEntry:
    """One event on the call's timeline, placed on a recording's time axis."""

    event: CallEvent
    recording_number: int | None = None  # 1-based; None when there is no audio
    seconds: float | None = None  # into that recording; < 0 before it began

    @property
    def marked(self) -> bool:
        return self.recording_number is not None and (
            self.event.status in _MARKED and not self.event.is_websocket_leg
        )

    @property
    def label(self) -> str:
        label = _MARKED.get(self.event.status, self.event.status)
        if digit := self.event.dtmf_digit:
            return f"{label}: {digit}"
        if hidden := self.event.payload.get("digit_hidden"):
            return f"{label} (hidden: {hidden})"
        if by := self.event.payload.get("by"):
            return f"{label} by {by}"
        return label

    @property
    def kind(self) -> str:
        """A CSS class for the marker: dtmf, paused, resumed or call."""
        status = self.event.status
        if status == "websocket:dtmf":
            return "dtmf"
        if status.startswith("recording:"):
            return "resumed" if status == "recording:resumed" else "paused"
        return "call"


@dataclass
class RecordingPanel:
    """A recording with the timeline markers drawn on its waveform."""

    recording: Recording
    number: int
    markers: list[TimelineMarker] = field(default_factory=list)


@dataclass(frozen=True)
class TimelineMarker:
    entry: TimelineEntry
    seconds: float  # clamped into the recording
    percent: float


def call_timeline(
    recordings: Sequence[Recording], events: Sequence[CallEvent]
) -> tuple[list[RecordingPanel], list[TimelineEntry]]:
    """Put each event on the time axis of the recording it happened in.

    An event belongs to the last recording that had started by then (the
    first, for events before any audio): its offset is event.timestamp minus
    that recording's start, so the waveform and the table share one axis.
    """
    panels = [
        RecordingPanel(recording=recording, number=number)
        for number, recording in enumerate(recordings, start=1)
    ]
    entries = []
    for event in events:
        entry = TimelineEntry(event=event)
        if panels:
            panel = panels[0]
            for candidate in panels:
                if candidate.recording.started_at <= event.timestamp:
                    panel = candidate
            recording = panel.recording
            entry.recording_number = panel.number
            entry.seconds = (event.timestamp - recording.started_at).total_seconds()
            if entry.marked:
                length = recording.duration_seconds
                seconds = min(max(entry.seconds, 0.0), length)
                panel.markers.append(
                    TimelineMarker(
                        entry=entry,
                        seconds=round(seconds, 2),
                        percent=round(100 * seconds / length, 3) if length else 0.0,
                    )
                )
        entries.append(entry)
    return panels, entries
