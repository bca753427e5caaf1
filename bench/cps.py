"""Call setup rate (issue 16): open-loop arrivals at R calls a second, as Vonage calls.

Each call: the answer webhook (Vonage gives up after 5 s), the caller leg's
started, ringing, answered and completed events and the socket leg's
started, answered and completed events (posted as Vonage does, without
waiting on the socket), then the socket: `websocket:connected` and 3 s of
real-time 20 ms frames, and close. Calls start on a fixed schedule whatever
the server's answers (open loop), for --seconds at each rate.

Targets, each a fresh server pinned to core 0 (this driver runs on core 1):

- runserver:  the app as a newcomer runs it (manage.py runserver, SQLite,
              in-memory channel layer, DEBUG);
- production: the app as README's Production section runs a worker
              (Uvicorn, DEBUG=false, signed webhooks, PostgreSQL, Redis);
- floor:      bench/floor_http.py, a bare aiohttp.web recorder (answer and
              event webhooks, socket; bench/floor_server.py, GET only,
              stays run.py's floor); floor-uvloop, the same on uvloop
              (not in the default targets);
- granian:    the production target's app and services under Granian
              (HTTP and WebSocket in Rust) instead of Uvicorn; not in the
              default targets;
- reference:  bench/reference, a plain Django + Channels recorder under
              Daphne on SQLite (one row per webhook, one file per socket);
- runserver@REF, production@REF: the app as it was at git commit REF (a
              worktree under /tmp/bench/cps, the same venv), for a before
              and after in one run; production@REF's Uvicorn runs on the
              standard loop and h11 if REF's requirements.txt has no uvloop
              (as it ran before uvloop and httptools were added).

Reported per rate: answer latency p50/p99/max, answer-to-streaming
p50/p99/max, calls lost (no answer within 5 s, a socket refused or cut),
calls whose recording is complete, and the server's and this driver's CPU.

The driver runs on uvloop (`--loop asyncio`: the standard loop) and speaks
HTTP/1.1 and WebSocket itself, as asyncio protocols: a keep-alive pool whose
request is one write and a parse of the response head (HttpPool; about 25 us
a request, aiohttp's client about 75, httpx more), and a socket that is a
handshake, a text frame, the Ticker's prebuilt frames and a close (about a
sixth of a `websockets` client's cost). That leaves most of its core to the
frames themselves (a 640-byte write to a loopback socket is about 10 us of
kernel time, 48,000 a second at 320 calls/s): it starts 320 calls a second
on under half its core (630 of 640 asked), where httpx and `websockets` on
the standard loop started 40-60 on all of it.

    .venv/bin/python bench/cps.py                       # every target, every step
    .venv/bin/python bench/cps.py --targets floor,runserver --rates 10,20,40
    .venv/bin/python bench/cps.py --targets production@e406a15,production
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import psutil
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from run import (  # noqa: E402
    CLIENT_CORE,
    PYTHON,
    ROOT,
    SERVER_CORE,
    free_port,
    start,
    stop,
    stop_everything,
)

from recordings_app.simulator import SimulationError  # noqa: E402
from recordings_app.simulator.caller import (  # noqa: E402
    _compact,
    _signed,
    _websocket_connect,
)

WORK = Path("/tmp/bench/cps")
RESULTS = ROOT / "bench/results"
TARGETS = ("runserver", "production", "floor", "reference")
EXTRA_TARGETS = ("floor-uvloop", "granian")
RATES = (10, 20, 40, 80, 160, 320)
ANSWER_TIMEOUT = 5.0  # Vonage's longest wait for the answer webhook
SECRET = "bench-signature-secret-" + "s" * 20
FRAME = bytes(range(256)) * 2 + bytes(128)  # 640 bytes: 20 ms at 16 kHz
PG = "postgres://postgres@127.0.0.1:5432"


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(
            ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000
        )

    return {"p50": at(0.5), "p99": at(0.99), "max": round(ordered[-1] * 1000)}


class Target:
    """One server on fresh storage; says which calls it recorded completely."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dir = WORK / name
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        kind, _, ref = name.partition("@")
        self.source = source = worktree(ref) if ref else ROOT
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.secret = ""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for name_ in ("DATABASE_URL", "REDIS_URL", "DEBUG"):
            env.pop(name_, None)
        cwd = source
        app = {
            "MEDIA_ROOT": str(self.dir / "media"),
            "SPOOL_DIR": str(self.dir / "spool"),
            "CALLRECORDER_AUDIT_CHECKPOINT_DIR": str(self.dir / "audit"),
            "CALLRECORDER_MAX_SOCKETS": "100000",
        }
        host, port = "127.0.0.1", str(self.port)
        if kind == "runserver":
            env |= app | {"DATABASE_URL": f"sqlite:///{self.dir}/db.sqlite3"}
            self._migrate(env)
            command = [PYTHON, "manage.py", "runserver", "--noreload", f"{host}:{port}"]
        elif kind in ("production", "granian"):
            self.secret = SECRET
            database = f"bench_cps_{os.getpid()}"
            subprocess.run(
                [
                    "psql",
                    PG + "/postgres",
                    "-qc",
                    f"DROP DATABASE IF EXISTS {database}",
                ],
                check=True,
            )
            subprocess.run(
                ["psql", PG + "/postgres", "-qc", f"CREATE DATABASE {database}"],
                check=True,
            )
            subprocess.run(
                ["redis-cli", "-n", "7", "flushdb"], check=True, capture_output=True
            )
            self.database_url = f"{PG}/{database}"
            env |= app | {
                "DEBUG": "false",
                "SECRET_KEY": "bench-" + "k" * 60 + "abcdefgh",
                "ALLOWED_HOSTS": "127.0.0.1",
                "VONAGE_SIGNATURE_SECRET": SECRET,
                "SECURE_SSL_REDIRECT": "false",
                "DATABASE_URL": self.database_url,
                "REDIS_URL": "redis://127.0.0.1:6379/7",
            }
            self._migrate(env)
            if kind == "granian":  # the app under Granian (HTTP, WebSocket in Rust)
                command = [
                    str(ROOT / ".venv/bin/granian"),
                    "--interface",
                    "asgi",
                    "--host",
                    host,
                    "--port",
                    port,
                    "--loop",
                    "uvloop",
                    "--workers",
                    "1",
                    "--runtime-threads",
                    "1",
                    # Its default (1024 requests at once, sockets included)
                    # refuses calls in a burst before the CPU is full.
                    "--backpressure",
                    "100000",
                    "--backlog",
                    "8192",
                    "callrecorder.asgi:application",
                ]
            else:
                # README's worker command (uvloop, httptools); a commit from
                # before they were in requirements.txt ran asyncio and h11.
                fast = "uvloop" in (source / "requirements.txt").read_text()
                loop, http = ("uvloop", "httptools") if fast else ("asyncio", "h11")
                command = [
                    str(ROOT / ".venv/bin/uvicorn"),
                    "--host",
                    host,
                    "--port",
                    port,
                    "--loop",
                    loop,
                    "--http",
                    http,
                    "--ws-max-size",
                    "1048576",
                    "--proxy-headers",
                    "callrecorder.asgi:application",
                ]
        elif name in ("floor", "floor-uvloop"):
            command = [
                PYTHON,
                str(ROOT / "bench/floor_http.py"),
                "--port",
                port,
                "--dir",
                str(self.dir / "audio"),
                *(["--uvloop"] if name == "floor-uvloop" else []),
            ]
        else:
            cwd = ROOT / "bench/reference"
            env |= {
                "REFERENCE_DIR": str(self.dir),
                "DJANGO_SETTINGS_MODULE": "ref.settings",
            }
            subprocess.run(
                [PYTHON, "manage.py", "migrate", "--run-syncdb", "-v0"],
                cwd=cwd,
                env=env,
                check=True,
                timeout=120,
            )
            command = [
                PYTHON,
                "-m",
                "daphne",
                "-b",
                host,
                "-p",
                port,
                "ref.asgi:application",
            ]
        self.log = open(self.dir / "server.log", "wb")  # noqa: SIM115
        self.process = start(
            command, SERVER_CORE, cwd=cwd, env=env, stdout=self.log, stderr=self.log
        )
        self._wait_listening()
        self.ps = psutil.Process(self.process.pid)

    def _migrate(self, env: dict) -> None:
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput"],
            cwd=self.source,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )

    def _wait_listening(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.dir}/server.log")
            try:
                httpx.get(self.url + "/webhooks/answer", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer within {timeout} s")

    def cpu_seconds(self) -> float:
        """The server's CPU, its worker processes' too (Granian forks one)."""
        total = 0.0
        for process in [self.ps, *self.ps.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def complete(self, frames_by_uuid: dict[str, int]) -> int:
        """How many of these calls have every frame sent in a finished recording."""
        if self.name in ("floor", "floor-uvloop", "reference"):
            found = 0
            for call_uuid, frames in frames_by_uuid.items():
                done = self.dir / "audio" / f"{call_uuid}.done"
                if done.exists():
                    text = done.read_text()
                    kept = (
                        json.loads(text)["frames"]
                        if text.startswith("{")
                        else int(text)
                    )
                    found += kept == frames
            return found
        query = (
            "SELECT c.uuid, r.frame_count FROM recordings_app_recording r"
            " JOIN recordings_app_call c ON c.id = r.call_id"
        )
        if self.name.startswith("runserver"):
            with sqlite3.connect(self.dir / "db.sqlite3", timeout=20) as db:
                rows = db.execute(query).fetchall()
        else:
            import psycopg

            with psycopg.connect(self.database_url) as db:
                rows = db.execute(query).fetchall()
        kept = dict(rows)
        return sum(kept.get(u) == frames for u, frames in frames_by_uuid.items())

    def stop(self) -> None:
        stop(self.process)
        self.log.close()


def py_spy(pid: int, output: Path) -> subprocess.Popen:
    """py-spy sampling the server (and its children) until SIGINT."""
    output.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--threads",
            "--gil",
            "--nonblocking",
            "--subprocesses",
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # attached
    return spy


def worktree(ref: str) -> Path:
    """The repository as it was at ref, checked out once under WORK (by
    commit: HEAD or a branch moves)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    path = WORK / f"src-{commit[:12]}"
    if not path.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--force", str(path), commit],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return path


class Step:
    """What one rate's calls met."""

    def __init__(self) -> None:
        self.answers: list[tuple[float, float]] = []  # (call began, latency)
        self.streams: list[float] = []
        self.lost: Counter[str] = Counter()
        self.event_failures = 0
        self.frames_by_uuid: dict[str, int] = {}


# One binary frame as the client puts it on the wire (RFC 6455 section 5.2:
# FIN + binary, masked, 16-bit length), built once: the ticker writes it
# straight to each socket's transport, so a frame costs the driver one
# write, not a coroutine, a lock and a sleep.
_MASK = b"\x5a\xa5\x3c\xc3"
WIRE_FRAME = (
    b"\x82\xfe"
    + len(FRAME).to_bytes(2, "big")
    + _MASK
    + bytes(byte ^ _MASK[index % 4] for index, byte in enumerate(FRAME))
)


class Ticker:
    """Every 20 ms, one frame to every call streaming: one wake-up for them all."""

    def __init__(self) -> None:
        self._calls: dict = {}  # transport -> [frames left, sent, first, done]

    def stream(self, transport, frames: int, first_sent) -> asyncio.Future:
        """Send `frames` frames in real time; resolves to how many went out."""
        done = asyncio.get_running_loop().create_future()
        self._calls[transport] = [frames, 0, first_sent, done]
        return done

    async def run(self) -> None:
        due = time.monotonic()
        while True:
            due += 0.02
            for transport, call in list(self._calls.items()):
                if transport.is_closing():
                    call[0] = 0
                else:
                    transport.write(WIRE_FRAME)
                    call[0] -= 1
                    call[1] += 1
                    if call[1] == 1:
                        call[2]()
                if call[0] <= 0:
                    del self._calls[transport]
                    call[3].set_result(call[1])
            await asyncio.sleep(max(0.0, due - time.monotonic()))


class _Http(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of the pool, one request at a time.

    The response head is parsed here (status, Content-Length or chunked or
    until the server closes, Connection); the body is kept whole.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.started = 0.0  # when the request in flight went out
        self._buffer = b""
        self._head: tuple | None = None  # (status, length or -1 chunked or None, keep)
        self._got_bytes = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, request: bytes) -> asyncio.Future:
        self.waiter = waiter = asyncio.get_running_loop().create_future()
        self._buffer, self._head, self._got_bytes = b"", None, False
        self.transport.write(request)
        return waiter

    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def fresh_failure(self) -> bool:
        """Failed before any byte of its response: the server closed it idle."""
        return not self._got_bytes

    def abort(self, error: Exception) -> None:
        self._fail(error)
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            self.abort(ConnectionError("bytes from the server between requests"))
            return
        self._got_bytes = True
        self._buffer += data
        try:
            self._parse()
        except ValueError as error:
            self.abort(ConnectionError(f"bad HTTP response: {error}"))

    def _parse(self) -> None:
        buffer = self._buffer
        if self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = buffer[:end].split(b"\r\n")
            version, status = lines[0][:8], int(lines[0][9:12])
            length, connection, chunked = None, b"", False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    connection = value.strip().lower()
            keep = (
                connection != b"close"
                if version == b"HTTP/1.1"
                else connection == b"keep-alive"
            )
            if chunked:
                length = -1
            elif length is None:
                keep = False  # the body runs to the close
            self._head = (status, length, keep)
            buffer = self._buffer = buffer[end + 4 :]
        status, length, keep = self._head
        if length is None:
            return  # connection_lost ends it
        if length >= 0:
            if len(buffer) < length:
                return
            self._done(status, buffer[:length], keep and len(buffer) == length)
            return
        body, at = [], 0
        while True:  # chunked: size line, chunk, CRLF; a 0 size and CRLF end it
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                return
            size = int(buffer[at:line_end].split(b";")[0], 16)
            if size == 0:
                if buffer.find(b"\r\n\r\n", line_end) < 0:
                    return  # trailers not all in yet
                self._done(status, b"".join(body), keep)
                return
            if len(buffer) < line_end + 2 + size + 2:
                return
            body.append(buffer[line_end + 2 : line_end + 2 + size])
            at = line_end + 2 + size + 2

    def _done(self, status: int, body: bytes, keep: bool) -> None:
        waiter, self.waiter = self.waiter, None
        self._buffer = b""
        if not keep:
            self.transport.close()
        if not waiter.done():
            waiter.set_result((status, body, keep))

    def _fail(self, error: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and self._head and self._head[1] is None:
            self._done(self._head[0], self._buffer, False)
        self._fail(ConnectionError("the server closed the connection"))


class HttpPool:
    """A keep-alive HTTP/1.1 client for one server: a request costs one write.

    httpx (and aiohttp's client, 3-4 times less but still ~75 us) spent most
    of this driver's core on the 8 webhooks of a call; this one is a parser
    of the response head and a list of idle connections. A request whose
    reused connection the server had closed is sent again on a new one; one
    sweep a second fails requests in flight for over `timeout` (httpx's 30 s).
    """

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._host_header = f"Host: {host}:{port}\r\n"
        self._idle: list[_Http] = []
        self._busy: set[_Http] = set()
        self._loop = asyncio.get_running_loop()
        self._sweeper = self._loop.create_task(self._sweep())

    async def _connect(self) -> _Http:
        async with asyncio.timeout(self.timeout):
            _, connection = await self._loop.create_connection(
                _Http, self.host, self.port
            )
        return connection

    async def request(
        self, method: str, target: str, headers: dict, body: bytes = b""
    ) -> tuple[int, bytes]:
        """Send one request; its status and body (ConnectionError, TimeoutError)."""
        head = [f"{method} {target} HTTP/1.1\r\n", self._host_header]
        if body or method == "POST":
            head.append(f"Content-Length: {len(body)}\r\n")
        head.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        head.append("\r\n")
        request = "".join(head).encode("latin-1") + body
        while True:
            connection = None
            while self._idle and connection is None:
                connection = self._idle.pop()
                if not connection.usable():
                    connection = None
            reused = connection is not None
            if connection is None:
                connection = await self._connect()
            connection.started = self._loop.time()
            self._busy.add(connection)
            try:
                status, data, keep = await connection.send(request)
            except ConnectionError:
                if reused and connection.fresh_failure():
                    continue  # closed idle by the server: once more, on a new one
                raise
            except BaseException:  # cancelled (the answer's 5 s): not reusable
                connection.abort(ConnectionError("request abandoned"))
                raise
            finally:
                self._busy.discard(connection)
            if keep and connection.usable():
                self._idle.append(connection)
            return status, data

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            late = self._loop.time() - self.timeout
            for connection in [c for c in self._busy if c.started < late]:
                connection.abort(TimeoutError("no response in time"))

    def close(self) -> None:
        self._sweeper.cancel()
        for connection in (*self._idle, *self._busy):
            if connection.transport is not None:
                connection.transport.close()
        self._idle.clear()


_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _masked(opcode: int, payload: bytes) -> bytes:
    """One client frame (FIN set, masked with _MASK), RFC 6455 section 5.2."""
    size = len(payload)
    if size < 126:
        length = bytes((0x80 | size,))
    elif size < 65536:
        length = b"\xfe" + size.to_bytes(2, "big")
    else:
        length = b"\xff" + size.to_bytes(8, "big")
    mask = _MASK * (size // 4 + 1)
    return (
        bytes((0x80 | opcode,))
        + length
        + _MASK
        + bytes(byte ^ mask[index] for index, byte in enumerate(payload))
    )


_CLOSE_FRAME = _masked(0x8, (1000).to_bytes(2, "big"))


class _Socket(asyncio.Protocol):
    """A WebSocket client connection: the handshake, then the server's frames.

    Frames out go straight to the transport (the text message here, the
    audio from the Ticker); the server's pings are answered and its close
    frame ends the socket, as `websockets` does, for a sixth of its cost.
    """

    def __init__(self, accept: bytes) -> None:
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened = loop.create_future()  # the 101 came (or an error)
        self.closed = loop.create_future()  # the TCP connection is gone
        self.close_received = False
        self._accept = accept
        self._buffer = b""
        self._open = False
        self._close_sent = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        if not self._open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self._buffer = buffer
                return
            lines = buffer[:end].split(b"\r\n")
            accept = b""
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"sec-websocket-accept":
                    accept = value.strip()
            if lines[0][9:12] != b"101" or accept != self._accept:
                self._fail(ConnectionError(f"handshake refused: {lines[0][:60]!r}"))
                return
            self._open = True
            if not self.opened.done():
                self.opened.set_result(None)
            buffer = buffer[end + 4 :]
        while len(buffer) >= 2:  # the server's frames: unmasked
            opcode, size, at = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if size == 126:
                if len(buffer) < 4:
                    break
                size, at = int.from_bytes(buffer[2:4], "big"), 4
            elif size == 127:
                if len(buffer) < 10:
                    break
                size, at = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < at + size:
                break
            payload, buffer = buffer[at : at + size], buffer[at + size :]
            if opcode == 0x9:  # ping
                self.transport.write(_masked(0xA, payload))
            elif opcode == 0x8:
                self.close_received = True
                self.close()
        self._buffer = buffer

    def close(self) -> None:
        """Send the close frame, once (then the server closes the TCP side)."""
        if not self._close_sent and self.transport is not None:
            self._close_sent = True
            if not self.transport.is_closing():
                self.transport.write(_CLOSE_FRAME)

    def _fail(self, error: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(ConnectionError("the server closed the connection"))
        if not self.closed.done():
            self.closed.set_result(None)


async def open_socket(
    uri: str, headers: dict, timeout: float = 10.0
) -> tuple[asyncio.Transport, _Socket]:
    """The WebSocket handshake of a ws:// uri (OSError, TimeoutError)."""
    url = urlsplit(uri)
    if url.scheme != "ws":
        raise RuntimeError(f"this driver dials ws:// only, not {uri}")
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
    target = url.path + (f"?{url.query}" if url.query else "")
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {url.netloc}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        transport, socket = await loop.create_connection(
            lambda: _Socket(accept), url.hostname, url.port or 80
        )
        try:
            transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await socket.opened
        except BaseException:
            transport.abort()
            raise
    return transport, socket


async def close_socket(socket: _Socket, timeout: float = 10.0) -> None:
    """The closing handshake; then wait for the server to close the TCP side."""
    socket.close()
    try:
        async with asyncio.timeout(timeout):
            await asyncio.shield(socket.closed)
    except TimeoutError:
        if socket.transport is not None:
            socket.transport.abort()


async def post_event(
    http: HttpPool, path: str, payload: dict, secret: str, step: Step
) -> None:
    body = _compact(payload)
    try:
        status, _ = await http.request(
            "POST",
            path,
            {"Content-Type": "application/json", **_signed(secret, body)},
            body,
        )
        if status != 200:
            step.event_failures += 1
    except (ConnectionError, OSError, TimeoutError):
        step.event_failures += 1


async def get_answer(http: HttpPool, caller: dict, secret: str) -> object:
    status, body = await http.request(
        "GET",
        "/webhooks/answer?" + urlencode(caller),
        _signed(secret, _compact(caller)),
    )
    if not 200 <= status < 300:  # as httpx's raise_for_status
        raise ConnectionError(f"the answer webhook answered {status}")
    return json.loads(body)


async def one_call(
    http: HttpPool,
    target: Target,
    seconds: float,
    step: Step,
    ticker: Ticker,
) -> None:
    call_uuid, conversation = str(uuid.uuid4()), f"CON-{uuid.uuid4()}"
    caller = {
        "from": "447700900123",
        "to": "447700900000",
        "uuid": call_uuid,
        "conversation_uuid": conversation,
    }
    event_url, secret = "/webhooks/event", target.secret
    events = []

    def event(payload: dict) -> None:
        stamp = (
            datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
        events.append(
            asyncio.ensure_future(
                post_event(
                    http, event_url, {"timestamp": stamp, **payload}, secret, step
                )
            )
        )

    began = time.monotonic()
    for status in ("started", "ringing"):
        event({**caller, "status": status, "direction": "inbound"})
    try:
        ncco = await asyncio.wait_for(get_answer(http, caller, secret), ANSWER_TIMEOUT)
        endpoint = _websocket_connect(ncco)
    except (TimeoutError, OSError, ValueError, SimulationError) as error:
        step.lost[
            "no answer in 5 s" if isinstance(error, TimeoutError) else "answer refused"
        ] += 1
        await asyncio.gather(*events)
        return
    answered = time.monotonic()
    step.answers.append((began, answered - began))
    leg = {
        "from": "447700900000",
        "to": endpoint["uri"],
        "uuid": str(uuid.uuid4()),
        "conversation_uuid": conversation,
        "direction": "outbound",
    }
    event({**caller, "status": "answered", "direction": "inbound"})
    event({**leg, "status": "started"})
    frames = int(seconds / 0.02)
    sent = 0
    try:
        signed = (endpoint.get("authorization") or {}).get("type") == "vonage"
        transport, socket = await open_socket(
            endpoint["uri"], _signed(secret if signed else "", b"")
        )
        try:
            connected = {
                "event": "websocket:connected",
                "content-type": "audio/l16;rate=16000",
                **endpoint.get("headers", {}),
            }
            transport.write(_masked(0x1, json.dumps(connected).encode()))
            event({**leg, "status": "answered"})
            sent = await ticker.stream(
                transport,
                frames,
                lambda: step.streams.append(time.monotonic() - answered),
            )
        finally:
            await close_socket(socket)
        if sent < frames:
            step.lost["socket cut"] += 1
    except (OSError, TimeoutError):
        step.lost["socket refused or cut"] += 1
    step.frames_by_uuid[call_uuid] = sent if sent == frames else -1
    event({**leg, "status": "completed"})
    event(
        {
            **caller,
            "status": "completed",
            "direction": "inbound",
            "duration": str(round(seconds)),
        }
    )
    await asyncio.gather(*events)


async def run_step(
    target: Target, rate: int, seconds: float, call_seconds: float
) -> dict:
    step = Step()
    ticker = Ticker()
    ticking = asyncio.ensure_future(ticker.run())
    http = HttpPool("127.0.0.1", target.port)  # unbounded, as httpx's was
    try:
        cpu_before, client_before = target.cpu_seconds(), time.process_time()
        began = time.monotonic()
        calls = []
        for index in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, began + index / rate - time.monotonic()))
            calls.append(
                asyncio.ensure_future(
                    one_call(http, target, call_seconds, step, ticker)
                )
            )
        # The rate this driver managed to start calls at: short of the rate
        # asked when its own core is full (then the figures say less).
        achieved = len(calls) / max(time.monotonic() - began, 1e-9)
        await asyncio.gather(*calls)
        wall = time.monotonic() - began
        server_cpu = (target.cpu_seconds() - cpu_before) / wall
        client_cpu = (time.process_time() - client_before) / wall
    finally:
        http.close()
    ticking.cancel()
    expected = {u: f for u, f in step.frames_by_uuid.items() if f > 0}
    deadline = time.monotonic() + 60
    complete = target.complete(expected)
    while complete < len(expected) and time.monotonic() < deadline:
        time.sleep(0.5)
        complete = target.complete(expected)
    return {
        "target": target.name,
        "rate": rate,
        "started_per_s": round(min(achieved, rate), 1),
        "calls": len(calls),
        "answer_ms": percentiles([latency for _, latency in step.answers]),
        # Where in the run the slow answers were: a cold start, or a backlog.
        "answer_p99_ms_by_second": _p99_by_second(step.answers, began),
        "stream_ms": percentiles(step.streams),
        "lost": sum(step.lost.values()),
        "lost_why": dict(step.lost),
        "recorded": complete,
        "event_failures": step.event_failures,
        "server_cpu": round(server_cpu, 2),
        # Steadier than the percentiles from run to run: what a call costs.
        "server_cpu_ms_per_call": round(server_cpu * wall * 1000 / len(calls), 2),
        "client_cpu": round(client_cpu, 2),
    }


def _p99_by_second(answers: list[tuple[float, float]], began: float) -> list:
    by_second: dict[int, list[float]] = {}
    for call_began, latency in answers:
        by_second.setdefault(int(call_began - began), []).append(latency)
    return [percentiles(by_second[second])["p99"] for second in sorted(by_second)]


def table(rows: list[dict]) -> str:
    lines = [
        "| target | calls/s asked (started) | answer p50 / p99 / max ms | answer to "
        "streaming p50 / p99 / max ms | lost | recorded | event webhooks failed "
        "| server CPU | driver CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        answer, stream = row["answer_ms"], row["stream_ms"]
        lines.append(
            f"| {row['target']} | {row['rate']} ({row['started_per_s']}) | "
            f"{answer['p50']} / {answer['p99']} / "
            f"{answer['max']} | {stream['p50']} / {stream['p99']} / {stream['max']} | "
            f"{row['lost']} of {row['calls']} | {row['recorded']} | "
            f"{row['event_failures']} | {row['server_cpu']} | {row['client_cpu']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--rates", default=",".join(map(str, RATES)))
    parser.add_argument(
        "--seconds", type=float, default=4.0, help="of arrivals per rate"
    )
    parser.add_argument(
        "--call-seconds", type=float, default=3.0, help="of audio per call"
    )
    parser.add_argument(
        "--profile", type=Path, help="folder for py-spy's raw stacks of each step"
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="this driver's event loop",
    )
    args = parser.parse_args()
    loop_factory = uvloop.new_event_loop if args.loop == "uvloop" else None
    os.sched_setaffinity(0, {int(CLIENT_CORE)})
    rows = []
    try:
        for name in args.targets.split(","):
            target = Target(name)
            try:
                for rate in map(int, args.rates.split(",")):
                    spy = args.profile and py_spy(
                        target.process.pid, args.profile / f"{name}-{rate}.txt"
                    )
                    with asyncio.Runner(loop_factory=loop_factory) as runner:
                        row = runner.run(
                            run_step(target, rate, args.seconds, args.call_seconds)
                        )
                    if spy:
                        spy.send_signal(signal.SIGINT)
                        spy.wait(timeout=60)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if row["lost"] > row["calls"] / 2:
                        break  # past its limit: the higher rates only lose more
                    time.sleep(3)  # the server settles before the next rate
            finally:
                target.stop()
    finally:
        stop_everything()
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H%M%S")
    (RESULTS / f"cps-{stamp}.json").write_text(json.dumps(rows, indent=2))
    (RESULTS / f"cps-{stamp}.md").write_text(table(rows) + "\n")


if __name__ == "__main__":
    main()
