"""The call setup floor (bench/cps.py): a bare aiohttp.web recorder, HTTP and socket.

On one port, as cheaply as a Python server can with a C-parsed HTTP and
WebSocket library: GET /webhooks/answer answers the same minimal NCCO as
bench/floor_server.py (a websocket `connect` to itself, 16 kHz), POST
/webhooks/event reads the body and answers 200 (nothing is kept), and
/ws/audio accepts the socket, ignores text messages and appends each binary
frame to `<uuid>.pcm`; at close it writes `<uuid>.done` with the frame
count, the size and the time it finished. No Django, no database, no access
log: what is left is the cost of the HTTP and WebSocket library, and the
file writes.

bench/floor_server.py (the `websockets` library, GET only) stays the floor of
bench/run.py's audio capacity runs; this one is cps.py's, since every call
there also posts 7 event webhooks.

    .venv/bin/python bench/floor_http.py --port 8001 --dir /tmp/bench/floor
    .venv/bin/python bench/floor_http.py --port 8001 --dir /tmp/bench/floor --uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from aiohttp import WSMsgType, web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from floor_server import ncco  # noqa: E402


def make_app(port: int, directory: Path) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        query = request.query
        if "uuid" not in query:
            raise web.HTTPBadRequest(text="no uuid\n")
        body = json.dumps(ncco(port, query["uuid"], query.get("conversation_uuid", "")))
        return web.Response(text=body, content_type="application/json")

    async def event(request: web.Request) -> web.Response:
        await request.read()
        return web.Response()

    async def record(request: web.Request) -> web.WebSocketResponse:
        call_uuid = request.query["uuid"]
        socket = web.WebSocketResponse(
            max_msg_size=2**20, compress=False, autoping=True
        )
        await socket.prepare(request)
        frames = size = 0
        with open(directory / f"{call_uuid}.pcm", "xb") as audio:
            async for message in socket:
                if message.type is WSMsgType.BINARY:
                    audio.write(message.data)
                    frames += 1
                    size += len(message.data)
        done = {"frames": frames, "size": size, "finished": time.time()}
        (directory / f"{call_uuid}.done").write_text(json.dumps(done))
        return socket

    app = web.Application()
    app.router.add_get("/webhooks/answer", answer)
    app.router.add_post("/webhooks/event", event)
    app.router.add_get("/ws/audio", record)
    return app


async def serve(port: int, directory: Path) -> None:
    runner = web.AppRunner(make_app(port, directory), access_log=None)
    await runner.setup()
    # Uvicorn's backlog (aiohttp's own is 128): a burst of sockets is not
    # held up in SYN retries here when it is not at the app server.
    await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument(
        "--uvloop", action="store_true", help="run the event loop on uvloop"
    )
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    factory = None
    if args.uvloop:
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args.port, args.dir))


if __name__ == "__main__":
    main()
