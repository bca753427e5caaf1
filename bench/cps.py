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
- floor:      bench/floor_server.py, a bare asyncio recorder;
- reference:  bench/reference, a plain Django + Channels recorder under
              Daphne on SQLite (one row per webhook, one file per socket).

Reported per rate: answer latency p50/p99/max, answer-to-streaming
p50/p99/max, calls lost (no answer within 5 s, a socket refused or cut),
calls whose recording is complete, and the server's and this driver's CPU.

    .venv/bin/python bench/cps.py                       # every target, every step
    .venv/bin/python bench/cps.py --targets floor,runserver --rates 10,20,40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import websockets

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

from recordings_app.simulator.caller import (  # noqa: E402
    _compact,
    _signed,
    _websocket_connect,
)

WORK = Path("/tmp/bench/cps")
RESULTS = ROOT / "bench/results"
TARGETS = ("runserver", "production", "floor", "reference")
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
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.secret = ""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for name_ in ("DATABASE_URL", "REDIS_URL", "DEBUG"):
            env.pop(name_, None)
        cwd = ROOT
        app = {
            "MEDIA_ROOT": str(self.dir / "media"),
            "SPOOL_DIR": str(self.dir / "spool"),
            "CALLRECORDER_AUDIT_CHECKPOINT_DIR": str(self.dir / "audit"),
            "CALLRECORDER_MAX_SOCKETS": "100000",
        }
        host, port = "127.0.0.1", str(self.port)
        if name == "runserver":
            env |= app | {"DATABASE_URL": f"sqlite:///{self.dir}/db.sqlite3"}
            self._migrate(env)
            command = [PYTHON, "manage.py", "runserver", "--noreload", f"{host}:{port}"]
        elif name == "production":
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
            command = [
                str(ROOT / ".venv/bin/uvicorn"),
                "--host",
                host,
                "--port",
                port,
                "--ws-max-size",
                "1048576",
                "--proxy-headers",
                "callrecorder.asgi:application",
            ]
        elif name == "floor":
            command = [
                PYTHON,
                str(ROOT / "bench/floor_server.py"),
                "--port",
                port,
                "--dir",
                str(self.dir / "audio"),
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
            cwd=ROOT,
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
        times = self.ps.cpu_times()
        return times.user + times.system

    def complete(self, frames_by_uuid: dict[str, int]) -> int:
        """How many of these calls have every frame sent in a finished recording."""
        if self.name in ("floor", "reference"):
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
        if self.name == "runserver":
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


class Step:
    """What one rate's calls met."""

    def __init__(self) -> None:
        self.answers: list[float] = []
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


async def post_event(http, url: str, payload: dict, secret: str, step: Step) -> None:
    body = _compact(payload)
    try:
        response = await http.post(
            url,
            content=body,
            headers={"Content-Type": "application/json", **_signed(secret, body)},
        )
        if response.status_code != 200:
            step.event_failures += 1
    except httpx.HTTPError:
        step.event_failures += 1


async def one_call(
    http, target: Target, seconds: float, step: Step, ticker: Ticker
) -> None:
    call_uuid, conversation = str(uuid.uuid4()), f"CON-{uuid.uuid4()}"
    caller = {
        "from": "447700900123",
        "to": "447700900000",
        "uuid": call_uuid,
        "conversation_uuid": conversation,
    }
    event_url, secret = target.url + "/webhooks/event", target.secret
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
        response = await asyncio.wait_for(
            http.get(
                target.url + "/webhooks/answer",
                params=caller,
                headers=_signed(secret, _compact(caller)),
            ),
            ANSWER_TIMEOUT,
        )
        response.raise_for_status()
        endpoint = _websocket_connect(response.json())
    except (TimeoutError, httpx.HTTPError, ValueError) as error:
        step.lost[
            "no answer in 5 s" if isinstance(error, TimeoutError) else "answer refused"
        ] += 1
        await asyncio.gather(*events)
        return
    answered = time.monotonic()
    step.answers.append(answered - began)
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
        async with websockets.connect(
            endpoint["uri"],
            open_timeout=10,
            max_size=2**20,
            compression=None,
            additional_headers=_signed(secret if signed else "", b""),
        ) as socket:
            await socket.send(
                json.dumps(
                    {
                        "event": "websocket:connected",
                        "content-type": "audio/l16;rate=16000",
                        **endpoint.get("headers", {}),
                    }
                )
            )
            event({**leg, "status": "answered"})
            sent = await ticker.stream(
                socket.transport,
                frames,
                lambda: step.streams.append(time.monotonic() - answered),
            )
        if sent < frames:
            step.lost["socket cut"] += 1
    except (OSError, TimeoutError, websockets.WebSocketException):
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
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=500)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
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
        "answer_ms": percentiles(step.answers),
        "stream_ms": percentiles(step.streams),
        "lost": sum(step.lost.values()),
        "lost_why": dict(step.lost),
        "recorded": complete,
        "event_failures": step.event_failures,
        "server_cpu": round(server_cpu, 2),
        "client_cpu": round(client_cpu, 2),
    }


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
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(CLIENT_CORE)})
    rows = []
    try:
        for name in args.targets.split(","):
            target = Target(name)
            try:
                for rate in map(int, args.rates.split(",")):
                    row = asyncio.run(
                        run_step(target, rate, args.seconds, args.call_seconds)
                    )
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
    stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H%M")
    (RESULTS / f"cps-{stamp}.json").write_text(json.dumps(rows, indent=2))
    (RESULTS / f"cps-{stamp}.md").write_text(table(rows) + "\n")


if __name__ == "__main__":
    main()
