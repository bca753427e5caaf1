"""A call's timeline: its events said in words, placed on its recordings' axis.

No ORM: it takes the rows the view read, merges what the caller's leg and
the recording's own leg both said, names each event for a person (not by
Vonage's status), and says which ones get a marker on the waveform and
which markers share a moment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import CallEvent, Recording


# The caller's leg, by Vonage's status.
_CALL_LABELS = {
    "started": "Call started",
    "ringing": "Ringing",
    "answered": "Answered",
    "completed": "Call ended",
    "busy": "Line busy",
    "cancelled": "Cancelled by the caller",
    "timeout": "Not answered in time",
    "unanswered": "Not answered",
    "rejected": "Rejected",
    "failed": "Failed",
    "disconnected": "Recording connection dropped",
    "human": "A person answered",
    "machine": "A machine answered",
    "transfer": "Transferred",
    "error": "Vonage reported an error",
    "record": "Vonage's own recording is ready",
    "input": "Caller input",
    "notify": "Notification",
}
# The websocket leg Vonage makes to reach us: the recording's connection.
_RECORDING_LEG_LABELS = {
    "started": "Recording connection started",
    "ringing": "Recording connection ringing",
    "answered": "Recording connection answered",
    "completed": "Recording connection ended",
    "disconnected": "Recording connection dropped",
}
# Text messages on the audio socket, and what staff did.
_OTHER_LABELS = {
    "websocket:connected": "Recording started",
    "websocket:dtmf": "Key pressed",
    "websocket:cleared": "Queued audio cleared",
    "websocket:notify": "Notification played",
    "websocket:invalid": "Unreadable message on the audio socket",
    "websocket:unknown": "Unknown message on the audio socket",
    "recording:paused": "Paused",
    "recording:resumed": "Resumed",
    "recording:ended-paused": "Call ended while paused",
    "legal-hold:on": "Legal hold placed",
    "legal-hold:off": "Legal hold released",
}
# Events worth a marker on the waveform (the table lists every event).
_MARKED = {
    "ringing",
    "answered",
    "completed",
    "human",
    "machine",
    "input",
    "websocket:dtmf",
    "recording:paused",
    "recording:resumed",
    "recording:ended-paused",
}
# A socket leg's event and the caller's of the same status this close in
# time say the same thing ("started" twice): one row.
MERGE_SECONDS = 10.0
# Markers this close are one moment: one marker that lists them all.
SAME_MOMENT_SECONDS = 0.5
# Vonage's fields every event has: not worth a "details" cell.
_COMMON_FIELDS = {
    "uuid",
    "call_uuid",
    "conversation_uuid",
    "from",
    "to",
    "timestamp",
    "direction",
    "status",
    "event",
    "headers",
}
_DETAIL_CHARACTERS = 160


@dataclass
class TimelineEntry:
    """One row of the call's timeline, placed on a recording's time axis."""

    event: CallEvent
    merged: list[CallEvent] = field(default_factory=list)  # the same, other legs
    recording_number: int | None = None  # 1-based; None when there is no audio
    seconds: float | None = None  # into that recording; < 0 before it began

    @property
    def marked(self) -> bool:
        return self.recording_number is not None and (
            _status(self.event) in _MARKED and not self.event.is_websocket_leg
        )

    @property
    def label(self) -> str:
        return event_label(self.event)

    @property
    def detail(self) -> str:
        return event_detail(self.event)

    @property
    def symbol(self) -> str:
        """What the marker shows: the key pressed, if one was."""
        if self.event.status == "websocket:dtmf":
            return self.event.dtmf_digit
        return ""

    @property
    def kind(self) -> str:
        """A CSS class for the marker: dtmf, paused, resumed or call."""
        status = _status(self.event)
        if status in ("websocket:dtmf", "input"):
            return "dtmf"
        if status.startswith("recording:"):
            return "resumed" if status == "recording:resumed" else "paused"
        return "call"


@dataclass
class RecordingPanel:
    """A recording with the timeline's markers drawn on its waveform."""

    recording: Recording
    number: int
    markers: list[TimelineMarker] = field(default_factory=list)


@dataclass
class TimelineMarker:
    """Events at one moment of a recording: one marker; several, a list."""

    entries: list[TimelineEntry]
    seconds: float  # clamped into the recording
    percent: float

    @property
    def entry(self) -> TimelineEntry:
        return self.entries[0]

    @property
    def kind(self) -> str:
        return self.entry.kind if len(self.entries) == 1 else "group"


def event_label(event: CallEvent) -> str:
    """What happened, in words: "Ringing", "Key pressed: 4", "Paused by alice"."""
    status, payload = _status(event), event.payload
    if event.is_websocket_leg and status in _RECORDING_LEG_LABELS:
        return _RECORDING_LEG_LABELS[status]
    if status == "websocket:dtmf":
        if hidden := payload.get("digit_hidden"):
            return f"Key pressed (hidden: {hidden})"
        return f"Key pressed: {event.dtmf_digit}"
    if status == "input":
        return _input_label(payload)
    label = _CALL_LABELS.get(status) or _OTHER_LABELS.get(status)
    if label is None:
        label = status.replace("_", " ").replace(":", ": ").capitalize() or "Event"
    if by := payload.get("by"):
        return f"{label} by {by}"
    return label


def event_detail(event: CallEvent) -> str:
    """What the event carries that its label does not say."""
    status, payload = _status(event), event.payload
    if status == "websocket:dtmf":
        return _held(payload.get("duration"))
    if status == "completed" and not event.is_websocket_leg:
        return _call_end_detail(payload)
    if status in ("unanswered", "rejected", "failed", "timeout", "busy"):
        return _words(payload.get("detail") or payload.get("reason"))
    if status == "error":
        return _words(payload.get("reason"))
    if status == "machine" or status == "human":
        return _words(payload.get("sub_state"))
    if status == "record":
        return _record_detail(payload)
    if status == "transfer":
        return f"to conversation {payload.get('conversation_uuid_to', '?')}"
    if status == "websocket:invalid":
        if hidden := payload.get("text_hidden"):
            return f"(text hidden: {hidden})"
        return _truncated(str(payload.get("text", "")))
    if status == "notify" or status == "websocket:notify":
        return _compact(payload.get("payload", {}))
    if status in _CALL_LABELS or status in _OTHER_LABELS:
        return ""
    rest = {k: v for k, v in payload.items() if k not in _COMMON_FIELDS and v != ""}
    return _compact(rest) if rest else ""


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
    entries = merged_entries(events)
    for entry in entries:
        if not panels:
            break
        panel = panels[0]
        for candidate in panels:
            if candidate.recording.started_at <= entry.event.timestamp:
                panel = candidate
        entry.recording_number = panel.number
        started = panel.recording.started_at
        entry.seconds = (entry.event.timestamp - started).total_seconds()
        if entry.marked:
            _mark(panel, entry)
    return panels, entries


def merged_entries(events: Sequence[CallEvent]) -> list[TimelineEntry]:
    """One row per thing that happened: a recording leg's event joins the
    caller's of the same status, when they came within MERGE_SECONDS."""
    entries = [TimelineEntry(event=event) for event in events]
    callers = [e for e in entries if _is_caller_leg(e.event)]
    kept = []
    for entry in entries:
        event = entry.event
        twin = event.is_websocket_leg and next(
            (
                caller
                for caller in callers
                if caller.event.status == event.status
                and abs((caller.event.timestamp - event.timestamp).total_seconds())
                <= MERGE_SECONDS
            ),
            None,
        )
        if twin:
            twin.merged.append(event)
        else:
            kept.append(entry)
    return kept


def _mark(panel: RecordingPanel, entry: TimelineEntry) -> None:
    """A marker for the entry, or a place in the marker of the same moment."""
    length = panel.recording.duration_seconds
    seconds = min(max(entry.seconds or 0.0, 0.0), length)
    if panel.markers and seconds - panel.markers[-1].seconds <= SAME_MOMENT_SECONDS:
        panel.markers[-1].entries.append(entry)
        return
    panel.markers.append(
        TimelineMarker(
            entries=[entry],
            seconds=round(seconds, 2),
            percent=round(100 * seconds / length, 3) if length else 0.0,
        )
    )


def _is_caller_leg(event: CallEvent) -> bool:
    return event.source == "webhook" and not event.is_websocket_leg


def _status(event: CallEvent) -> str:
    """Its status; rows stored before `input` and `notify` were named say "event"."""
    if event.status == "event":
        if "dtmf" in event.payload or "speech" in event.payload:
            return "input"
        if "payload" in event.payload:
            return "notify"
    return event.status


def _input_label(payload: Mapping[str, Any]) -> str:
    """An `input` event: the keys the caller typed, or what they said."""
    dtmf = payload.get("dtmf") if isinstance(payload.get("dtmf"), Mapping) else {}
    speech = payload.get("speech")
    if hidden := dtmf.get("digits_hidden"):
        return f"Keys entered (hidden: {hidden})"
    if digits := dtmf.get("digits"):
        return f"Keys entered: {digits}"
    if isinstance(speech, Mapping):
        if hidden := speech.get("hidden"):
            return f"Speech (hidden: {hidden})"
        results = speech.get("results") or []
        if results and isinstance(results[0], Mapping) and results[0].get("text"):
            return f"Said: “{_truncated(str(results[0]['text']))}”"
        if reason := speech.get("timeout_reason"):
            return f"Nothing said ({_words(reason)})"
    if dtmf.get("timed_out"):
        return "No keys entered (timed out)"
    return "Caller input"


def _call_end_detail(payload: Mapping[str, Any]) -> str:
    parts = []
    if (duration := payload.get("duration")) not in (None, ""):
        parts.append(f"lasted {_seconds(duration)}")
    by = payload.get("disconnected_by")
    if by:
        parts.append({"user": "hung up by the caller"}.get(by, f"ended by the {by}"))
    return ", ".join(parts)


def _record_detail(payload: Mapping[str, Any]) -> str:
    size = payload.get("size")
    return f"{size} bytes at Vonage" if size else "at Vonage"


def _held(duration: Any) -> str:
    return f"held {duration} ms" if isinstance(duration, int | float) else ""


def _seconds(value: Any) -> str:
    try:
        whole = int(value)
    except (TypeError, ValueError):
        return str(value)
    minutes, seconds = divmod(whole, 60)
    return f"{minutes}:{seconds:02d}"


def _words(value: Any) -> str:
    return str(value).replace("_", " ") if value else ""


def _compact(value: Any) -> str:
    return _truncated(json.dumps(value, separators=(", ", ": "), default=str))


def _truncated(text: str) -> str:
    if len(text) <= _DETAIL_CHARACTERS:
        return text
    return text[: _DETAIL_CHARACTERS - 1] + "…"
