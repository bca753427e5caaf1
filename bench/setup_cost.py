"""Where a call's server CPU goes (issue 16): each part of a call alone.

cps.py says how many calls a second a server sustains; this says what each
part of a call costs it, so a change can be judged in a minute: the
server's CPU milliseconds per answer webhook, per event webhook, per socket
(handshake, connected message, close and the stored recording) and per
audio frame, for each target side by side. The parts run back to back
(a few requests in flight, no real-time pacing), so the figures are CPU,
not latency.

    .venv/bin/python bench/setup_cost.py                  # production, floor
    .venv/bin/python bench/setup_cost.py --targets production@c054453,production
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import uvloop
from cps import (
    WIRE_FRAME,
    HttpPool,
    Step,
    Target,
    _masked,
    _signed,
    _websocket_connect,
    close_socket,
    get_answer,
    open_socket,
    post_event,
    py_spy,
)
from run import CLIENT_CORE, stop_everything

IN_FLIGHT = 8
SETTLE_SECONDS = 3.0


def _caller() -> dict:
    return {
        "from": "447700900123",
        "to": "447700900000",
        "uuid": str(uuid.uuid4()),
        "conversation_uuid": f"CON-{uuid.uuid4()}",
    }


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _in_flight(jobs) -> None:
    """Run the coroutines IN_FLIGHT at a time."""
    queue = list(jobs)

    async def worker() -> None:
        while queue:
            await queue.pop()

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))


async def _socket(target: Target, endpoint: dict, frames: int) -> None:
    signed = (endpoint.get("authorization") or {}).get("type") == "vonage"
    transport, socket = await open_socket(
        endpoint["uri"], _signed(target.secret if signed else "", b"")
    )
    connected = {
        "event": "websocket:connected",
        "content-type": "audio/l16;rate=16000",
        **endpoint.get("headers", {}),
    }
    transport.write(_masked(0x1, json.dumps(connected).encode()))
    for _ in range(frames):
        transport.write(WIRE_FRAME)
        await asyncio.sleep(0)
    await close_socket(socket)


async def measure(
    target: Target, calls: int, frames: int, profile: Path | None = None
) -> dict:
    """CPU ms per part: answer, event, socket (no frames), frame (us);
    with profile, py-spy's raw stacks of each part in that folder."""
    http = HttpPool("127.0.0.1", target.port)
    step = Step()
    callers = [_caller() for _ in range(2 * calls)]
    figures = {}

    async def part(name: str, jobs, count: int) -> None:
        await asyncio.sleep(0.5)  # let the server settle
        spy = None
        if profile:
            output = profile / f"{target.name}-{name.replace(' ', '-')}.txt"
            spy = py_spy(target.process.pid, output)
        before = target.cpu_seconds()
        await _in_flight(jobs)
        # Closing work (stored recordings) included: it goes on after the
        # client's close, and what runs past here is counted in the next part.
        await asyncio.sleep(SETTLE_SECONDS)
        figures[name] = (target.cpu_seconds() - before) * 1000 / count
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)

    answers: list[dict] = []

    async def answer(caller: dict) -> None:
        answers.append(
            _websocket_connect(await get_answer(http, caller, target.secret))
        )

    await part("answer ms", (answer(c) for c in callers), len(callers))
    events = [
        {**c, "status": s, "direction": "inbound", "timestamp": _stamp()}
        for c in callers[:calls]
        for s in ("started", "ringing", "answered", "completed")
    ]
    await part(
        "event ms",
        (post_event(http, "/webhooks/event", e, target.secret, step) for e in events),
        len(events),
    )
    await part("socket ms", (_socket(target, a, 0) for a in answers[:calls]), calls)
    await part(
        "socket with frames ms",
        (_socket(target, a, frames) for a in answers[calls:]),
        calls,
    )
    figures["frame us"] = (
        (figures.pop("socket with frames ms") - figures["socket ms"]) * 1000 / frames
    )
    figures["event failures"] = step.event_failures
    http.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="production,floor")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--frames", type=int, default=150, help="per socket")
    parser.add_argument(
        "--profile", type=Path, help="folder for py-spy's raw stacks of each part"
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(CLIENT_CORE)})
    rows = []
    try:
        for name in args.targets.split(","):
            target = Target(name)
            try:
                time.sleep(1)
                figures = uvloop.run(
                    measure(target, args.calls, args.frames, args.profile)
                )
            finally:
                target.stop()
            rows.append({"target": name, **figures})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        stop_everything()
    keys = [k for k in rows[0] if k != "target"]
    print("| target | " + " | ".join(keys) + " |")
    print("| --- " * (len(keys) + 1) + "|")
    for row in rows:
        cells = [
            f"{row[k]:.2f}" if isinstance(row[k], float) else str(row[k]) for k in keys
        ]
        print(f"| {row['target']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
