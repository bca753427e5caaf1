"""In a real headless Chromium: the call list fits a phone and a laptop.

A table where the page is wide; a card per call where it is narrow; the
filters lined up; nothing to scroll sideways, in light or dark mode.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from recordings_app.models import LiveSocket

from .helpers import ROOT, make_call, record, sign_in

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "pw-layout-1"
SMALL_PHONE, PHONE, LAPTOP = 360, 390, 1280
TABLET = (700, 769)  # cards (a table would not fit), the narrowest table
FINISHED = "form.filters ~ table tbody tr"
LIVE = "[data-live-rows] tr"
LIVE_CALLER, STARTED_CALLER = "447700900555", "447700900666"
SCREENSHOTS = {
    (LAPTOP, "light"): "call-list.png",
    (LAPTOP, "dark"): "call-list-dark.png",
    (PHONE, "light"): "call-list-phone.png",
    (PHONE, "dark"): "call-list-phone-dark.png",
}


@pytest.fixture
def daphne_env() -> dict[str, str]:
    return {"CALLRECORDER_CALLS_PER_PAGE": "4"}


@pytest.fixture
def listener(user):
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def calls(daphne_server, settings):
    """Ten finished calls (three pages), the widest cells among them, and one
    in progress, its recording paused.

    Made before the browser starts: Playwright's sync API runs an event loop,
    and Django refuses synchronous queries while one runs.
    """
    now = timezone.now()
    finished = []
    for n in range(10):
        call = make_call(n, started_at=now - timedelta(hours=n * 7, minutes=1))
        call.duration_seconds = 3725 if n == 1 else 17 + n * 11  # 1:02:05
        call.status = "completed" if n % 3 else "unanswered"
        if n == 0:
            call.legal_hold, call.legal_hold_by, call.legal_hold_at = True, "dana", now
        call.save()
        for take in range(2 if n == 0 else 1):  # "2 recordings"
            audio = b"\x10\x00\xf0\xff" * 1600 * (n + take + 1)
            record(call, audio, settings.SPOOL_DIR)
        finished.append(call)
    live = make_call(50, started_at=now - timedelta(seconds=75))
    live.from_number = LIVE_CALLER
    live.save()
    LiveSocket.objects.create(
        call=live,
        channel_name="live-1",
        spool_name="live-1.wav",
        sample_rate=16000,
        started_at=live.started_at,
        paused=True,
        paused_by="sam",
    )
    return {"finished": finished, "live": live}


def open_list(browser, server, user, width: int, scheme: str = "light"):
    """The list as a user of that screen sees it, once live.js caught up."""
    context = browser.new_context(
        viewport={"width": width, "height": 800}, color_scheme=scheme
    )
    page = context.new_page()
    sign_in(page, server.url, user.username, PASSWORD)
    wait_for_the_snapshot(page)
    return page


def wait_for_the_snapshot(page) -> None:
    """The socket's first message: who paused (the page itself says no name)."""
    page.locator(LIVE).filter(has_text="recording paused by sam").wait_for()


def sideways_overflow(page) -> int:
    """How many pixels the page is wider than the screen (0: no sideways scroll)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth"
        " - document.documentElement.clientWidth"
    )


DATES = """times => times.map(t => ({
  text: t.textContent,
  lines: t.getClientRects().length,
  height: t.getBoundingClientRect().height,
  lineHeight: parseFloat(getComputedStyle(t).lineHeight),
}))"""


def started_dates(page) -> list[dict]:
    """Each finished call's start date: its text, and how many lines it takes."""
    return page.eval_on_selector_all(f"{FINISHED} time", DATES)


# A row: its box and colours, and each cell drawn: its box, its label (and
# what is drawn before it), and the room above its value inside the cell.
ROW_GEOMETRY = """row => {
  const box = (e) => e.getBoundingClientRect().toJSON();
  const drawn = Array.from(row.cells).filter(td => td.getClientRects().length);
  const cells = drawn.map(td => {
    const before = getComputedStyle(td, '::before');
    const contents = document.createRange();
    contents.selectNodeContents(td);
    const padding = parseFloat(getComputedStyle(td).paddingTop);
    return {
      box: box(td),
      label: td.dataset.label || null,
      shownLabel: before.display === 'none' ? 'none' : before.content,
      above: contents.getBoundingClientRect().top - box(td).top - padding,
    };
  });
  const first = row.cells[0];
  return {
    box: box(row), display: getComputedStyle(row).display, cells: cells,
    background: getComputedStyle(row).backgroundColor,
    colors: [getComputedStyle(first, '::before').color, getComputedStyle(first).color],
  };
}"""


def row_geometry(page, selector: str) -> list[dict]:
    rows = page.locator(selector)
    return [rows.nth(i).evaluate(ROW_GEOMETRY) for i in range(rows.count())]


def box(locator) -> dict:
    """Where an element is drawn: top, right, bottom, left, width, height."""
    return locator.evaluate("e => e.getBoundingClientRect().toJSON()")


def accessibility_roles(page, selector: str) -> dict[str, int]:
    """What Chromium tells a screen reader the element holds: role -> count."""
    cdp = page.context.new_cdp_session(page)
    element = cdp.send(
        "Runtime.evaluate", {"expression": f"document.querySelector({selector!r})"}
    )["result"]
    roles = {}
    for role in ("row", "columnheader", "cell"):
        nodes = cdp.send(
            "Accessibility.queryAXTree",
            {"objectId": element["objectId"], "role": role},
        )["nodes"]
        roles[role] = len([node for node in nodes if not node.get("ignored")])
    return roles


def luminance(css_color: str) -> float:
    """WCAG's relative luminance of an "rgb(r, g, b)" colour."""
    values = css_color[css_color.index("(") + 1 : -1].split(",")[:3]
    linear = [
        c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
        for c in (int(value) / 255 for value in values)
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, other: str) -> float:
    lighter, darker = sorted((luminance(one), luminance(other)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def assert_a_card_of_labelled_values(row: dict, screen_width: int) -> None:
    cells = row["cells"]
    assert row["display"] != "table-row"
    assert row["box"]["left"] >= 0 and row["box"]["right"] <= screen_width
    assert len({round(cell["box"]["top"]) for cell in cells}) >= 2  # stacked
    for cell in cells:
        assert cell["box"]["left"] >= row["box"]["left"]
        assert cell["box"]["right"] <= row["box"]["right"]
        if cell["label"]:  # shown above its value
            assert cell["shownLabel"] == f'"{cell["label"]}"', cell
            assert cell["above"] >= 10, cell
    for color in row["colors"]:  # the label and the value readable on the card
        assert contrast(color, row["background"]) >= 4.5, row


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_width_from_a_small_phone_to_a_laptop_scrolls_sideways(
    daphne_server, calls, listener, browser, scheme
):
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (SMALL_PHONE, PHONE, *TABLET, LAPTOP):
        page = open_list(browser, daphne_server, listener, width, scheme)
        assert sideways_overflow(page) == 0, (width, scheme)
        dates = started_dates(page)
        assert len(dates) == 4
        for date in dates:  # "2026-12-04 14:03", never over three lines
            assert date["lines"] == 1, (width, scheme, date)
            assert date["height"] < 1.5 * date["lineHeight"], (width, scheme, date)
        if (width, scheme) in SCREENSHOTS:
            path = ARTIFACTS / SCREENSHOTS[width, scheme]
            page.screenshot(path=path, full_page=True)

        # A middle page has the pager's widest line: Previous and Next.
        pager = page.get_by_role("navigation", name="Pages")
        pager.get_by_role("link", name="Next").click()
        page.wait_for_url("**page=2")
        assert pager.get_by_role("link", name="Previous").is_visible()
        assert sideways_overflow(page) == 0, (width, scheme, "page 2")
        page.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_on_a_phone_each_call_is_a_card_of_labelled_values(
    daphne_server, calls, listener, browser, scheme
):
    page = open_list(browser, daphne_server, listener, PHONE, scheme)

    rows = row_geometry(page, FINISHED)
    assert len(rows) == 4
    for row in rows:
        assert_a_card_of_labelled_values(row, PHONE)
        labels = [cell["label"] for cell in row["cells"]]
        assert labels == ["Started", "From", "To", "Duration", "Status", "Recording"]
    # Cards one under another, each the list's full width.
    assert {round(row["box"]["width"]) for row in rows} == {PHONE - 2 * 12}
    assert all(
        above["box"]["bottom"] <= below["box"]["top"]
        for above, below in zip(rows, rows[1:], strict=False)
    )

    # The call in progress: the same card, its badge said.
    [live] = row_geometry(page, LIVE)
    assert_a_card_of_labelled_values(live, PHONE)
    labels = [cell["label"] for cell in live["cells"]]
    assert labels == ["Caller", "To", "Elapsed", "Level", None]

    # The column headers are out of sight, still there for a screen reader,
    # and each card is still a row of cells to it.
    header = box(page.locator("form.filters ~ table thead"))
    assert header["width"] <= 1 and header["height"] <= 1
    finished = accessibility_roles(page, "form.filters ~ table")
    assert finished == {"row": 1 + 4, "columnheader": 6, "cell": 4 * 6}
    in_progress = accessibility_roles(page, "[data-live-list] table")
    assert in_progress == {"row": 1 + 1, "columnheader": 5, "cell": 5}


def test_on_a_laptop_the_calls_are_a_table_one_line_a_call(
    daphne_server, calls, listener, browser
):
    page = open_list(browser, daphne_server, listener, LAPTOP)

    header = page.locator("form.filters ~ table thead th")
    assert [text.lower() for text in header.all_inner_texts()] == [
        "started",
        "from",
        "to",
        "duration",
        "status",
        "recording",
    ]
    header_height = box(header.first)["height"]
    rows = row_geometry(page, FINISHED) + row_geometry(page, LIVE)
    assert len(rows) == 4 + 1
    for row in rows:
        assert row["display"] == "table-row"
        assert len({round(cell["box"]["top"]) for cell in row["cells"]}) == 1
        assert row["box"]["height"] < 2.5 * header_height  # one line
        for cell in row["cells"]:
            assert cell["above"] < 10, cell  # no label above the value


FIELDS = """fields => fields.map(p => {
  const box = (e) => e.getBoundingClientRect().toJSON();
  const control = p.querySelector('input, select');
  return {name: control.name, field: box(p), label: box(p.querySelector('label')),
          control: box(control)};
})"""


@pytest.mark.parametrize("width", [SMALL_PHONE, PHONE, LAPTOP])
def test_the_filters_labels_line_up_and_search_and_clear_stay_together(
    daphne_server, calls, listener, browser, width
):
    page = open_list(browser, daphne_server, listener, width)

    fields = page.eval_on_selector_all("form.filters .field", FIELDS)
    names = [field["name"] for field in fields]
    assert names == ["q", "since", "until", "status", "sort"]
    for field in fields:
        assert field["field"]["left"] >= 0 and field["field"]["right"] <= width
        assert field["label"]["bottom"] <= field["control"]["top"]  # label above
    lines = {}
    for field in fields:
        lines.setdefault(round(field["field"]["top"]), []).append(field)
    for line in lines.values():  # side by side: labels level, fields level
        assert len({round(field["label"]["top"]) for field in line}) == 1, line
        assert len({round(field["control"]["top"]) for field in line}) == 1, line
        assert len({round(field["control"]["height"]) for field in line}) == 1, line
    if width == LAPTOP:
        assert len(lines) == 1  # one line of filters
    else:  # the search box the whole width, the others two by two
        form = box(page.locator("form.filters"))
        assert fields[0]["control"]["width"] == pytest.approx(form["width"], abs=1)
        assert [len(line) for line in lines.values()] == [1, 2, 2]

    search = box(page.get_by_role("button", name="Search"))
    clear = box(page.get_by_role("link", name="Clear"))
    assert search["top"] == pytest.approx(clear["top"], abs=1)  # side by side
    assert search["height"] == pytest.approx(clear["height"], abs=1)
    assert search["right"] <= clear["left"]
    assert clear["right"] <= width
    if width == LAPTOP:  # on the fields' line, level with them
        control = fields[0]["control"]
        assert search["top"] == pytest.approx(control["top"], abs=1)
        assert search["height"] == pytest.approx(control["height"], abs=1)


FOCUSED = """() => {
  const e = document.activeElement;
  return e.getAttribute('aria-label') || e.name || e.textContent.trim();
}"""


def test_keyboard_users_go_through_the_filters_then_each_call_in_order(
    daphne_server, calls, listener, browser
):
    page = open_list(browser, daphne_server, listener, PHONE)
    page.get_by_label("Number or uuid").focus()

    def next_focus() -> str:
        """Tab to the next control (past a date's day, month and year)."""
        was = page.evaluate(FOCUSED)
        page.keyboard.press("Tab")
        while page.evaluate(FOCUSED) == was:
            page.keyboard.press("Tab")
        return page.evaluate(FOCUSED)

    controls = [next_focus() for _ in range(6)]
    assert controls == ["since", "until", "status", "sort", "Search", "Clear"]
    newest = calls["finished"][0]
    started = timezone.localtime(newest.started_at).strftime("%Y-%m-%d %H:%M")
    assert next_focus() == started
    play_name = f"Play the call from {newest.from_number}"
    assert next_focus() == play_name
    play = page.get_by_role("button", name=play_name)
    assert play.get_attribute("aria-pressed") == "false"
    page.keyboard.press("Enter")
    assert play.get_attribute("aria-pressed") == "true"  # said as pressed
    page.keyboard.press("Enter")
    assert play.get_attribute("aria-pressed") == "false"
    assert next_focus() == "2 recordings"


def test_calls_that_start_and_end_while_the_page_is_open_fit_a_phone(
    daphne_server, calls, listener, browser
):
    """Rows live.js adds (from its template, or fetched when a call ends) are
    cards like those the page came with."""
    to_the_page = []

    def pass_through(socket) -> None:  # and keep a way to speak to the page
        socket.connect_to_server()
        to_the_page.append(socket)

    context = browser.new_context(
        viewport={"width": PHONE, "height": 800}, color_scheme="dark"
    )
    context.route_web_socket("**/ws/calls", pass_through)
    page = context.new_page()
    sign_in(page, daphne_server.url, listener.username, PASSWORD)
    wait_for_the_snapshot(page)  # or it would take the new call for ended

    live, started_id = calls["live"], calls["live"].pk + 1
    summary = {"id": started_id, "from": STARTED_CALLER, "url": "/", "paused": False}
    to_the_page[-1].send(json.dumps({"event": "started", "call": summary}))
    added = f'{LIVE}[data-call-id="{started_id}"]'
    page.wait_for_selector(added)
    [row] = row_geometry(page, added)
    assert_a_card_of_labelled_values(row, PHONE)
    labels = [cell["label"] for cell in row["cells"]]
    assert labels == ["Caller", "To", "Elapsed", "Level"]  # no empty badge cell

    to_the_page[-1].send(json.dumps({"event": "ended", "call_id": live.pk}))
    ended = f'[data-finished-rows] tr[data-call-id="{live.pk}"]'
    page.wait_for_selector(ended)
    [row] = row_geometry(page, ended)
    assert_a_card_of_labelled_values(row, PHONE)
    assert started_dates(page)[0]["lines"] == 1
    assert sideways_overflow(page) == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "call-list-phone-live-dark.png", full_page=True)
