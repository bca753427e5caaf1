"""Helpers shared by the test modules: audio, sockets, calls, servers, S3.

Plain functions and constants only; fixtures live in conftest.py, which
imports what it needs from here. Test modules import from this module, never
from one another or from conftest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission, User
from django.db import connections
from django.test import Client

from recordings_app.audio.spool import SpoolWriter
from recordings_app.live.pause import ask_to_pause
from recordings_app.models import Call, LiveSocket, Recording
from recordings_app.routing import websocket_urlpatterns
from recordings_app.services import recordings
from recordings_app.signatures import socket_token

ROOT = Path(__file__).resolve().parent.parent


# --- PCM audio --------------------------------------------------------------


FRAME = 640  # 20 ms at 16 kHz


def pcm(seconds: float, rate: int, seed: int = 1) -> bytes:
    """Noise: any dropped, repeated or shifted byte changes the result."""
    return random.Random(seed).randbytes(int(seconds * rate) * 2)


# Real human speech, 16 kHz (../shared/audio): what compression is judged on.
SPEECH_DIR = ROOT.parent / "shared" / "audio"


def speech(name: str = "two_cities-16k.wav") -> bytes:
    """The PCM of one of the team's speech recordings."""
    with wave.open(str(SPEECH_DIR / name)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (
            1,
            2,
            16000,
        )
        return wav.readframes(wav.getnframes())


def wav_of(recording: Recording) -> tuple[int, bytes]:
    with recording.file.open("rb") as handle, wave.open(handle) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        return wav.getframerate(), wav.readframes(wav.getnframes())


# --- sockets: the recording consumer, as Vonage connects to it --------------


application = URLRouter(websocket_urlpatterns)


def ids(n: int = 1) -> dict[str, str]:
    return {
        "uuid": f"aaaaaaaa-0000-0000-0000-{n:012d}",
        "conversation_uuid": f"CON-bbbbbbbb-0000-0000-0000-{n:012d}",
    }


def socket_path(n: int = 1) -> str:
    """The URI the answer webhook gives Vonage: the call's ids and its token."""
    call = ids(n)
    token = socket_token(
        call_uuid=call["uuid"], conversation_uuid=call["conversation_uuid"]
    )
    return "/ws/audio?" + urlencode({**call, "token": token})


def vonage_socket(
    path: str, *, headers=None, client: tuple[str, int] = ("127.0.0.1", 50000)
) -> WebsocketCommunicator:
    """The audio socket as it is opened: by default from this machine, as the
    simulator does (without VONAGE_SIGNATURE_SECRET only loopback is taken)."""
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    communicator.scope["client"] = list(client)  # read when the app starts
    return communicator


async def open_socket(
    n: int = 1, *, rate: int = 16000, query: str | None = None, headers=None
):
    path = socket_path(n) if query is None else f"/ws/audio?{query}"
    communicator = vonage_socket(path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    if rate:
        await communicator.send_to(text_data=json.dumps(connected_message(n, rate)))
    return communicator


def connected_message(n: int = 1, rate: int = 16000) -> dict[str, str]:
    """Vonage's first text message on the socket."""
    return {
        "event": "websocket:connected",
        "content-type": f"audio/l16;rate={rate}",
        "call_uuid": ids(n)["uuid"],
        "conversation_uuid": ids(n)["conversation_uuid"],
    }


async def send_frames(communicator, audio: bytes, frame: int) -> None:
    for start in range(0, len(audio), frame):
        await communicator.send_to(bytes_data=audio[start : start + frame])


# --- users and what they may do --------------------------------------------

# What each kind of user is given (a new user may do nothing).
LISTENER = ["view_all_calls", "play_recording"]
SUPERVISOR = [*LISTENER, "listen_live", "pause_recording"]


def grant(user: User, *codenames: str) -> User:
    """Give the user these recordings_app permissions (by codename)."""
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="recordings_app", codename__in=codenames
        )
    )
    return User.objects.get(pk=user.pk)  # no stale permission cache


# --- live: dashboards, listen-in, pause ----------------------------------


@database_sync_to_async
def signed_in(*, staff: bool = False, name: str = "alice") -> tuple[User, bytes]:
    """A user and the Cookie header of their session: a listener, or (staff)
    a supervisor who may also listen in and pause."""
    user = User.objects.create_user(name, password="pw", is_staff=staff)
    user = grant(user, *(SUPERVISOR if staff else LISTENER))
    client = Client()
    client.force_login(user)
    return user, f"sessionid={client.cookies['sessionid'].value}".encode()


def browser_headers(
    cookie: bytes | None,
    origin: bytes = b"http://localhost:8000",
    host: bytes = b"localhost:8000",
):
    """A page's socket handshake: its site's Origin, the Host, the session."""
    headers = [(b"origin", origin), (b"host", host)]
    if cookie:
        headers.append((b"cookie", cookie))
    return headers


async def open_dashboard(cookie: bytes | None, **kwargs) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application, "/ws/calls", headers=browser_headers(cookie, **kwargs)
    )
    await communicator.connect()
    return communicator


async def next_event(communicator, event: str, timeout: float = 5.0) -> dict:
    """The next JSON message of that kind, skipping others (levels, say)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        message = await communicator.receive_json_from(timeout=max(left, 0.01))
        if message["event"] == event:
            return message


@database_sync_to_async
def caller(n: int = 1, number: str = "447700900777") -> Call:
    """The call as the answer webhook leaves it: numbers known, socket not yet open."""
    return Call.objects.create(
        uuid=ids(n)["uuid"],
        conversation_uuid=ids(n)["conversation_uuid"],
        from_number=number,
        to_number="447700900000",
        status="answered",
    )


async def wait_until_live(n: int = 1) -> LiveSocket:
    for _ in range(200):
        live_socket = (
            await LiveSocket.objects.filter(call__uuid=ids(n)["uuid"])
            .select_related("call")
            .afirst()
        )
        if live_socket is not None:
            return live_socket
        await asyncio.sleep(0.01)
    raise AssertionError("the call never went live")


async def close_code(path: str, cookie: bytes | None) -> int:
    """The code a socket is closed with right after it opens."""
    communicator = WebsocketCommunicator(
        application, path, headers=browser_headers(cookie)
    )
    await communicator.connect()
    message = await communicator.receive_output(timeout=5)
    assert message["type"] == "websocket.close"
    return message["code"]


async def pause(live_socket: LiveSocket, paused: bool, by: str = "alice") -> bool:
    return await ask_to_pause(
        get_channel_layer(), live_socket.channel_name, paused=paused, by=by
    )


# --- calls and recordings ---------------------------------------------------


def make_call(n: int, **fields) -> Call:
    return Call.objects.create(
        uuid=f"aaaaaaaa-0000-0000-0000-{n:012d}",
        conversation_uuid=f"CON-{n}",
        from_number=f"4477001{n:05d}",
        to_number="447700900000",
        status="completed",
        **fields,
    )


def record(call: Call, audio: bytes, spool_dir: Path, rate: int = 16000) -> Recording:
    spool = SpoolWriter(
        spool_dir,
        call_uuid=call.uuid,
        conversation_uuid=call.conversation_uuid,
        sample_rate=rate,
    )
    for start in range(0, len(audio), 640):
        spool.write(audio[start : start + 640])
    return recordings.recording_finalize(call=call, spool=spool.close())


def crashed_writer(spool_dir, audio: bytes, *, flush_every_frame: bool = True) -> None:
    """A process that spools audio and dies without closing anything (os._exit)."""
    script = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import os
from pathlib import Path
from recordings_app.audio.spool import SpoolWriter
audio = sys.stdin.buffer.read()
writer = SpoolWriter(
    Path({str(spool_dir)!r}),
    call_uuid="aaaaaaaa-0000-0000-0000-000000000001",
    conversation_uuid="CON-1",
    sample_rate=16000,
    flush_seconds={0.0 if flush_every_frame else 3600.0},
)
for start in range(0, len(audio), {FRAME}):
    writer.write(audio[start:start + {FRAME}])
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", script], input=audio, check=True)


@database_sync_to_async
def recordings_of(n: int = 1) -> list[Recording]:
    return list(
        Recording.objects.select_related("call").filter(call__uuid=ids(n)["uuid"])
    )


def wait_for_recordings(call_uuid: str, count: int = 1, timeout: float = 15.0):
    """The server finishes a recording just after the socket closes: wait for it,
    and for the call to leave the live list (its row goes just after; until
    then retention, say, still counts the call as in progress)."""
    from recordings_app.models import LiveSocket, Recording

    deadline = time.monotonic() + timeout
    while True:
        recordings = list(
            Recording.objects.select_related("call").filter(call__uuid=call_uuid)
        )
        live = LiveSocket.objects.filter(call__uuid=call_uuid).exists()
        if (len(recordings) >= count and not live) or time.monotonic() > deadline:
            return recordings
        time.sleep(0.05)


def body(response) -> bytes:
    """Read a streamed response the way the ASGI server does (async iteration)."""

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)()


# --- servers and browsers ---------------------------------------------------


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
            "CALLRECORDER_AUDIT_CHECKPOINT_DIR": str(spool_dir.parent / "audit"),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.log = open(log_path, "wb")  # noqa: SIM115
        if uvicorn:  # as README's production section runs it
            server = ["uvicorn", "--host", "127.0.0.1", "--port", str(self.port)]
            server += ["--ws-max-size", str(1024 * 1024)]
            server += ["--loop", "uvloop", "--http", "httptools"]
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


# --- S3-compatible storage: a real moto server ------------------------------


S3_BUCKET = "callrecorder-test"
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


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
