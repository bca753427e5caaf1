"""A call's timeline as a person reads it: merged legs, words, grouped markers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recordings_app.models import CallEvent, Recording
from recordings_app.templatetags.recordings import offset
from recordings_app.timeline import call_timeline

START = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
CALLER, SOCKET_LEG = "aaaa-caller", "bbbb-socket"


def event(seconds: float, status: str, leg: str = CALLER, **payload) -> CallEvent:
    """An event `seconds` after START; the leg decides where it came from."""
    if status.startswith("websocket:"):
        source, leg = "socket", ""
    elif status.startswith(("recording:", "legal-hold:")):
        source, leg = "staff", ""
    else:
        source = "webhook"
    return CallEvent(
        source=source,
        leg_uuid=leg,
        is_websocket_leg=leg == SOCKET_LEG,
        status=status,
        timestamp=START + timedelta(seconds=seconds),
        payload=payload,
    )


def recording(started: float = 3.0, seconds: float = 60.0) -> Recording:
    return Recording(
        started_at=START + timedelta(seconds=started),
        sample_rate=16000,
        sample_count=int(seconds * 16000),
    )


def rows(events, recordings=()) -> list[tuple[str, str]]:
    _, entries = call_timeline(list(recordings), events)
    return [(entry.label, entry.detail) for entry in entries]


def test_a_call_reads_as_what_happened_with_each_leg_said_once():
    events = [
        event(0.0, "started", direction="inbound"),
        event(0.4, "ringing"),
        event(1.0, "answered", start_time="…"),
        event(2.1, "started", SOCKET_LEG, to="wss://example.test/socket"),
        event(2.2, "ringing", SOCKET_LEG),
        event(2.6, "answered", SOCKET_LEG),
        event(3.0, "websocket:connected", **{"content-type": "audio/l16;rate=16000"}),
        event(4.5, "websocket:dtmf", digit="4", duration=260),
        event(20.0, "recording:paused", by="alice"),
        event(24.0, "recording:resumed", by="alice"),
        event(62.0, "completed", SOCKET_LEG),
        event(62.3, "completed", duration="62", disconnected_by="user"),
    ]

    assert rows(events, [recording()]) == [
        ("Call started", ""),
        ("Ringing", ""),
        ("Answered", ""),
        ("Recording started", ""),
        ("Key pressed: 4", "held 260 ms"),
        ("Paused by alice", ""),
        ("Resumed by alice", ""),
        ("Call ended", "lasted 1:02, hung up by the caller"),
    ]


def test_the_recording_leg_ending_long_before_the_call_is_its_own_row():
    events = [
        event(0.0, "answered"),
        event(1.0, "answered", SOCKET_LEG),
        event(30.0, "completed", SOCKET_LEG),
        event(90.0, "completed", duration="90"),
    ]

    assert rows(events) == [
        ("Answered", ""),
        ("Recording connection ended", ""),
        ("Call ended", "lasted 1:30"),
    ]


def test_a_recording_leg_alone_says_it_is_the_recording_connection():
    assert rows([event(0.0, "disconnected", SOCKET_LEG)]) == [
        ("Recording connection dropped", "")
    ]


@pytest.mark.parametrize(
    ("payload", "label"),
    [
        ({"dtmf": {"digits": "1234", "timed_out": False}}, "Keys entered: 1234"),
        ({"dtmf": {"digits": "", "timed_out": True}}, "No keys entered (timed out)"),
        (
            {"dtmf": {"timed_out": True, "digits_hidden": "recording paused"}},
            "Keys entered (hidden: recording paused)",
        ),
        (
            {"speech": {"results": [{"text": "pay my bill", "confidence": "0.9"}]}},
            "Said: “pay my bill”",
        ),
        (
            {"speech": {"timeout_reason": "start_timeout"}},
            "Nothing said (start timeout)",
        ),
        (
            {"speech": {"hidden": "recording paused"}},
            "Speech (hidden: recording paused)",
        ),
    ],
)
def test_an_input_event_says_what_the_caller_entered(payload, label):
    # Stored as "input" now; rows from before say "event": both read the same.
    for status in ("input", "event"):
        assert rows([event(0.0, status, **payload)]) == [(label, "")]


def test_a_notify_event_shows_what_it_carries():
    assert rows([event(0.0, "notify", payload={"step": "menu"})]) == [
        ("Notification", '{"step": "menu"}')
    ]


def test_an_event_of_unknown_kind_shows_its_fields_not_a_bare_word():
    [(label, detail)] = rows([event(0.0, "event", uuid=CALLER, rate="0.01")])
    assert label == "Event"
    assert detail == '{"rate": "0.01"}'


def test_a_failed_call_says_why():
    assert rows([event(0.0, "failed", detail="number_out_of_service")]) == [
        ("Failed", "number out of service")
    ]


def test_markers_at_one_moment_are_one_marker_and_the_rest_their_own():
    events = [
        event(0.4, "ringing"),  # before the audio: drawn at its start
        event(1.0, "answered"),
        event(5.2, "websocket:dtmf", digit="4"),
        event(5.5, "websocket:dtmf", digit="5"),  # 0.3 s later: the same moment
        event(10.0, "websocket:dtmf", digit="6"),
        event(11.0, "legal-hold:on", by="dana"),  # on the table, not the waveform
    ]

    [panel], entries = call_timeline([recording()], events)

    assert [
        ([entry.label for entry in marker.entries], marker.seconds, marker.kind)
        for marker in panel.markers
    ] == [
        (["Ringing", "Answered"], 0.0, "group"),
        (["Key pressed: 4", "Key pressed: 5"], 2.2, "group"),
        (["Key pressed: 6"], 7.0, "dtmf"),
    ]
    # The table keeps every event at its true offset.
    assert [offset(entry.seconds) for entry in entries] == [
        "−0:02.6",
        "−0:02.0",
        "0:02.2",
        "0:02.5",
        "0:07.0",
        "0:08.0",
    ]
    assert entries[-1].label == "Legal hold placed by dana"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (1.52, "0:01.5"),
        (1.97, "0:01.9"),  # cut, not rounded: the player still says 0:01
        (0.0, "0:00.0"),
        (65.25, "1:05.2"),
        (3725.44, "1:02:05.4"),
        (-2.0, "−0:02.0"),
        (-0.05, "0:00.0"),
        (None, "—"),
    ],
)
def test_offsets_are_shown_to_the_tenth_the_player_is_at(seconds, shown):
    assert offset(seconds) == shown
