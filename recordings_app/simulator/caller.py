"""A Vonage-like client: plays a phone call into a running callrecorder.

It does what Vonage does (../shared/vonage-protocol.md): fetch the answer
webhook with a fresh call's parameters, read the NCCO, open the WebSocket at
the URI it names, send `websocket:connected` with the NCCO's headers, stream
16-bit little-endian PCM in 20 ms frames, send DTMF, post the caller's and the
socket leg's lifecycle events, and close. Plain Python, no Django: the
`simulate_call` command and the end-to-end tests both use it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import websockets

from ..audio.pcm import FRAME_SECONDS, SAMPLE_WIDTH, frame_bytes
from . import SimulationError


def iso(moment: datetime) -> str:
    """Vonage's timestamp format: 2020-03-31T12:00:00.000Z."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def _websocket_connect(ncco: Any) -> dict[str, Any]:
    """Return the websocket endpoint of the NCCO's connect action, or explain."""
    if not isinstance(ncco, list):
        raise SimulationError(f"the NCCO is not a JSON array: {str(ncco)[:200]}")
    for action in ncco:
        if isinstance(action, dict) and action.get("action") == "connect":
            endpoints = action.get("endpoint")
            if isinstance(endpoints, list) and len(endpoints) == 1:
                endpoint = endpoints[0]
                if isinstance(endpoint, dict) and endpoint.get("type") == "websocket":
                    return endpoint
            raise SimulationError("the NCCO's connect has no single websocket endpoint")
    raise SimulationError("the NCCO has no connect action")


def _sample_rate(content_type: Any) -> int:
    prefix = "audio/l16;rate="
    if not isinstance(content_type, str) or not content_type.startswith(prefix):
        raise SimulationError(f"the NCCO asks for unsupported audio {content_type!r}")
    return int(content_type[len(prefix) :])


@dataclass
class CallPlan:
    """What to play: the audio (at the rate the NCCO asks for) and the keys pressed."""

    audio: Callable[[int], bytes]  # sample rate -> PCM
    from_number: str = "447700900123"
    to_number: str = "447700900000"
    dtmf: str = ""
    realtime: bool = True
    sample_rate: int | None = None  # announce this rate instead of the NCCO's
    signature_secret: str = ""  # sign webhooks (and the socket, if asked) like Vonage


@dataclass
class SimulatedCall:
    """What happened: ids, what was sent, and what the server answered."""

    uuid: str
    conversation_uuid: str
    ncco: list[dict[str, Any]] = field(default_factory=list)
    socket_uri: str = ""
    page_url: str = ""
    sample_rate: int = 0
    audio: bytes = b""
    frames_sent: int = 0
    close_code: int | None = None
    seconds: float = 0.0


def vonage_jwt(secret: str, payload_hash: str, **claims: Any) -> str:
    """A token as Vonage signs webhooks: HS256, iat, jti, iss, payload_hash."""
    return jwt.encode(
        {
            "iat": int(time.time()),
            "jti": str(uuid.uuid4()),
            "iss": "Vonage",
            "payload_hash": payload_hash,
            "api_key": "a1b2c3d",
            "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
            **claims,
        },
        secret,
        algorithm="HS256",
    )


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _signed(secret: str, payload: bytes) -> dict[str, str]:
    if not secret:
        return {}
    digest = hashlib.sha256(payload).hexdigest()
    return {"Authorization": f"Bearer {vonage_jwt(secret, digest)}"}


async def _post_event(
    http: httpx.AsyncClient, url: str, payload: dict[str, Any], secret: str = ""
) -> None:
    body = _compact(payload)
    headers = {"Content-Type": "application/json", **_signed(secret, body)}
    response = await http.post(url, content=body, headers=headers)
    if response.status_code != 200:
        raise SimulationError(
            f"event webhook answered {response.status_code} to "
            f"{payload.get('status')!r}: {response.text[:200]}"
        )


async def play_call(
    http: httpx.AsyncClient,
    base_url: str,
    plan: CallPlan,
    *,
    on_frame: Callable[[], None] | None = None,
) -> SimulatedCall:
    """Play one call into the server at base_url, as Vonage would."""
    call = SimulatedCall(
        uuid=str(uuid.uuid4()), conversation_uuid=f"CON-{uuid.uuid4()}"
    )
    base_url = base_url.rstrip("/")
    event_url = f"{base_url}/webhooks/event"
    caller = {
        "from": plan.from_number,
        "to": plan.to_number,
        "uuid": call.uuid,
        "conversation_uuid": call.conversation_uuid,
    }
    secret = plan.signature_secret
    started = time.monotonic()
    for status in ("started", "ringing"):
        await _post_event(
            http,
            event_url,
            {
                **caller,
                "status": status,
                "direction": "inbound",
                "timestamp": now_iso(),
            },
            secret,
        )
    response = await http.get(
        f"{base_url}/webhooks/answer",
        params=caller,
        headers=_signed(secret, _compact(caller)),
    )
    if response.status_code != 200:
        raise SimulationError(
            f"answer webhook answered {response.status_code}: {response.text[:200]}"
        )
    try:
        call.ncco = response.json()
    except ValueError:
        raise SimulationError("the answer webhook did not return JSON") from None
    endpoint = _websocket_connect(call.ncco)
    call.socket_uri = endpoint.get("uri", "")
    call.sample_rate = plan.sample_rate or _sample_rate(endpoint.get("content-type"))
    call.page_url = f"{base_url}/calls/uuid/{call.uuid}/"
    call.audio = plan.audio(call.sample_rate)
    answered_at = now_iso()
    await _post_event(
        http,
        event_url,
        {
            **caller,
            "status": "answered",
            "direction": "inbound",
            "start_time": answered_at,
            "timestamp": answered_at,
        },
        secret,
    )
    socket_leg = {
        "from": plan.to_number,
        "to": call.socket_uri,
        "uuid": str(uuid.uuid4()),
        "conversation_uuid": call.conversation_uuid,
        "direction": "outbound",
        "headers": endpoint.get("headers", {}),
    }
    await _post_event(
        http,
        event_url,
        {**socket_leg, "status": "started", "timestamp": now_iso()},
        secret,
    )
    await _stream(call, endpoint, plan, on_frame)
    await _post_event(
        http,
        event_url,
        {**socket_leg, "status": "completed", "timestamp": now_iso()},
        secret,
    )
    # A fast call still reports the length of its audio, as a real one would.
    call.seconds = max(
        time.monotonic() - started, len(call.audio) / SAMPLE_WIDTH / call.sample_rate
    )
    ended_at = iso(
        datetime.fromisoformat(answered_at) + timedelta(seconds=call.seconds)
    )
    await _post_event(
        http,
        event_url,
        {
            **caller,
            "status": "completed",
            "direction": "inbound",
            "start_time": answered_at,
            "end_time": ended_at,
            "duration": str(round(call.seconds)),
            "timestamp": ended_at,
        },
        secret,
    )
    return call


async def _stream(
    call: SimulatedCall,
    endpoint: dict[str, Any],
    plan: CallPlan,
    on_frame: Callable[[], None] | None,
) -> None:
    size = frame_bytes(call.sample_rate)
    frames = [call.audio[i : i + size] for i in range(0, len(call.audio), size)]
    # Key presses spread evenly through the call.
    dtmf_at = {
        (n + 1) * len(frames) // (len(plan.dtmf) + 1): digit
        for n, digit in enumerate(plan.dtmf)
    }
    connected = {
        "event": "websocket:connected",
        "content-type": f"audio/l16;rate={call.sample_rate}",
        **endpoint.get("headers", {}),
    }
    try:
        # Vonage signs the handshake when the NCCO asks it to.
        signed = (endpoint.get("authorization") or {}).get("type") == "vonage"
        async with websockets.connect(
            call.socket_uri,
            max_size=2**20,
            open_timeout=10,
            additional_headers=_signed(plan.signature_secret if signed else "", b""),
        ) as socket:
            await socket.send(json.dumps(connected))
            start = time.monotonic()
            for index, frame in enumerate(frames):
                if index in dtmf_at:
                    await socket.send(
                        json.dumps(
                            {
                                "event": "websocket:dtmf",
                                "digit": dtmf_at[index],
                                "duration": 260,
                            }
                        )
                    )
                await socket.send(frame)
                call.frames_sent += 1
                if on_frame:
                    on_frame()
                if plan.realtime:
                    delay = start + (index + 1) * FRAME_SECONDS - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
            await socket.close()
            call.close_code = socket.close_code
    except websockets.ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd else "none"
        reason = f": {closed.rcvd.reason}" if closed.rcvd and closed.rcvd.reason else ""
        raise SimulationError(
            f"the server closed the socket after {call.frames_sent} of {len(frames)} "
            f"frames (code {code}{reason})"
        ) from None
    except (OSError, websockets.InvalidHandshake) as error:
        raise SimulationError(
            f"could not open the socket {call.socket_uri}: {error}"
        ) from None
