"""In a real headless Chromium: the admin's changelists fit a laptop and a
phone, light and dark, newest first and in human units; a recording plays
from its list, and only when asked."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from recordings_app.models import CallEvent, LiveSocket, Recording
from recordings_app.services import access

from .helpers import ROOT, grant, make_call, pcm, record, sign_in

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "pw-admin-1"
# Screenshot name: the changelist's model.
CHANGELISTS = {
    "recordings": "recording",
    "calls": "call",
    "events": "callevent",
    "access-log": "accesslogentry",
    "live-sockets": "livesocket",
}
# Oldest first: (hours ago, seconds recorded, seconds Vonage billed).
CALLS = [(3, 3, 3725), (2, 65, 65), (1, 5, 5)]
PAGE_FITS = (
    "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
)
BOX_FITS = (
    "(box => box.scrollWidth <= box.clientWidth)"
    "(document.querySelector('#changelist .results'))"
)


@pytest.fixture
def admin_rows(daphne_server, settings, django_user_model) -> dict:
    """A row or more in each changelist, written oldest first, so that only
    the admin's order puts the newest on top.

    Made before the browser starts: Playwright's sync API runs an event loop,
    and Django refuses synchronous queries while one runs.
    """
    root = django_user_model.objects.create_superuser("root", password=PASSWORD)
    now = timezone.now()
    recordings = []
    for n, (hours_ago, recorded, billed) in enumerate(CALLS):
        call = make_call(n, started_at=now - timedelta(hours=hours_ago))
        call.duration_seconds = billed
        call.save()
        recording = record(call, pcm(recorded, 16000, seed=n), settings.SPOOL_DIR)
        Recording.objects.filter(pk=recording.pk).update(started_at=call.started_at)
        recordings.append(recording)
        for second, status in enumerate(["ringing", "answered", "completed"]):
            CallEvent.objects.create(
                call=call,
                source="webhook",
                status=status,
                timestamp=call.started_at + timedelta(seconds=second),
                payload={"status": status},
                fingerprint=status,
            )
    for n, recording in enumerate(recordings[1:]):
        time.sleep(1.0 * n)  # the log's times are to the second
        access.access_log_append(
            action="view", user=root, ip_address="203.0.113.9", call=recording.call
        )
    for n, minutes_ago in enumerate([9, 2]):
        live_call = make_call(10 + n, started_at=now - timedelta(minutes=minutes_ago))
        LiveSocket.objects.create(
            call=live_call,
            channel_name=f"specific.inmemory!{'x' * 40}{n}",
            spool_name=f"live-{n}.wav",
            sample_rate=16000,
            started_at=live_call.started_at,
            paused=n == 0,
            paused_by="dana" if n == 0 else "",
        )
    clerk = django_user_model.objects.create_user(
        "clerk", password=PASSWORD, is_staff=True
    )
    # The admin's list of every call's recordings, but not play_recording.
    grant(clerk, "view_recording", "view_all_calls")
    return {"newest": recordings[-1], "clerk": clerk}


def changelist(page, base_url: str, model: str) -> None:
    page.goto(f"{base_url}/admin/recordings_app/{model}/")
    page.wait_for_selector("#result_list")


def column(page, name: str) -> list[str]:
    """A column's cells, top to bottom, as read (a phone's line breaks as spaces)."""
    cells = page.locator(f"#result_list tbody .field-{name}")
    return [" ".join(text.split()) for text in cells.all_inner_texts()]


def newest_first(times: list[str]) -> bool:
    return len(set(times)) == len(times) > 1 and times == sorted(times, reverse=True)


def darkness(page) -> float:
    """The body's background lightness, 0 (black) to 255 (white)."""
    colour = page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = map(int, re.findall(r"\d+", colour)[:3])
    return (red + green + blue) / 3


def test_every_changelist_fits_a_laptop_and_a_phone_newest_first_light_and_dark(
    daphne_server, admin_rows, browser
):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, daphne_server.url, "root", PASSWORD)

    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 800})
            for name, model in CHANGELISTS.items():
                changelist(page, daphne_server.url, model)
                where = f"{name} at {width} px, {scheme}"
                assert page.locator("#site-name").inner_text() == "callrecorder"
                assert page.title().endswith("| callrecorder admin")
                # Nothing to scroll sideways: neither the page nor the table.
                assert page.evaluate(PAGE_FITS), where
                assert page.evaluate(BOX_FITS), where
                assert newest_first(column(page, "started") or column(page, "time"))
                assert (darkness(page) < 60) == (scheme == "dark"), where
                shade = "" if scheme == "light" else "-dark"
                size = "" if (width, scheme) == (1280, "dark") else f"-{width}"
                shot = f"admin-{name}{size}{shade}.png"
                page.screenshot(path=ARTIFACTS / shot, full_page=True)


def test_sizes_and_durations_read_as_people_say_them(
    daphne_server, admin_rows, browser
):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, daphne_server.url, "root", PASSWORD)

    changelist(page, daphne_server.url, "recording")
    headers = page.locator("#result_list thead th").all_inner_texts()
    assert {"AUDIO", "SIZE", "FORMAT", "ENCRYPTED"} <= {h.strip() for h in headers}
    assert column(page, "player") == ["0:05", "1:05", "0:03"]  # newest first
    sizes = column(page, "size")
    assert all(re.fullmatch(r"\d+(\.\d)? (bytes|KB|MB)", size) for size in sizes)
    assert [size.split()[1] for size in sizes] == ["KB", "MB", "KB"]
    assert column(page, "format") == ["WAV"] * 3

    changelist(page, daphne_server.url, "call")
    # The two calls in progress first: Vonage has not billed them yet.
    assert column(page, "duration") == ["—", "—", "0:05", "1:05", "1:02:05"]


def test_a_recording_plays_from_the_list_only_when_its_button_is_pressed(
    daphne_server, admin_rows, browser
):
    newest = admin_rows["newest"]
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    fetched = []
    page.on(
        "request",
        lambda request: (
            fetched.append(request.url) if "/recordings/" in request.url else None
        ),
    )
    sign_in(page, daphne_server.url, "root", PASSWORD)
    changelist(page, daphne_server.url, "recording")
    page.wait_for_load_state("networkidle")
    # Three players, and not one byte of audio fetched (nor a play logged).
    assert page.locator("#result_list audio").count() == 0 and fetched == []

    row = page.locator("#result_list tbody tr").first
    player = row.locator(".admin-player")
    assert player.inner_text().strip() == "0:05"  # its length, not 0:00 / 0:00
    row.get_by_role("button", name="Play").click()
    page.wait_for_function(
        "a => !a.paused && !a.error && a.currentTime > 1.1",
        arg=row.locator("audio").element_handle(),
        timeout=10_000,
    )
    assert re.fullmatch(r"0:0[1-5] / 0:05", player.inner_text().strip())
    assert {url.removeprefix(daphne_server.url) for url in fetched} == {
        newest.get_absolute_url()
    }
    page.screenshot(path=ARTIFACTS / "admin-recordings-playing.png")

    # Another row's play stops this one: one plays at a time.
    second = page.locator("#result_list tbody tr").nth(1)
    second.get_by_role("button", name="Play").click()
    page.wait_for_function(
        "a => !a.paused && a.currentTime > 0",
        arg=second.locator("audio").element_handle(),
    )
    assert row.locator("audio").evaluate("a => a.paused")
    second.get_by_role("button", name="Pause").click()
    assert second.locator("audio").evaluate("a => a.paused")

    # The plays are in the access log, on top.
    changelist(page, daphne_server.url, "accesslogentry")
    assert column(page, "action")[:2] == ["Play", "Play"]
    assert column(page, "recording")[1] == str(newest.pk)


def test_staff_who_may_not_play_see_so_on_pressing_play(
    daphne_server, admin_rows, browser
):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, daphne_server.url, "clerk", PASSWORD)
    changelist(page, daphne_server.url, "recording")

    row = page.locator("#result_list tbody tr").first
    row.get_by_role("button", name="Play").click()

    refused = row.get_by_role("button", name="Cannot play this recording")
    refused.wait_for()
    assert row.locator(".admin-player-time").inner_text() == "cannot play"
    assert row.locator("audio").evaluate("a => a.paused")
