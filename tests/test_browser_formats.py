"""A sealed FLAC in a real Chromium: it plays, seeks, and offers both downloads."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from recordings_app.audio import sealing
from recordings_app.simulator.caller import CallPlan, play_call
from recordings_app.simulator.sounds import load_wav

from .helpers import SPEECH_DIR, wait_for_recordings
from .test_browser_detail import HAVE_METADATA, signed_in

pytestmark = pytest.mark.e2e

KEYS = sealing.new_key_spec()


@pytest.fixture
def daphne_env() -> dict[str, str]:
    return {"CALLRECORDER_STORAGE_FORMAT": "flac", "CALLRECORDER_ENCRYPTION_KEYS": KEYS}


@pytest.fixture
def sealed_flac(daphne_server, settings):
    settings.CALLRECORDER_ENCRYPTION_KEYS = KEYS
    speech = load_wav(SPEECH_DIR / "beckett-16k.wav", 16000)

    async def play():
        async with httpx.AsyncClient(timeout=30) as http:
            plan = CallPlan(audio=lambda rate: speech, realtime=False)
            return await play_call(http, daphne_server.url, plan)

    sent = asyncio.run(play())
    [recording] = wait_for_recordings(sent.uuid)
    assert recording.format == "flac" and recording.sealed
    return recording


@pytest.mark.parametrize("width", [390, 1280])
def test_a_sealed_flac_plays_and_seeks_and_both_downloads_are_there(
    daphne_server, sealed_flac, user, browser, width
):
    recording = sealed_flac
    page = signed_in(
        browser, daphne_server.url, user, viewport={"width": width, "height": 900}
    )
    page.goto(daphne_server.url + recording.call.get_absolute_url())
    page.wait_for_function(
        f"() => document.querySelector('audio').readyState >= {HAVE_METADATA}"
    )

    audio = page.locator("audio")
    duration = audio.evaluate("a => a.duration")
    assert duration == pytest.approx(recording.duration_seconds, abs=0.1)
    audio.evaluate("a => { a.currentTime = a.duration * 0.6; }")
    page.wait_for_function(
        "() => { const a = document.querySelector('audio');"
        " return !a.seeking && a.readyState >= 2 && a.currentTime > a.duration / 2; }"
    )
    wav = page.get_by_role("link", name="Download WAV")
    original = page.get_by_role("link", name="Download original (FLAC)")
    assert wav.get_attribute("href").endswith(".wav")
    assert wav.get_attribute("download") is not None
    assert original.is_visible() and wav.is_visible()
    assert page.get_by_text("encrypted", exact=True).is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    with page.expect_download() as download:
        wav.click()
    assert download.value.suggested_filename.endswith(".wav")
