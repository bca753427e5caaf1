"""Two Daphne processes, one PostgreSQL, one Redis, one S3 server: a call
recorded by one is watched, heard and paused through the other, as in a
deployment with several workers behind a proxy."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from channels.layers import get_channel_layer
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from recordings_app.models import Call, CallEvent
from recordings_app.simulator.caller import CallPlan, play_call
from recordings_app.simulator.sounds import beep_tone

from .helpers import (
    ROOT,
    S3_BUCKET,
    SUPERVISOR,
    DaphneServer,
    grant,
    outside_the_event_loop,
    s3_client,
    sign_in,
    use_s3,
    wait_for_recordings,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"),
        reason="needs PostgreSQL and Redis: runs in make test's second pass",
    ),
]

ARTIFACTS = ROOT / "test-artifacts"
CALLER = "447700900555"
CALL_SECONDS = 20.0
PASSWORD = "pw-supervisor-1"


def redis_reachable() -> None:
    """This pass promises Redis; a dead one is a failure, not a skip."""
    url = urlsplit(os.environ["REDIS_URL"])
    try:
        socket.create_connection((url.hostname, url.port or 6379), timeout=2).close()
    except OSError as error:
        pytest.fail(f"Redis at {url.hostname}:{url.port} is unreachable: {error}")


@pytest.fixture
def two_workers(s3_endpoint, settings, monkeypatch, transactional_db, tmp_path: Path):
    """Workers A and B: each its own process and spool, everything else shared."""
    redis_reachable()
    env = use_s3(s3_endpoint, settings, monkeypatch)
    workers = []
    try:
        for name in ("a", "b"):
            workers.append(
                DaphneServer(
                    media_root=settings.MEDIA_ROOT,
                    spool_dir=tmp_path / f"spool-{name}",
                    log_path=tmp_path / f"worker-{name}.log",
                    extra_env=env,
                )
            )
        yield workers
    finally:
        for worker in workers:
            worker.stop()
            print(f"\n--- worker output ---\n{worker.output()[-4000:]}")


@pytest.fixture
def supervisor(django_user_model):
    """Staff who may pause and listen in (made before the browser starts)."""
    supervisor = django_user_model.objects.create_user(
        "supervisor", password=PASSWORD, is_staff=True
    )
    return grant(supervisor, *SUPERVISOR)


@pytest.fixture
def earlier_calls():
    """Finished calls already listed: the live one must join them in place."""
    for n, number in enumerate(["447700900301", "447700900302"]):
        Call.objects.create(
            uuid=f"earlier-{n}",
            from_number=number,
            to_number="447700900000",
            status="completed",
            started_at=timezone.now() - timedelta(hours=n + 1),
            ended_at=timezone.now() - timedelta(hours=n + 1, minutes=-3),
            duration_seconds=180,
        )


def call_in_background(base_url: str) -> tuple[threading.Thread, dict]:
    """Vonage streaming a 20-second call, in real time, into one worker."""
    result: dict = {}

    async def play():
        async with httpx.AsyncClient(timeout=30) as http:
            plan = CallPlan(
                audio=lambda rate: beep_tone(rate, CALL_SECONDS), from_number=CALLER
            )
            result["call"] = await play_call(http, base_url, plan)

    thread = threading.Thread(target=lambda: asyncio.run(play()))
    thread.start()
    return thread, result


async def test_an_idle_consumer_outlives_redis_blocking_reads():
    """A dashboard with nothing to show waits on Redis for longer than one
    5-second blocking read; that wait must not end in a Redis timeout."""
    redis_reachable()
    layer = get_channel_layer()
    channel = await layer.new_channel()
    with pytest.raises(TimeoutError) as waited:
        await asyncio.wait_for(layer.receive(channel), timeout=7)
    assert type(waited.value) is TimeoutError  # ours, not redis.TimeoutError


def test_a_call_recorded_by_one_worker_is_live_paused_heard_and_played_on_another(
    two_workers, supervisor, earlier_calls, browser, s3_endpoint
):
    recorder, web = two_workers
    signed_in = browser.new_context()
    dashboard = signed_in.new_page()
    sign_in(dashboard, web.url, "supervisor", PASSWORD)
    dashboard.wait_for_selector(
        "[data-live-list][data-connected=true]", state="attached"
    )

    dashboard.evaluate("window.stillTheSamePage = true")  # gone if it reloads
    thread, result = call_in_background(recorder.url)
    try:
        # Worker B's list shows the call worker A is recording, with its level.
        live_row = dashboard.locator("[data-live-rows] tr").filter(has_text=CALLER)
        live_row.wait_for(timeout=10_000)
        dashboard.wait_for_function(
            "() => document.querySelector('[data-live-rows] meter').value > 0.1",
            timeout=5_000,
        )
        assert dashboard.locator("[data-live-list]").is_visible()
        expect(live_row.locator("[data-field=paused]")).to_be_hidden()
        ARTIFACTS.mkdir(exist_ok=True)
        dashboard.wait_for_function(  # a beep, not the gap between two
            "() => document.querySelector('[data-live-rows] meter').value > 0.3"
        )
        dashboard.screenshot(path=ARTIFACTS / "call-list-live.png", full_page=True)

        # Its page on worker B: listen in, then pause and resume recording.
        call_page = signed_in.new_page()
        call_page.goto(web.url + live_row.get_by_role("link").get_attribute("href"))
        expect(call_page.get_by_text("Recording now")).to_be_visible()
        call_page.get_by_role("button", name="Listen live").click()
        call_page.wait_for_function(
            "() => Number(document.querySelector('[data-listen-status]')"
            ".dataset.samples) >= 16000",
            timeout=5_000,
        )
        call_page.get_by_role("button", name="Pause recording").click()
        expect(call_page.get_by_text("Recording paused: silence")).to_be_visible()
        expect(call_page.get_by_text("recording paused by supervisor")).to_be_visible()
        expect(
            dashboard.locator("[data-live-rows] [data-field=paused]")
        ).to_be_visible()
        call_page.screenshot(path=ARTIFACTS / "call-live-paused.png", full_page=True)
        call_page.wait_for_timeout(1_000)
        call_page.get_by_role("button", name="Resume recording").click()
        expect(call_page.get_by_text("Recording resumed.")).to_be_visible()
    finally:
        thread.join(timeout=CALL_SECONDS + 30)

    sent = result["call"]
    [recording] = outside_the_event_loop(lambda: wait_for_recordings(sent.uuid))

    # The call leaves B's live list for its finished list, and plays from there.
    finished_row = dashboard.locator("[data-finished-rows] tr").filter(has_text=CALLER)
    finished_row.wait_for(timeout=10_000)
    assert dashboard.locator("[data-live-rows] tr").count() == 0
    assert dashboard.evaluate("window.stillTheSamePage") is True  # no reload
    rows = dashboard.locator("[data-finished-rows] tr").all_inner_texts()
    assert CALLER in rows[0]  # the newest first, above the earlier calls
    with dashboard.expect_response(
        lambda response: recording.get_absolute_url() in response.url
    ) as played:
        finished_row.get_by_role("button", name=f"Play the call from {CALLER}").click()
    assert played.value.status in (200, 206)

    # Its page (reloaded by itself when the call ended) plays the recording.
    call_page.wait_for_selector("audio", timeout=10_000)
    duration = call_page.eval_on_selector(
        "audio",
        "a => new Promise(done => a.readyState >= 1 ? done(a.duration)"
        " : a.addEventListener('loadedmetadata', () => done(a.duration)))",
    )
    assert duration == pytest.approx(CALL_SECONDS, abs=0.05)

    # The recording in S3: as long as the call, with the pause as silence.
    stored = s3_client(s3_endpoint).get_object(
        Bucket=S3_BUCKET, Key=recording.file.name
    )
    kept = stored["Body"].read()[44:]
    assert len(kept) == len(sent.audio)
    assert recording.paused_seconds >= 0.9
    assert bytes(16000) in kept  # half a second of silence at least
    statuses = outside_the_event_loop(
        lambda: list(
            CallEvent.objects.filter(call_id=recording.call_id, source="staff")
            .order_by("id")
            .values_list("status", "payload__by")
        )
    )
    assert statuses == [
        ("recording:paused", "supervisor"),
        ("recording:resumed", "supervisor"),
    ]
    assert "Traceback" not in recorder.output() + web.output()
