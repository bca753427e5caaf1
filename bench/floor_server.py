"""The floor: a bare asyncio `websockets` recorder speaking the same protocol.

It answers the answer webhook with a minimal NCCO (a websocket `connect` to
itself, 16 kHz), accepts the socket, ignores text messages and appends each
binary frame to a file of its own. At close it writes `<uuid>.done` with the
frame count, the size and the time it finished. No Django, no database: what
is left is the cost of the WebSocket library and the file writes.

It is bench/run.py's floor (audio capacity). The `websockets` server reads
GET requests only, so it cannot take the event webhooks (POST): bench/cps.py
uses bench/floor_http.py (aiohttp.web, same answer, files and flags) instead.

    .venv/bin/python bench/floor_server.py --port 8001 --dir /tmp/bench/floor
    .venv/bin/python bench/floor_server.py --port 8001 --dir /tmp/bench/floor --uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

SAMPLE_RATE = 16000


def ncco(port: int, call_uuid: str, conversation_uuid: str) -> list[dict]:
    return [
        {
            "action": "connect",
            "endpoint": [
                {
                    "type": "websocket",
                    "uri": f"ws://127.0.0.1:{port}/ws/audio?uuid={call_uuid}",
                    "content-type": f"audio/l16;rate={SAMPLE_RATE}",
                    "headers": {
                        "call_uuid": call_uuid,
                        "conversation_uuid": conversation_uuid,
                    },
                }
            ],
        }
    ]


def make_handlers(port: int, directory: Path):
    def process_request(connection: ServerConnection, request: Request):
        url = urlsplit(request.path)
        if url.path == "/ws/audio":
            return None  # go on with the WebSocket handshake
        if url.path == "/webhooks/answer":
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            body = json.dumps(
                ncco(port, query["uuid"], query.get("conversation_uuid", ""))
            )
            response: Response = connection.respond(HTTPStatus.OK, body)
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
            return response
        if url.path == "/webhooks/event":
            return connection.respond(HTTPStatus.OK, "")
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")

    async def record(socket: ServerConnection) -> None:
        call_uuid = parse_qs(urlsplit(socket.request.path).query)["uuid"][0]
        frames = size = 0
        with open(directory / f"{call_uuid}.pcm", "xb") as audio:
            async for message in socket:
                if isinstance(message, bytes):
                    audio.write(message)
                    frames += 1
                    size += len(message)
        done = {"frames": frames, "size": size, "finished": time.time()}
        (directory / f"{call_uuid}.done").write_text(json.dumps(done))

    return process_request, record


async def run(port: int, directory: Path) -> None:
    process_request, record = make_handlers(port, directory)
    async with serve(
        record,
        "127.0.0.1",
        port,
        process_request=process_request,
        compression=None,
        max_size=2**20,
    ) as server:
        await server.serve_forever()


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
        runner.run(run(args.port, args.dir))


if __name__ == "__main__":
    main()
