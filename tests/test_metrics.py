"""/healthz, /readyz and /metrics: who may read them, what they say, and that
the figures are right after real calls, in one process and summed over two."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core.files.storage import FileSystemStorage
from prometheus_client.parser import text_string_to_metric_families

from recordings_app import metrics
from recordings_app.consumers.audio import close_counted
from recordings_app.models import LiveSocket
from recordings_app.services import recordings
from recordings_app.simulator.caller import CallPlan, play_call
from recordings_app.views import health

from .helpers import (
    DaphneServer,
    crashed_writer,
    free_port,
    make_call,
    pcm,
    record,
    use_s3,
    wait_for_recordings,
)

TOKEN = "a-metrics-token-of-32-characters-or-more"
OUTSIDE = "203.0.113.9"  # TEST-NET-3: never allowed by default
FS = "django.core.files.storage.FileSystemStorage"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of an exposition, parsed as Prometheus parses it."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(figures: dict, name: str, **labels: str) -> float | None:
    return figures.get((name, tuple(sorted(labels.items()))))


def process_value(name: str, **labels: str) -> float:
    return metrics.PROCESS.get_sample_value(name, labels) or 0.0


@pytest.fixture(autouse=True)
def _health_checks_finish() -> Iterator[None]:
    """A check left running by a test (a storage that hangs) ends before the next."""
    yield
    for running in list(health._running.values()):
        with contextlib.suppress(Exception):  # its outcome was the test's
            running.result(timeout=30)


class BrokenStorage(FileSystemStorage):
    """A storage that does not answer: every call fails."""

    def exists(self, name: str) -> bool:
        raise ConnectionError("the storage is down")

    def _save(self, name, content):
        raise ConnectionError("the storage is down")


HANGING = threading.Event()


class HangingStorage(FileSystemStorage):
    def exists(self, name: str) -> bool:
        HANGING.wait(10)
        return False


def storage(settings, backend: str, **options) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": backend, "OPTIONS": options},
    }


def closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


# --- /healthz and /readyz ---------------------------------------------------


def test_healthz_answers_ok_without_touching_the_database(client):
    """No django_db mark: a query here would fail the test."""
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_readyz_is_200_when_database_storage_and_channel_layer_answer(client):
    response = client.get("/readyz")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "ready": True,
        "failed": [],
        "checks": {"database": "ok", "storage": "ok", "channel layer": "ok"},
    }


@pytest.mark.django_db
def test_health_pages_skip_sign_in_even_for_a_half_signed_in_user(
    client, django_user_model, settings
):
    """A user who owes a second factor is sent to it from every page, not here."""
    settings.CALLRECORDER_REQUIRE_MFA = True
    staff = django_user_model.objects.create_user(
        "boss", password="pw-boss-1", is_staff=True
    )
    client.force_login(staff)

    assert client.get("/").status_code == 302
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200


@pytest.mark.django_db
def test_readyz_is_503_naming_the_storage_when_it_fails(client, settings):
    storage(settings, "tests.test_metrics.BrokenStorage")

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["storage"]
    assert body["checks"]["storage"] == "ConnectionError: the storage is down"
    assert body["checks"]["database"] == body["checks"]["channel layer"] == "ok"


@pytest.mark.django_db
def test_readyz_is_200_on_s3_and_503_when_the_s3_endpoint_refuses(
    client, settings, monkeypatch, s3_endpoint
):
    use_s3(s3_endpoint, settings, monkeypatch)
    assert client.get("/readyz").status_code == 200

    from botocore.config import Config

    storage(
        settings,
        "storages.backends.s3.S3Storage",
        bucket_name="callrecorder-test",
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        region_name="us-east-1",
        client_config=Config(retries={"max_attempts": 0}, connect_timeout=1),
    )
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failed"] == ["storage"]
    assert "EndpointConnectionError" in response.json()["checks"]["storage"]


@pytest.mark.django_db
def test_readyz_is_503_naming_the_channel_layer_when_redis_is_unreachable(
    client, settings
):
    settings.HEALTH_CHECK_TIMEOUT_SECONDS = 1.0
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{closed_port()}/0"]},
        }
    }

    started = time.monotonic()
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failed"] == ["channel layer"]
    assert time.monotonic() - started < 3  # the timeout holds


@pytest.mark.django_db
def test_a_hanging_storage_times_out_and_holds_one_thread_at_most(client, settings):
    settings.HEALTH_CHECK_TIMEOUT_SECONDS = 0.5
    storage(settings, "tests.test_metrics.HangingStorage")
    HANGING.clear()
    try:
        first = client.get("/readyz").json()
        second = client.get("/readyz").json()
    finally:
        HANGING.set()

    assert first["failed"] == second["failed"] == ["storage"]
    assert first["checks"]["storage"] == "no answer within 0.5 s"
    assert second["checks"]["storage"].startswith("StillBusy")


def test_readyz_names_the_database_when_it_is_down_and_healthz_still_answers(
    settings, tmp_path: Path
):
    """A real server whose database cannot be opened."""
    server = DaphneServer(
        media_root=settings.MEDIA_ROOT,
        spool_dir=settings.SPOOL_DIR,
        log_path=tmp_path / "server.log",
        extra_env={"DATABASE_URL": f"sqlite:///{tmp_path}/no-such-dir/db.sqlite3"},
    )
    try:
        health_page = httpx.get(server.url + "/healthz", timeout=10)
        ready = httpx.get(server.url + "/readyz", timeout=10)
        ready_again = httpx.get(server.url + "/readyz", timeout=10)
    finally:
        server.stop()

    assert health_page.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["failed"] == ["database"]
    assert "OperationalError" in ready.json()["checks"]["database"]
    assert ready_again.status_code == 503
    # Logged once when it changed, not per probe, and not as Django's error.
    log = server.output()
    assert log.count("not ready: database") == 1, log
    assert "Service Unavailable" not in log


# --- who may read /metrics ----------------------------------------------------


@pytest.mark.django_db
def test_metrics_from_an_address_not_allowed_without_a_token_set_is_403(
    client, settings
):
    settings.METRICS_TOKEN = ""

    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE)

    assert response.status_code == 403
    assert b"callrecorder" not in response.content


@pytest.mark.django_db
def test_metrics_with_a_wrong_or_missing_token_is_401(client, settings):
    settings.METRICS_TOKEN = TOKEN

    wrong = client.get(
        "/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer not-the-token"
    )
    missing = client.get("/metrics", REMOTE_ADDR=OUTSIDE)
    prefix = client.get(
        "/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=f"Bearer {TOKEN[:-1]}"
    )
    basic = client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=TOKEN)

    assert [r.status_code for r in (wrong, missing, prefix, basic)] == [401] * 4
    assert wrong["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"callrecorder" not in wrong.content + missing.content


@pytest.mark.django_db
def test_an_empty_token_never_matches_when_none_is_set(client, settings):
    settings.METRICS_TOKEN = ""

    response = client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer ")

    assert response.status_code == 401


@pytest.mark.django_db
def test_a_wrong_token_is_refused_even_from_an_allowed_address(client, settings):
    settings.METRICS_TOKEN = TOKEN

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")

    assert response.status_code == 401


@pytest.mark.django_db
def test_metrics_with_the_token_from_anywhere_is_200_and_valid(client, settings):
    settings.METRICS_TOKEN = TOKEN

    response = client.get(
        "/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION=f"Bearer {TOKEN}"
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    figures = samples(response.content.decode())
    assert value(figures, "callrecorder_state_read") == 1
    assert value(figures, "callrecorder_calls_in_progress") == 0
    assert value(figures, "callrecorder_spools_waiting") == 0
    assert value(figures, "callrecorder_recordings_failed_total", via="socket") >= 0
    assert value(figures, "callrecorder_webhook_deliveries", state="pending") == 0
    assert value(figures, "callrecorder_webhook_deliveries", state="failed") == 0


@pytest.mark.django_db
def test_metrics_from_loopback_needs_no_token_by_default(client, settings):
    settings.METRICS_TOKEN = TOKEN

    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::ffff:127.0.0.1").status_code == 200


@pytest.mark.django_db
def test_metrics_allowed_ips_take_cidrs_and_can_be_emptied(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.1.0.0/16"]

    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    settings.METRICS_ALLOWED_IPS = []
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403


@pytest.mark.django_db
def test_loopback_through_a_proxy_nobody_listed_is_not_let_in(client, settings):
    """nginx on this machine makes every client 127.0.0.1 unless listed in
    TRUSTED_PROXIES; then the address nginx saw is the one that counts."""
    settings.TRUSTED_PROXIES = []
    through_unlisted = client.get(
        "/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=OUTSIDE
    )
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    outsider = client.get(
        "/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=OUTSIDE
    )
    settings.METRICS_ALLOWED_IPS = [OUTSIDE]
    listed = client.get(
        "/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=OUTSIDE
    )
    spoofed = client.get(
        "/metrics", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR=OUTSIDE
    )

    assert through_unlisted.status_code == 403
    assert outsider.status_code == 403
    assert listed.status_code == 200
    assert spoofed.status_code == 403  # a forwarded address only from our proxy


# --- what the figures say -----------------------------------------------------


@pytest.mark.django_db
def test_an_answer_counts_a_call_set_up_and_its_latency_and_a_refusal_does_not(
    client,
):
    set_up = process_value("callrecorder_calls_set_up_total")
    answers = process_value("callrecorder_answer_latency_seconds_count")
    call = {"uuid": "u-1", "conversation_uuid": "CON-1", "from": "1", "to": "2"}

    assert client.get("/webhooks/answer", call).status_code == 200
    assert client.get("/webhooks/answer", {"uuid": ""}).status_code == 400

    assert process_value("callrecorder_calls_set_up_total") == set_up + 1
    assert process_value("callrecorder_answer_latency_seconds_count") == answers + 1
    assert process_value("callrecorder_answer_latency_seconds_bucket", le="5.0") >= 1


@pytest.mark.django_db
def test_a_recording_that_fails_to_store_is_counted_and_recovery_counts_its_own(
    settings,
):
    failed = process_value("callrecorder_recordings_failed_total", via="socket")
    stored = process_value("callrecorder_recordings_stored_total", via="recovery")
    storage(settings, "tests.test_metrics.BrokenStorage")

    with pytest.raises(ConnectionError):
        record(make_call(1), pcm(0.2, 16000), settings.SPOOL_DIR)

    assert process_value("callrecorder_recordings_failed_total", via="socket") == (
        failed + 1
    )
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": FS}}
    [meta] = Path(settings.SPOOL_DIR).glob("*.json")
    assert recordings.recording_recover(meta_path=meta) is not None
    assert process_value("callrecorder_recordings_stored_total", via="recovery") == (
        stored + 1
    )


class _SpoolThatWontClose:
    frame_count, bytes_received = 3, 1920

    def close(self):
        raise OSError("disk gone")


async def test_a_spool_that_cannot_close_still_counts_its_audio_and_a_failure():
    frames = process_value("callrecorder_audio_frames_received_total")
    failed = process_value("callrecorder_recordings_failed_total", via="socket")

    with pytest.raises(OSError):
        await close_counted(_SpoolThatWontClose())

    assert process_value("callrecorder_audio_frames_received_total") == frames + 3
    assert process_value("callrecorder_recordings_failed_total", via="socket") == (
        failed + 1
    )


@pytest.mark.django_db(transaction=True)
def test_spools_waiting_are_orphans_past_the_grace_period_without_a_live_socket(
    client, settings
):
    settings.CALLRECORDER_RECOVERY_GRACE_SECONDS = 0
    crashed_writer(settings.SPOOL_DIR, pcm(0.2, 16000))
    [meta] = Path(settings.SPOOL_DIR).glob("*.json")

    orphan = samples(client.get("/metrics").content.decode())
    live = LiveSocket.objects.create(
        call=make_call(1),
        channel_name="specific.x!1",
        spool_name=meta.with_suffix(".wav").name,
        sample_rate=16000,
    )
    recording = samples(client.get("/metrics").content.decode())
    settings.CALLRECORDER_RECOVERY_GRACE_SECONDS = 3600
    live.delete()
    within_grace = samples(client.get("/metrics").content.decode())

    assert value(orphan, "callrecorder_spools_waiting") == 1
    assert value(orphan, "callrecorder_calls_in_progress") == 0
    assert value(recording, "callrecorder_spools_waiting") == 0
    assert value(recording, "callrecorder_calls_in_progress") == 1
    assert value(within_grace, "callrecorder_spools_waiting") == 0


def noise(seconds: float, seed: int) -> CallPlan:
    return CallPlan(
        audio=lambda rate: random.Random(seed).randbytes(int(rate * seconds) * 2)
    )


async def scrape(http: httpx.AsyncClient, url: str) -> dict:
    response = await http.get(url + "/metrics")
    assert response.status_code == 200, response.text
    return samples(response.text)


async def scrape_until(http, url: str, ready, timeout: float = 10.0) -> dict:
    """The counters of a call move just after its recording row is saved."""
    deadline = time.monotonic() + timeout
    while not ready(figures := await scrape(http, url)):
        if time.monotonic() > deadline:
            return figures
        await asyncio.sleep(0.05)
    return figures


def stored(figures: dict) -> float:
    return value(figures, "callrecorder_recordings_stored_total", via="socket") or 0


@pytest.mark.e2e
@pytest.mark.usefixtures("close_async_orm_connections")
async def test_after_one_real_call_every_figure_is_right(daphne_server):
    async with httpx.AsyncClient(timeout=10) as http:
        before = await scrape(http, daphne_server.url)
        playing = asyncio.ensure_future(
            play_call(http, daphne_server.url, noise(2.0, seed=3))
        )
        during = await scrape_until(
            http,
            daphne_server.url,
            lambda f: value(f, "callrecorder_calls_in_progress") == 1,
        )
        sent = await playing
        await sync_to_async(wait_for_recordings)(sent.uuid)
        after = await scrape_until(http, daphne_server.url, lambda f: stored(f) == 1)

    assert value(before, "callrecorder_calls_set_up_total") == 0
    assert value(during, "callrecorder_calls_in_progress") == 1
    assert sent.frames_sent == 100
    assert value(after, "callrecorder_calls_set_up_total") == 1
    assert value(after, "callrecorder_audio_frames_received_total") == 100
    assert value(after, "callrecorder_audio_bytes_received_total") == 100 * 640
    assert stored(after) == 1
    assert value(after, "callrecorder_recordings_failed_total", via="socket") == 0
    assert value(after, "callrecorder_answer_latency_seconds_count") == 1
    assert 0 < value(after, "callrecorder_answer_latency_seconds_sum") < 5
    assert value(after, "callrecorder_calls_in_progress") == 0
    assert value(after, "callrecorder_spools_waiting") == 0


@pytest.mark.e2e
@pytest.mark.usefixtures("close_async_orm_connections")
async def test_two_workers_each_report_the_sum_of_both(
    settings, transactional_db, tmp_path: Path
):
    """As in production (README: one Uvicorn per port, one metrics folder per
    machine): a call on each worker, and either worker's /metrics adds both up."""
    metrics_dir = tmp_path / "metrics"
    workers = []
    try:
        for name in ("a", "b"):
            workers.append(
                DaphneServer(
                    media_root=settings.MEDIA_ROOT,
                    spool_dir=tmp_path / f"spool-{name}",
                    log_path=tmp_path / f"worker-{name}.log",
                    extra_env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
                )
            )
        a, b = workers
        async with httpx.AsyncClient(timeout=10) as http:
            first = await play_call(http, a.url, noise(1.0, seed=1))
            await sync_to_async(wait_for_recordings)(first.uuid)
            one_call = await scrape_until(http, b.url, lambda f: stored(f) == 1)
            second = await play_call(http, b.url, noise(0.6, seed=2))
            await sync_to_async(wait_for_recordings)(second.uuid)
            from_a = await scrape_until(http, a.url, lambda f: stored(f) == 2)
            from_b = await scrape(http, b.url)
    finally:
        for worker in workers:
            worker.stop()

    # Worker b reports the call worker a took: the counts are shared.
    assert value(one_call, "callrecorder_calls_set_up_total") == 1
    assert value(one_call, "callrecorder_audio_frames_received_total") == 50
    for figures in (from_a, from_b):
        assert value(figures, "callrecorder_calls_set_up_total") == 2
        assert value(figures, "callrecorder_audio_frames_received_total") == 80
        assert value(figures, "callrecorder_audio_bytes_received_total") == 80 * 640
        assert stored(figures) == 2
        assert value(figures, "callrecorder_answer_latency_seconds_count") == 2
        assert value(figures, "callrecorder_calls_in_progress") == 0
    pids = {path.stem.rsplit("_", 1)[-1] for path in metrics_dir.glob("*.db")}
    assert {str(a.process.pid), str(b.process.pid)} <= pids
