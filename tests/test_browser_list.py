"""In a real headless Chromium: find calls on the list, and place a legal hold."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from recordings_app.models import LiveSocket

from .helpers import (
    LISTENER,
    ROOT,
    grant,
    make_call,
    outside_the_event_loop,
    record,
    sign_in,
)

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "pw-browser-1"
RECENT_FAILED = [f"4477009000{n:02d}" for n in range(1, 8)]
RECENT_COMPLETED = [f"4477005550{n:02d}" for n in range(1, 4)]
OLD_FAILED = "447700900099"


@pytest.fixture
def daphne_env() -> dict[str, str]:
    return {"CALLRECORDER_CALLS_PER_PAGE": "3"}


@pytest.fixture
def calls(daphne_server, settings):
    """Calls of the past week, failed and completed, and an old failed one.

    Made before the browser starts: Playwright's sync API runs an event loop,
    and Django refuses synchronous queries while one runs.
    """
    now = timezone.now()
    made = {}
    for n, number in enumerate(RECENT_FAILED + RECENT_COMPLETED + [OLD_FAILED]):
        age = timedelta(days=20) if number == OLD_FAILED else timedelta(hours=n * 13)
        call = make_call(n, started_at=now - age - timedelta(hours=1))
        call.from_number = number
        call.status = "completed" if number in RECENT_COMPLETED else "failed"
        call.duration_seconds = 17 + n * 11
        if number == RECENT_FAILED[1]:
            call.legal_hold, call.legal_hold_by = True, "dana"
            call.legal_hold_at = now
        call.save()
        record(call, b"\x10\x00\xf0\xff" * 1600 * (n + 1), settings.SPOOL_DIR)
        made[number] = call
    return made


@pytest.fixture
def staff(django_user_model):
    """Staff who may place and release legal holds."""
    dana = django_user_model.objects.create_user(
        "dana", password=PASSWORD, is_staff=True
    )
    return grant(dana, *LISTENER, "set_legal_hold")


@pytest.fixture
def listener(user):
    user.set_password(PASSWORD)
    user.save()
    return user


def listed_numbers(page) -> list[str]:
    """The caller numbers of the finished calls' table, top to bottom."""
    rows = page.locator("form.filters ~ table tbody tr")
    return [rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count())]


def test_typing_a_number_in_the_search_box_shows_only_matching_calls(
    daphne_server, calls, listener, browser
):
    page = browser.new_page(viewport={"width": 1100, "height": 720})
    sign_in(page, daphne_server.url, listener.username, PASSWORD)
    assert "11 calls" in page.get_by_role("navigation", name="Pages").inner_text()

    search = page.get_by_label("Number or uuid")
    search.fill("55500")
    search.press("Enter")
    page.wait_for_url("**/?q=55500*")

    assert sorted(listed_numbers(page)) == RECENT_COMPLETED
    assert search.input_value() == "55500"
    assert "3 calls" in page.get_by_role("navigation", name="Pages").inner_text()


def test_status_and_dates_filter_the_list_stay_in_the_form_and_across_pages(
    daphne_server, calls, listener, browser
):
    ARTIFACTS.mkdir(exist_ok=True)
    today = timezone.localdate()
    since, until = (today - timedelta(days=7)).isoformat(), today.isoformat()
    page = browser.new_page(viewport={"width": 1100, "height": 460})
    sign_in(page, daphne_server.url, listener.username, PASSWORD)

    page.get_by_label("Status", exact=True).select_option("failed")
    page.get_by_label("From", exact=True).fill(since)
    page.get_by_label("To", exact=True).fill(until)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**status=failed*")

    seen = listed_numbers(page)
    pager = page.get_by_role("navigation", name="Pages")
    assert "Page 1 of 3 · 7 calls" in pager.inner_text()
    assert page.get_by_label("Status", exact=True).input_value() == "failed"
    assert page.get_by_label("From", exact=True).input_value() == since
    assert page.get_by_label("To", exact=True).input_value() == until
    row = page.locator("form.filters ~ table tbody tr").filter(
        has_text=RECENT_FAILED[1]
    )
    assert row.locator(".badge.legal-hold").inner_text() == "legal hold"
    page.screenshot(path=ARTIFACTS / "call-list-search.png", full_page=True)

    for number in (2, 3):
        pager.get_by_role("link", name="Next").click()
        page.wait_for_url(f"**page={number}*")
        assert f"Page {number} of 3 · 7 calls" in pager.inner_text()
        assert page.get_by_label("Status", exact=True).input_value() == "failed"
        assert page.get_by_label("From", exact=True).input_value() == since
        seen += listed_numbers(page)

    assert sorted(seen) == RECENT_FAILED  # every one once; never the old one
    statuses = page.locator("form.filters ~ table tbody tr .badge.failed")
    assert statuses.count() == 1


def test_staff_place_a_legal_hold_and_the_call_shows_its_badge(
    daphne_server, calls, staff, browser
):
    ARTIFACTS.mkdir(exist_ok=True)
    call = calls[RECENT_FAILED[0]]  # the newest: the list's first row
    page = browser.new_page(viewport={"width": 1100, "height": 720})
    sign_in(page, daphne_server.url, staff.username, PASSWORD)
    page.goto(daphne_server.url + call.get_absolute_url())
    assert not page.get_by_text("kept whatever the retention").is_visible()

    page.get_by_role("button", name="Place on legal hold").click()
    page.wait_for_load_state()

    assert page.get_by_role("status").filter(has_text="on legal hold").is_visible()
    badge = page.locator("p.legal-hold")
    assert "Legal hold — kept whatever the retention (set by dana on" in (
        " ".join(badge.inner_text().split())
    )
    assert page.get_by_role("button", name="Release legal hold").is_visible()
    page.screenshot(path=ARTIFACTS / "call-legal-hold.png")
    page.get_by_role("link", name="← All calls").click()
    page.wait_for_url(daphne_server.url + "/")
    first_row = page.locator("form.filters ~ table tbody tr").first
    assert RECENT_FAILED[0] in first_row.inner_text()
    assert first_row.locator(".badge.legal-hold").is_visible()


@pytest.fixture
def silent_call(daphne_server):
    """A call whose worker stopped renewing its live row 91 s ago."""
    call = make_call(40, started_at=timezone.now() - timedelta(minutes=5))
    LiveSocket.objects.create(
        call=call, channel_name="gone", spool_name="gone.wav", sample_rate=16000
    )
    silent_since = Now() - timedelta(seconds=LiveSocket.STALE_SECONDS + 1)
    LiveSocket.objects.filter(call=call).update(seen_at=silent_since)
    return call


def test_the_live_list_puts_right_a_call_whose_worker_fell_silent(
    daphne_server, silent_call, listener, browser, settings
):
    """A worker stops renewing its call (it died, or is only late): the page
    lists the call once wherever it belongs, and with its recording once
    recovery stores one."""
    call = silent_call
    to_the_page = []

    def pass_through(socket) -> None:  # and keep a way to speak to the page
        socket.connect_to_server()
        to_the_page.append(socket)

    context = browser.new_context()
    context.route_web_socket("**/ws/calls", pass_through)
    page = context.new_page()
    sign_in(page, daphne_server.url, listener.username, PASSWORD)
    page.wait_for_selector("[data-live-list][data-connected=true]", state="attached")
    rows = page.locator(f'tr[data-call-id="{call.pk}"]')
    assert rows.count() == 1 and rows.locator("button.play").count() == 0

    # Its machine came back: recovery stores the audio, and says it ended.
    outside_the_event_loop(record, call, b"\x10\x00" * 16000, settings.SPOOL_DIR)
    to_the_page[-1].send(json.dumps({"event": "ended", "call_id": call.pk}))
    page.wait_for_selector(f'tr[data-call-id="{call.pk}"] button.play')
    assert rows.count() == 1

    # Or its worker was only late: live again, and listed once.
    summary = {"id": call.pk, "from": call.from_number, "url": call.get_absolute_url()}
    to_the_page[-1].send(json.dumps({"event": "snapshot", "calls": [summary]}))
    page.wait_for_selector(f'[data-live-rows] tr[data-call-id="{call.pk}"]')
    assert rows.count() == 1
