from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from django.conf import settings as django_settings
from django.db import connections

from recordings_app.services import audit

from .helpers import (
    LISTENER,
    S3_BUCKET,
    DaphneServer,
    free_port,
    grant,
    require,
    running_server,
    s3_client,
)


@pytest.fixture(autouse=True)
def _media_and_spool(settings, tmp_path: Path) -> Iterator[None]:
    """Each test writes recordings, spools and audit checkpoints under its own
    tmp_path, and starts with no checkpoint pending from another."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SPOOL_DIR = tmp_path / "spool"
    settings.CALLRECORDER_AUDIT_CHECKPOINT_DIR = tmp_path / "audit"
    audit.checkpoints.reset()
    yield
    audit.checkpoints.reset()


@pytest.fixture(autouse=True)
def _a_channel_layer_per_test() -> Iterator[None]:
    """Each test gets channel layers of its own, as each process does.

    Every async test runs on its own event loop, and channels-redis keeps
    per-channel locks that only a task on the loop which took them releases
    (after a message, a cleanup task does). A test that ends just after a
    receive leaves such a lock held for good; on a layer shared with later
    tests, their receives then hang or fail with "bound to a different
    event loop".
    """
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory) -> None:
    """Keep the SQLite test database in a file, so a Daphne subprocess can share it."""
    db = django_settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db.setdefault("TEST", {})["NAME"] = str(
            tmp_path_factory.mktemp("db") / "test.sqlite3"
        )


@pytest.fixture(scope="session", autouse=True)
def _worker_thread_connection_closed_at_the_end(django_db_setup) -> Iterator[None]:
    """Async tests' ORM calls and the webhooks' writer run in asgiref's one
    worker thread, whose connection stays checked out of the pool; closed
    before the test database is dropped, which it would otherwise block
    ("being accessed by other users")."""
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture
def user(django_user_model):
    """A signed-in listener: sees and plays every call, may not delete."""
    listener = django_user_model.objects.create_user(
        "listener", password="pw-listener-1"
    )
    return grant(listener, *LISTENER)


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def session_cookies(user_client) -> dict[str, str]:
    """The signed-in user's session cookie, for HTTP clients other than Django's."""
    return {name: morsel.value for name, morsel in user_client.cookies.items()}


@pytest.fixture
async def close_async_orm_connections() -> AsyncIterator[None]:
    """Close what async ORM calls (aget, acount) opened in asgiref's worker thread.

    Otherwise that thread keeps a PostgreSQL session open and the test
    database cannot be dropped at the end of the run.
    """
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def daphne_env() -> dict[str, str]:
    """Environment for the Daphne server of a test; override to change settings."""
    return {}


@pytest.fixture
def daphne_args() -> list[str]:
    """Extra command-line flags for the Daphne server of a test."""
    return []


@pytest.fixture
def uvicorn_server(
    transactional_db, settings, tmp_path: Path
) -> Iterator[DaphneServer]:
    """The app under Uvicorn, the ASGI server recommended for production."""
    with running_server(settings, tmp_path, uvicorn=True) as server:
        yield server


@pytest.fixture
def daphne_server(
    transactional_db, settings, tmp_path: Path, daphne_env, daphne_args
) -> Iterator[DaphneServer]:
    """The app under Daphne, with the test's extra environment and flags."""
    with running_server(
        settings, tmp_path, extra_env=daphne_env, daphne_args=daphne_args
    ) as server:
        yield server


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
]


@pytest.fixture
def browser():
    require(CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_FLAGS
        )
        yield browser
        browser.close()


# --- S3-compatible storage: a real moto server ------------------------------


@pytest.fixture
def s3_endpoint(tmp_path) -> Iterator[str]:
    """A moto S3 server in its own process, with an empty bucket."""
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError((tmp_path / "moto.log").read_text()) from None
            time.sleep(0.1)
    s3_client(endpoint).create_bucket(Bucket=S3_BUCKET)
    yield endpoint
    process.terminate()
    process.wait(timeout=10)
    log.close()
