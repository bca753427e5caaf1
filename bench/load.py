"""Load driver: many Vonage-like calls at once, with per-frame lag measured.

Each call speaks the protocol of ../shared/vonage-protocol.md, section 3, as
recordings_app/simulator.py does (and reuses its NCCO parsing): GET the
answer webhook, open the WebSocket at the URI the NCCO names, send
`websocket:connected` with the NCCO's headers, send 20 ms binary frames,
close. The lifecycle event webhooks are left out: they are not on the
audio path.

All calls are set up first; then they stream together, their 20 ms
schedules spread evenly over one frame period. At real-time pace, a frame's
lag is how late its `send()` completes relative to its schedule; once a
second each call also sends a WebSocket ping, whose pong comes back only
after the server has read every frame before it (a round-trip probe).

With --dashboard-session, one signed-in dashboard (the list page's
WebSocket, /ws/calls) watches the whole run, as a supervisor's browser
would; what it received is reported (calls started and ended, level
messages per second).

Prints one JSON object on stdout. Run by bench/run.py, or by hand:

    .venv/bin/python bench/load.py --url http://127.0.0.1:8000 --calls 10 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from array import array
from pathlib import Path

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recordings_app.audio.pcm import FRAME_SECONDS, frame_bytes  # noqa: E402
from recordings_app.simulator.caller import (  # noqa: E402
    _sample_rate,
    _websocket_connect,
)

PING_EVERY_FRAMES = 50  # one round-trip probe per second of audio


def percentile(values: array, fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Call:
    """One simulated call: its socket, what it sent and when it hung up."""

    def __init__(self) -> None:
        self.uuid = str(uuid.uuid4())
        self.conversation_uuid = f"CON-{uuid.uuid4()}"
        self.socket = None
        self.frame = b""
        self.frames_sent = 0
        self.close_started = 0.0  # time.time(), to compare with the server's clock
        self.close_code: int | None = None
        self.error = ""

    async def setup(self, http: httpx.AsyncClient, base_url: str) -> None:
        """Answer webhook -> NCCO -> socket -> websocket:connected."""
        params = {
            "from": "447700900123",
            "to": "447700900000",
            "uuid": self.uuid,
            "conversation_uuid": self.conversation_uuid,
        }
        response = await http.get(f"{base_url}/webhooks/answer", params=params)
        response.raise_for_status()
        endpoint = _websocket_connect(response.json())
        uri = endpoint["uri"]
        if not uri.startswith("ws://127.0.0.1:"):
            raise RuntimeError(f"refusing to connect outside 127.0.0.1: {uri}")
        sample_rate = _sample_rate(endpoint.get("content-type"))
        self.frame = os.urandom(frame_bytes(sample_rate))
        # No compression (Vonage sends raw PCM) and no keepalive pings of
        # the library's own: the only pings are the probes below.
        self.socket = await websockets.connect(
            uri,
            compression=None,
            ping_interval=None,
            max_size=2**20,
            open_timeout=60,
            close_timeout=60,
        )
        connected = {
            "event": "websocket:connected",
            "content-type": f"audio/l16;rate={sample_rate}",
            **endpoint.get("headers", {}),
        }
        await self.socket.send(json.dumps(connected))

    async def stream(
        self,
        start: float,
        frames: int,
        realtime: bool,
        stop_at: float,
        lags: array,
        rtts: array,
    ) -> None:
        """Send the frames on schedule (or as fast as accepted), then close."""
        socket = self.socket
        delay = start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        for index in range(frames):
            if realtime:
                due = start + index * FRAME_SECONDS
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if index % PING_EVERY_FRAMES == 0:
                    sent_at = time.monotonic()
                    pong = await socket.ping()
                    pong.add_done_callback(
                        lambda _, t=sent_at: rtts.append(time.monotonic() - t)
                    )
            await socket.send(self.frame)
            self.frames_sent += 1
            now = time.monotonic()
            if realtime:
                lags.append(max(0.0, now - due))
            elif now >= stop_at:
                break
        # The pong comes back once the server has read every frame before it.
        await asyncio.wait_for(await socket.ping(), 60)
        self.close_started = time.time()
        await socket.close()
        self.close_code = socket.close_code


class Dashboard:
    """The list page's live socket, signed in: counts what the server pushes."""

    def __init__(self) -> None:
        self.counts = {"started": 0, "ended": 0, "levels": 0, "paused": 0}
        self.level_times: list[float] = []
        self.most_calls_in_levels = 0
        self.task: asyncio.Task | None = None

    async def open(self, base_url: str, session_key: str) -> None:
        socket = await websockets.connect(
            base_url.replace("http://", "ws://") + "/ws/calls",
            additional_headers={
                "Cookie": f"sessionid={session_key}",
                "Origin": base_url,
            },
            max_size=2**24,
            open_timeout=60,
        )
        self.task = asyncio.ensure_future(self._read(socket))

    async def _read(self, socket) -> None:
        async for text in socket:
            message = json.loads(text)
            self.counts[message["event"]] = self.counts.get(message["event"], 0) + 1
            if message["event"] == "levels":
                self.level_times.append(time.monotonic())
                self.most_calls_in_levels = max(
                    self.most_calls_in_levels, len(message["levels"])
                )

    def report(self, begin: float, end: float) -> dict:
        during = [t for t in self.level_times if begin <= t <= end]
        return {
            **self.counts,
            "levels_per_second": round(len(during) / max(end - begin, 1e-9), 2),
            "most_calls_in_one_levels_message": self.most_calls_in_levels,
        }


async def run(args: argparse.Namespace) -> dict:
    dashboard = None
    if args.dashboard_session:
        dashboard = Dashboard()
        await dashboard.open(args.url.rstrip("/"), args.dashboard_session)
    calls = [Call() for _ in range(args.calls)]
    limits = httpx.Limits(max_connections=args.setup_concurrency)
    gate = asyncio.Semaphore(args.setup_concurrency)

    async def setup(call: Call) -> None:
        async with gate:
            try:
                await call.setup(http, args.url.rstrip("/"))
            except Exception as error:
                call.error = f"setup: {type(error).__name__}: {error}"

    setup_started = time.monotonic()
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await asyncio.gather(*(setup(call) for call in calls))
    setup_seconds = time.monotonic() - setup_started
    ready = [call for call in calls if not call.error]

    lags, rtts = array("d"), array("d")
    frames = int(args.seconds / FRAME_SECONDS)
    start = time.monotonic() + 0.5
    stop_at = start + (args.stop_after or float("inf"))
    stream_start_wall = time.time() + 0.5
    cpu_start = time.process_time()

    async def stream(index: int, call: Call) -> None:
        # Spread the calls' schedules evenly over one frame period.
        offset = FRAME_SECONDS * index / max(1, len(ready))
        try:
            await call.stream(
                start + offset, frames, not args.fast, stop_at, lags, rtts
            )
        except Exception as error:
            call.error = f"stream: {type(error).__name__}: {error}"

    await asyncio.gather(*(stream(i, call) for i, call in enumerate(ready)))
    stream_end = time.monotonic()
    stream_end_wall = time.time()
    client_cpu = (time.process_time() - cpu_start) / (
        stream_end_wall - stream_start_wall
    )
    errors = [call.error for call in calls if call.error]
    watched = None
    if dashboard is not None:  # wait for the last "ended" (calls being stored)
        give_up = time.monotonic() + 60
        while dashboard.counts["ended"] < len(ready) and time.monotonic() < give_up:
            await asyncio.sleep(0.2)
        dashboard.task.cancel()
        watched = dashboard.report(start + 1, stream_end - 0.5)
    return {
        "dashboard": watched,
        "calls": args.calls,
        "fast": args.fast,
        "setup_seconds": round(setup_seconds, 2),
        "stream_start": stream_start_wall,
        "stream_end": stream_end_wall,
        "frames_sent": sum(call.frames_sent for call in calls),
        "lag_p50_ms": _ms(percentile(lags, 0.50)),
        "lag_p99_ms": _ms(percentile(lags, 0.99)),
        "lag_max_ms": _ms(max(lags, default=None)),
        "ping_p50_ms": _ms(percentile(rtts, 0.50)),
        "ping_p99_ms": _ms(percentile(rtts, 0.99)),
        "pings": len(rtts),
        "client_cpu": round(client_cpu, 3),
        "errors": len(errors),
        "first_errors": errors[:3],
        "per_call": {
            call.uuid: {
                "frames": call.frames_sent,
                "close_started": call.close_started,
                "close_code": call.close_code,
            }
            for call in calls
            if not call.error
        },
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="server base URL (127.0.0.1)")
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5, help="audio per call")
    parser.add_argument("--fast", action="store_true", help="not at real-time pace")
    parser.add_argument(
        "--stop-after", type=float, default=0, help="fast: hang up after N seconds"
    )
    parser.add_argument("--setup-concurrency", type=int, default=20)
    parser.add_argument(
        "--dashboard-session", default="", help="watch as this signed-in session"
    )
    args = parser.parse_args()
    if not args.url.startswith("http://127.0.0.1:"):
        parser.error("only http://127.0.0.1:PORT is allowed")
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
