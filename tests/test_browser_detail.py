"""The call page in a real Chromium: waveform seeking, speed, event markers, delete."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.core.files.storage import default_storage
from django.test import Client

from recordings_app.models import Call, CallEvent, LiveSocket, Recording
from recordings_app.simulator.caller import CallPlan, play_call
from recordings_app.simulator.sounds import load_wav, speak
from recordings_app.templatetags.recordings import offset

from .helpers import (
    LISTENER,
    ROOT,
    grant,
    outside_the_event_loop,
    require,
    wait_for_recordings,
)

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts"
HAVE_METADATA = 1
RATE = 16000
SILENCE = (6.0, 8.0)  # where the simulated call holds two seconds of silence
KEY_AT = 3.37  # where its key is pressed


@pytest.fixture
def recorded_call(daphne_server, tmp_path: Path):
    """A call of real speech with a pause in it, key 1 pressed, played like Vonage.

    The two seconds of silence and the staff events around them are what a
    staff member pausing the recording leaves (pause and resume on the
    timeline, silence in the audio); they are put in by hand because a call
    played faster than real time ends before anyone could click Pause.
    """
    require("espeak-ng")
    first = speak(
        "Hello, you are through to accounts. How can I help you today?",
        tmp_path / "first.wav",
    )
    second = speak(
        "Thank you. I have taken the payment. Is there anything else?",
        tmp_path / "second.wav",
    )

    def audio(rate: int) -> bytes:
        opening = load_wav(first, rate)
        opening += bytes(max(0, int(SILENCE[0] * rate) * 2 - len(opening)))
        pause = bytes(int((SILENCE[1] - SILENCE[0]) * rate) * 2)
        return opening + pause + load_wav(second, rate)

    async def play():
        async with httpx.AsyncClient(timeout=30) as http:
            plan = CallPlan(audio=audio, dtmf="1", realtime=False)
            return await play_call(http, daphne_server.url, plan)

    sent = asyncio.run(play())
    [recording] = wait_for_recordings(sent.uuid)
    started = recording.started_at
    for status, at in zip(
        ("recording:paused", "recording:resumed"), SILENCE, strict=True
    ):
        CallEvent.objects.create(
            call=recording.call,
            source=CallEvent.Source.STAFF,
            status=status,
            timestamp=started + timedelta(seconds=at),
            payload={"by": "supervisor", "at_seconds": at},
            fingerprint=f"test:{status}",
        )
    Recording.objects.filter(pk=recording.pk).update(
        paused_seconds=SILENCE[1] - SILENCE[0]
    )
    # An input action's keys, 0.6 s after the resume: on a phone their
    # markers would overlap.
    CallEvent.objects.create(
        call=recording.call,
        source=CallEvent.Source.WEBHOOK,
        leg_uuid=sent.uuid,
        status="input",
        timestamp=started + timedelta(seconds=SILENCE[1] + 0.6),
        payload={"uuid": sent.uuid, "dtmf": {"digits": "42", "timed_out": False}},
        fingerprint="test:input",
    )
    # Played faster than real time, the key's message came at the start:
    # put it where a caller would have pressed it.
    dtmf = CallEvent.objects.get(call=recording.call, status="websocket:dtmf")
    dtmf.timestamp = started + timedelta(seconds=KEY_AT)
    dtmf.save()
    dtmf_at = offset(KEY_AT)
    return recording, dtmf_at


def signed_in(browser, server_url: str, user, **page_options):
    """A page whose browser holds the user's session (signed in by the test client)."""

    def session_cookies() -> list[dict[str, str]]:
        client = Client()
        client.force_login(user)
        return [
            {"name": name, "value": morsel.value, "url": server_url}
            for name, morsel in client.cookies.items()
        ]

    context = browser.new_context(**page_options)
    context.add_cookies(outside_the_event_loop(session_cookies))
    return context.new_page()


@pytest.fixture
def listener_page(daphne_server, recorded_call, user, browser):
    recording, _ = recorded_call
    page = signed_in(
        browser, daphne_server.url, user, viewport={"width": 1100, "height": 900}
    )
    page.goto(daphne_server.url + recording.call.get_absolute_url())
    page.wait_for_function(
        f"() => document.querySelector('audio').readyState >= {HAVE_METADATA}"
    )
    return page


def wait_for_time(page, seconds: float, tolerance: float) -> float:
    page.wait_for_function(
        "([t, tol]) => "
        "Math.abs(document.querySelector('audio').currentTime - t) <= tol",
        arg=[seconds, tolerance],
    )
    return page.locator("audio").evaluate("a => a.currentTime")


def test_clicking_the_middle_of_the_waveform_seeks_to_the_middle_and_arrows_step_5_s(
    listener_page, recorded_call
):
    page = listener_page
    recording, _ = recorded_call
    duration = page.locator("audio").evaluate("a => a.duration")
    assert duration == pytest.approx(recording.duration_seconds, abs=0.1)
    slider = page.get_by_role("slider", name="Position in recording 1")

    box = slider.bounding_box()
    slider.click(position={"x": box["width"] / 2, "y": box["height"] / 2})

    middle = wait_for_time(page, duration / 2, tolerance=0.02 * duration)
    assert slider.get_attribute("aria-valuenow") == str(round(middle))
    assert slider.evaluate("s => s === document.activeElement")

    page.keyboard.press("ArrowRight")
    assert wait_for_time(page, middle + 5, tolerance=0.05) == pytest.approx(
        middle + 5, abs=0.05
    )
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert wait_for_time(page, middle - 5, tolerance=0.05) == pytest.approx(
        middle - 5, abs=0.05
    )
    assert slider.get_attribute("aria-valuetext") == (
        f"{offset(middle - 5)} of {offset(duration)}"
    )


def test_the_speed_selector_changes_how_fast_the_recording_plays(listener_page):
    page = listener_page
    audio = page.locator("audio")
    assert audio.evaluate("a => a.playbackRate") == 1

    speed = page.get_by_label("Speed")
    assert [o.strip() for o in speed.locator("option").all_inner_texts()] == [
        "0.75×",
        "1×",
        "1.25×",
        "1.5×",
        "2×",
    ]
    speed.select_option("1.5")
    assert audio.evaluate("a => a.playbackRate") == 1.5
    speed.select_option("0.75")
    assert audio.evaluate("a => a.playbackRate") == 0.75


def test_events_are_marked_on_the_waveform_and_timed_in_the_timeline(
    listener_page, recorded_call
):
    page = listener_page
    recording, dtmf_at = recorded_call
    duration = recording.duration_seconds

    # One row per thing that happened, in words; both legs' "started" and
    # "answered" are one row each.
    events = page.locator("table.timeline tbody tr td:nth-child(3)").all_inner_texts()
    assert events[:3] == ["Call started", "Ringing", "Answered"]
    assert events.count("Call started") == 1 and events.count("Answered") == 1
    assert "Recording started" in events
    assert "Key pressed: 1" in events
    assert "Paused by supervisor" in events and "Resumed by supervisor" in events
    assert "Keys entered: 42" in events
    assert events[-1] == "Call ended"
    assert not [e for e in events if re.match(r"[a-z-]+:[a-z]", e)]  # no raw status

    # The key pressed in the call: a marker on the waveform, a row with its
    # offset to the tenth, as the player counts.
    key = page.get_by_role(
        "button", name=f"Key pressed: 1 at {dtmf_at}: play from here"
    )
    assert key.is_visible()
    assert key.inner_text() == "1"
    dtmf_row = page.get_by_role("row").filter(has_text="Key pressed: 1")
    assert dtmf_row.get_by_role("cell").nth(1).inner_text() == dtmf_at
    assert re.fullmatch(r"0:\d\d\.\d", dtmf_at)

    # The pause sits where it happened on the waveform's time axis.
    track = page.get_by_role("slider").bounding_box()
    paused = page.get_by_role(
        "button", name="Paused by supervisor at 0:06.0: play from here"
    )
    resumed = page.get_by_role(
        "button", name="Resumed by supervisor at 0:08.0: play from here"
    )
    for marker, seconds in ((paused, SILENCE[0]), (resumed, SILENCE[1])):
        box = marker.bounding_box()
        centre = box["x"] + box["width"] / 2 - track["x"]
        assert centre / track["width"] == pytest.approx(seconds / duration, abs=0.01)
    assert page.get_by_text("2 s paused (silence)").is_visible()

    resumed.click()
    wait_for_time(page, SILENCE[1], tolerance=0.05)
    # The timeline's "At" offset plays from there too.
    paused_row = page.get_by_role("row").filter(has_text="Paused by supervisor")
    assert paused_row.get_by_role("cell").nth(1).inner_text() == "0:06.0"
    paused_row.get_by_role("button", name="Play recording from 0:06.0").click()
    wait_for_time(page, SILENCE[0], tolerance=0.05)

    # Ringing and Answered came before the audio: one marker at its start,
    # which lists both; each plays from there.
    moment = page.get_by_role("button", name=re.compile(r"^2 events at 0:00\.0: "))
    assert moment.get_attribute("aria-label").endswith(": Ringing, Answered")
    assert moment.get_attribute("aria-expanded") == "false"
    moment.click()
    assert moment.get_attribute("aria-expanded") == "true"
    answered = page.get_by_role(
        "button", name=re.compile(r"^Answered at −?0:00\.\d: play")
    )
    assert answered.is_visible()
    answered.click()
    wait_for_time(page, 0, tolerance=0.05)
    assert page.get_by_role("button", name=re.compile(r"^Ringing at")).is_hidden()
    assert moment.evaluate("b => b === document.activeElement")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "call-detail.png", full_page=True)
    page.emulate_media(color_scheme="dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(20, 20, 23)"
    page.screenshot(path=ARTIFACTS / "call-detail-dark.png", full_page=True)

    # At both widths the page fits (nothing to scroll sideways) and no
    # marker covers another: each can be clicked.
    for width, name in ((1280, "call-detail-1280"), (390, "call-detail-phone")):
        page.emulate_media(color_scheme="light")
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(150)  # the waveform and markers lay out again
        assert page.evaluate(
            "document.documentElement.scrollWidth"
            " <= document.documentElement.clientWidth"
        )
        assert page.get_by_role("slider").bounding_box()["width"] > width * 0.75
        assert_no_marker_covers_another(page)
        page.get_by_role(
            "button", name="Keys entered: 42 at 0:08.6: play from here"
        ).click()
        wait_for_time(page, SILENCE[1] + 0.6, tolerance=0.05)
        page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=ARTIFACTS / "call-detail-phone-dark.png", full_page=True)


def assert_no_marker_covers_another(page) -> None:
    boxes = [
        button.bounding_box()
        for button in page.locator(".wave-markers > .marker > button").all()
    ]
    assert len(boxes) >= 4
    for n, a in enumerate(boxes):
        for b in boxes[n + 1 :]:
            apart = (
                a["x"] + a["width"] <= b["x"]
                or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"]
                or b["y"] + b["height"] <= a["y"]
            )
            assert apart, (a, b)


def test_the_pages_own_controls_play_skip_and_mute_and_the_stock_one_stays(
    listener_page,
):
    page = listener_page
    audio = page.locator("audio")
    play = page.get_by_role("button", name="Play recording 1")
    time = page.locator("[data-time]")
    assert re.fullmatch(r"0:00\.0 / 0:\d\d\.\d", time.inner_text())
    # The stock player is still in the page for assistive technology, out of sight.
    assert audio.get_attribute("controls") is not None
    assert audio.bounding_box()["width"] <= 1

    play.click()
    page.wait_for_function("() => document.querySelector('audio').currentTime > 0.3")
    pause = page.get_by_role("button", name="Pause recording 1")
    assert pause.is_visible()
    pause.click()
    assert audio.evaluate("a => a.paused")
    at = audio.evaluate("a => a.currentTime")
    assert time.inner_text().startswith(offset(at) + " / ")

    page.get_by_role("button", name="Forward 5 seconds").click()
    wait_for_time(page, at + 5, tolerance=0.05)
    page.get_by_role("button", name="Back 5 seconds").click()
    wait_for_time(page, at, tolerance=0.05)

    mute = page.get_by_role("button", name="Mute")
    mute.click()
    assert audio.evaluate("a => a.muted")
    # The button follows the audio's volumechange event, which comes after.
    page.wait_for_function(
        "() => document.querySelector('[data-mute]').ariaPressed === 'true'"
    )
    assert mute.get_attribute("aria-pressed") == "true"

    # The heading's numbers are in the page's font, not a code font.
    heading = page.get_by_role("heading", level=1)
    number_font = heading.locator(".number").first.evaluate(
        "n => getComputedStyle(n).fontFamily"
    )
    assert number_font == heading.evaluate("h => getComputedStyle(h).fontFamily")


def test_staff_delete_a_recording_after_confirming_and_cancelling_keeps_it(
    daphne_server, recorded_call, admin_user, browser
):
    recording, _ = recorded_call
    name = recording.file.name
    page = signed_in(browser, daphne_server.url, admin_user)
    page.goto(daphne_server.url + recording.call.get_absolute_url())
    dialog = page.get_by_role("dialog", name="Delete recording 1?")

    page.get_by_role("button", name="Delete recording").click()
    assert dialog.is_visible()
    assert dialog.get_by_role("button", name="Cancel").evaluate(
        "b => b === document.activeElement"
    )
    dialog.get_by_role("button", name="Cancel").click()
    assert dialog.is_hidden()
    assert page.get_by_role("slider", name="Position in recording 1").is_visible()
    assert default_storage.exists(name)

    page.get_by_role("button", name="Delete recording").click()
    dialog.get_by_role("button", name="Delete for good").click()
    page.wait_for_url(daphne_server.url + recording.call.get_absolute_url())

    assert page.get_by_role("status").inner_text() == "The recording was deleted."
    assert page.get_by_text("No audio was recorded for this call.").is_visible()
    assert page.locator("audio").count() == 0
    assert not default_storage.exists(name)
    assert not outside_the_event_loop(
        lambda: Recording.objects.filter(pk=recording.pk).exists()
    )


def test_without_script_delete_asks_on_a_page_of_its_own(
    daphne_server, recorded_call, admin_user, browser
):
    recording, _ = recorded_call
    page = signed_in(browser, daphne_server.url, admin_user, java_script_enabled=False)
    page.goto(daphne_server.url + recording.call.get_absolute_url())

    page.get_by_role("button", name="Delete recording").click()
    assert page.get_by_role("heading", name="Delete this recording?").is_visible()
    page.get_by_role("link", name="Cancel").click()
    assert page.locator("audio").count() == 1

    page.get_by_role("button", name="Delete recording").click()
    page.get_by_role("button", name="Delete for good").click()
    assert page.get_by_text("No audio was recorded for this call.").is_visible()
    assert re.search(r"/calls/\d+/$", page.url)
    assert not default_storage.exists(recording.file.name)


@pytest.fixture
def live_call_html(db, django_user_model) -> str:
    """A staff member's page of a call in progress that carol paused.

    Rendered before the browser starts: Playwright's sync API runs an event
    loop, and Django refuses synchronous queries while one runs.
    """
    call = Call.objects.create(uuid="live-a11y", from_number="447700900444")
    LiveSocket.objects.create(
        call=call,
        channel_name="c",
        spool_name="s.wav",
        sample_rate=16000,
        paused=True,
        paused_by="carol",
    )
    client = Client()
    erin = django_user_model.objects.create_user("erin", is_staff=True)
    client.force_login(grant(erin, *LISTENER))
    return client.get(call.get_absolute_url()).content.decode()


def test_a_screen_reader_hears_the_elapsed_time_and_a_pause_by_someone_else(
    live_call_html, browser
):
    page = browser.new_page()
    page.set_content(live_call_html)

    timer = page.get_by_role("timer", name="Elapsed")
    assert timer.count() == 1 and re.fullmatch(r"\d+:\d\d", timer.inner_text())
    # A live region: a pause someone else makes is announced, not only shown.
    paused = page.get_by_role("status").filter(has_text="recording paused by carol")
    assert paused.count() == 1 and paused.is_visible()
