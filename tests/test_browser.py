"""A real headless Chromium plays a simulated call's recording from the pages."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import httpx
import pytest

from recordings_app.simulator.caller import CallPlan, play_call
from recordings_app.simulator.sounds import load_wav, speak

from .helpers import ROOT, require, wait_for_recordings

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts"
HAVE_METADATA = 1
USER_PASSWORD = "pw-listener-1"  # the `user` fixture's


@pytest.fixture
def spoken_call(daphne_server, tmp_path: Path):
    """A call whose audio is real speech (espeak-ng), played in like Vonage would."""
    require("espeak-ng")
    wav = speak(
        "Hello. This is callrecorder. Every word of this call is kept, "
        "and you can play it back from the page.",
        tmp_path / "speech.wav",
    )

    async def play():
        async with httpx.AsyncClient(timeout=30) as http:
            plan = CallPlan(audio=partial(load_wav, wav), dtmf="1", realtime=False)
            return await play_call(http, daphne_server.url, plan)

    sent = asyncio.run(play())
    # Read the database now: Playwright's sync API runs an event loop, and
    # Django refuses synchronous queries while one runs.
    [recording] = wait_for_recordings(sent.uuid)
    with recording.file.open("rb") as stored:
        return sent, recording, stored.read()


def test_a_simulated_call_shows_on_the_list_and_plays_in_the_detail_page(
    daphne_server, user, spoken_call, browser
):
    ARTIFACTS.mkdir(exist_ok=True)
    spoken_call, recording, stored_bytes = spoken_call
    expected_seconds = len(spoken_call.audio) / 2 / spoken_call.sample_rate
    page = browser.new_page(viewport={"width": 1100, "height": 720})
    media_responses = []
    page.on(
        "response",
        lambda response: (
            media_responses.append(response)
            if response.url.endswith(recording.get_absolute_url())
            else None
        ),
    )

    page.goto(daphne_server.url + "/")
    # Recordings are private: the list sends a stranger to sign in first.
    assert page.get_by_role("heading", name="Sign in").is_visible()
    page.get_by_label("User name").fill(user.username)
    page.get_by_label("Password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(daphne_server.url + "/")
    row = page.get_by_role("row").filter(has_text="447700900123")
    assert row.count() == 1
    page.screenshot(path=ARTIFACTS / "call-list-played.png", full_page=True)

    row.get_by_role("link").first.click()
    page.wait_for_url(daphne_server.url + recording.call.get_absolute_url())
    audio = page.locator("audio")
    page.wait_for_function(
        f"a => a.readyState >= {HAVE_METADATA}", arg=audio.element_handle()
    )
    duration = audio.evaluate("a => a.duration")
    assert duration == pytest.approx(expected_seconds, abs=0.1)

    middle = duration / 2
    audio.evaluate(
        """(a, t) => new Promise(resolve => {
            a.addEventListener('seeked', resolve, {once: true});
            a.currentTime = t;
        })""",
        middle,
    )
    assert audio.evaluate("a => a.currentTime") == pytest.approx(middle, abs=0.05)
    assert audio.evaluate("a => a.seekable.length") == 1
    assert audio.evaluate("a => a.seekable.end(0)") == pytest.approx(duration, abs=0.1)
    assert 206 in [response.status for response in media_responses]
    # call-detail.png is taken by test_browser_detail.py, with event markers.

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download WAV").click()
    downloaded = Path(download_info.value.path()).read_bytes()
    assert downloaded == stored_bytes
    assert downloaded[44:] == spoken_call.audio
