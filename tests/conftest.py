from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.db import connections

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _media_and_spool(settings, tmp_path: Path) -> None:
    """Each test writes recordings and spools under its own tmp_path."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SPOOL_DIR = tmp_path / "spool"


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


@pytest.fixture
def user(django_user_model):
    """A signed-in listener: not staff, may play but not delete."""
    return django_user_model.objects.create_user("listener", password="pw-listener-1")


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


def wait_for_recordings(call_uuid: str, count: int = 1, timeout: float = 15.0):
    """The server finishes a recording just after the socket closes: wait for it."""
    from recordings_app.models import Recording

    deadline = time.monotonic() + timeout
    while True:
        recordings = list(
            Recording.objects.select_related("call").filter(call__uuid=call_uuid)
        )
        if len(recordings) >= count or time.monotonic() > deadline:
            return recordings
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """A URL for the test database this process uses, for a server subprocess."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    credentials = f"{user}{password}@" if user else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}{db['HOST']}{port}/{db['NAME']}"


class DaphneServer:
    """A real Daphne process serving the app on a free port (or Uvicorn, if asked)."""

    def __init__(
        self,
        *,
        media_root: Path,
        spool_dir: Path,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
        daphne_args: list[str] | None = None,
        uvicorn: bool = False,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "callrecorder.settings",
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(media_root),
            "SPOOL_DIR": str(spool_dir),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.log = open(log_path, "wb")  # noqa: SIM115
        if uvicorn:  # as README's production section runs it
            server = ["uvicorn", "--host", "127.0.0.1", "--port", str(self.port)]
            server += ["--ws-max-size", str(1024 * 1024)]
        else:
            server = ["daphne", "-b", "127.0.0.1", "-p", str(self.port)]
            server += daphne_args or []
        self.process = subprocess.Popen(
            [sys.executable, "-m", *server, "callrecorder.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_listening()

    def _wait_until_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Daphne exited early:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(
            f"Daphne did not listen within {timeout} s:\n{self.output()}"
        )

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def daphne_env() -> dict[str, str]:
    """Environment for the Daphne server of a test; override to change settings."""
    return {}


@pytest.fixture
def daphne_args() -> list[str]:
    """Extra command-line flags for the Daphne server of a test."""
    return []


@contextlib.contextmanager
def running_server(settings, tmp_path: Path, **options) -> Iterator[DaphneServer]:
    """A server on the test's database, media and spool; prints its output after."""
    server = DaphneServer(
        media_root=settings.MEDIA_ROOT,
        spool_dir=settings.SPOOL_DIR,
        log_path=tmp_path / "server.log",
        **options,
    )
    try:
        yield server
    finally:
        server.stop()
        sys.stdout.write(f"\n--- server output ---\n{server.output()[-5000:]}\n")


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


def require(path_or_command: str) -> None:
    """Skip when a tool is missing, except under CI, where it is a failure."""
    if shutil.which(path_or_command):
        return
    message = f"{path_or_command} is not installed (make test installs it as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def outside_the_event_loop(function, *args):
    """Run ORM work in a thread: Playwright's sync API runs an event loop in
    the test's thread, where Django refuses queries."""

    def run():
        try:
            return function(*args)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def sign_in(page, base_url: str, username: str, password: str) -> None:
    """Through the login form, as a person would; lands on the call list."""
    page.goto(base_url + "/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base_url + "/")


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

S3_BUCKET = "callrecorder-test"
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


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


def s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def use_s3(endpoint: str, settings, monkeypatch) -> dict[str, str]:
    """Store this test's recordings in the bucket; returns a server's environment."""
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": S3_BUCKET,
                "endpoint_url": endpoint,
                "region_name": "us-east-1",
                "default_acl": "private",
                "file_overwrite": False,
            },
        },
    }
    return {
        **S3_CREDENTIALS,
        "AWS_STORAGE_BUCKET_NAME": S3_BUCKET,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
    }
