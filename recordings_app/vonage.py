"""What Vonage sends and expects: NCCOs, webhook payloads, socket messages.

Plain Python, no Django: everything here is built against
../shared/vonage-protocol.md and tested without a database. Parsing is
strict about what it must rely on (the identifiers that tie a message to a
call) and liberal about everything else, which is kept as sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from vonage_voice.models import Connect, Talk, WebsocketEndpoint
from vonage_voice.models.common import WebsocketAuthorization

# WAV can hold any rate; these bounds only refuse nonsense from the socket.
ACCEPTED_SAMPLE_RATES = range(8000, 48001)

# Vonage call and conversation ids: a UUID, "CON-" plus a UUID, or similar.
# Nothing else is accepted, so an id is always safe in a file name or a URL.
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,79}")
# Connect's "from" must be an E.164 number without "+" (the SDK's own rule).
_E164_PATTERN = re.compile(r"[1-9][0-9]{6,14}")
_CONTENT_TYPE_PATTERN = re.compile(
    r"\s*audio/l16\s*;\s*rate\s*=\s*([0-9]{1,6})\s*", re.IGNORECASE
)

# Order of a call's progress; a status never moves the call backwards, so an
# event that arrives late ("ringing" after "answered") cannot undo progress.
STATUS_RANK = {
    "started": 1,
    "ringing": 2,
    "answered": 3,
    "busy": 4,
    "cancelled": 4,
    "timeout": 4,
    "unanswered": 4,
    "rejected": 4,
    "failed": 4,
    "completed": 5,
}
FINAL_STATUSES = frozenset(s for s, rank in STATUS_RANK.items() if rank >= 4)


class InvalidWebhook(ValueError):
    """A webhook payload we cannot act on; the message says why."""


class InvalidSocketMessage(ValueError):
    """A socket text message that breaks the protocol; the message says why."""


def clean_id(value: Any, name: str, *, required: bool = True) -> str:
    """Return a Vonage identifier, or raise InvalidWebhook naming the field."""
    if value is None or value == "":
        if required:
            raise InvalidWebhook(f"{name} is missing")
        return ""
    if not isinstance(value, str) or not _ID_PATTERN.fullmatch(value):
        raise InvalidWebhook(f"{name} is not a valid Vonage identifier")
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def loads_json(text: str | bytes) -> Any:
    """json.loads, refusing NaN and Infinity: no database stores them as JSON."""
    return json.loads(text, parse_constant=_refuse_constant)


# A call's times must fall in this century: year 1 or 9999 overflow the
# arithmetic (a day before, a day after) that pages and retention do.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def parse_timestamp(value: Any, name: str) -> datetime | None:
    """Parse Vonage's ISO 8601 timestamps ("2020-03-31T12:00:00.000Z")."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidWebhook(f"{name} is not an ISO 8601 timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidWebhook(f"{name} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise InvalidWebhook(f"{name} has no time zone")
    if not _EARLIEST <= parsed < _LATEST:
        raise InvalidWebhook(f"{name} is not in the years 2000 to 2099")
    return parsed


def _text(payload: Mapping[str, Any], name: str, max_length: int = 100) -> str:
    value = payload.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidWebhook(f"{name} must be a string")
    value = str(value)
    if len(value) > max_length:
        raise InvalidWebhook(f"{name} is longer than {max_length} characters")
    return value


@dataclass(frozen=True)
class AnswerRequest:
    """The answer webhook: Vonage asks what to do with a new call."""

    uuid: str
    conversation_uuid: str
    from_number: str
    to_number: str


def parse_answer(params: Mapping[str, Any]) -> AnswerRequest:
    """Read the answer webhook's fields (query string or JSON body)."""
    return AnswerRequest(
        uuid=clean_id(params.get("uuid"), "uuid"),
        conversation_uuid=clean_id(
            params.get("conversation_uuid"), "conversation_uuid"
        ),
        from_number=_text(params, "from") or _text(params, "from_user"),
        to_number=_text(params, "to"),
    )


def sample_rate_content_type(sample_rate: int) -> str:
    return f"audio/l16;rate={sample_rate}"


def websocket_base_url(http_base_url: str) -> str:
    """Map a public http(s) base URL to the ws(s) one Vonage should dial."""
    parts = urlsplit(http_base_url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def websocket_uri(ws_base_url: str, path: str, params: Mapping[str, str]) -> str:
    return f"{ws_base_url}{path}?{urlencode(params)}"


def build_ncco(
    *,
    greeting: str,
    websocket_uri: str,
    sample_rate: int,
    socket_headers: Mapping[str, Any],
    from_number: str,
    event_url: str,
    vonage_signed_socket: bool = False,
) -> list[dict[str, Any]]:
    """Greet the caller, then connect the call's audio to our socket.

    vonage_signed_socket asks Vonage to send its signed JWT on the socket's
    opening handshake (`authorization: {"type": "vonage"}`).
    """
    endpoint = WebsocketEndpoint(
        uri=websocket_uri,
        contentType=sample_rate_content_type(sample_rate),
        headers=dict(socket_headers),
        authorization=WebsocketAuthorization(type="vonage")
        if vonage_signed_socket
        else None,
    )
    # Connect needs a caller id: our own number when it is a valid E.164
    # (it is the number the caller dialled), else one Vonage picks.
    if _E164_PATTERN.fullmatch(from_number):
        connect = Connect(endpoint=[endpoint], from_=from_number, eventUrl=[event_url])
    else:
        connect = Connect(
            endpoint=[endpoint], randomFromNumber=True, eventUrl=[event_url]
        )
    actions = [connect]
    if greeting:
        actions.insert(0, Talk(text=greeting))
    # mode="json" turns the SDK's enums into plain strings.
    return [
        action.model_dump(by_alias=True, exclude_none=True, mode="json")
        for action in actions
    ]


def is_websocket_leg(payload: Mapping[str, Any]) -> bool:
    """The socket is a leg of its own; its events carry `to` = the socket URI."""
    to = payload.get("to")
    if isinstance(to, str) and to.lower().startswith(("ws://", "wss://")):
        return True
    return payload.get("endpoint_type") == "websocket"


def fingerprint(payload: Mapping[str, Any]) -> str:
    """The same event sent twice (a Vonage retry) has the same fingerprint."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _event_kind(payload: Mapping[str, Any]) -> str:
    """Name events that have no `status` by what they carry."""
    if "recording_url" in payload:
        return "record"
    if "conversation_uuid_to" in payload:
        return "transfer"
    if "reason" in payload:
        return "error"
    if "dtmf" in payload or "speech" in payload:
        return "input"
    if "payload" in payload:
        return "notify"
    return "event"


def _duration(value: Any) -> int | None:
    """Vonage sends "65" (a string); a JSON integer is fine too."""
    if value is None or value == "":
        return None
    if str(value).startswith("-"):
        raise InvalidWebhook("duration is negative")
    if (
        isinstance(value, str)
        and value.isascii()
        and value.isdigit()
        and len(value) < 10
    ):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9:
        return value
    raise InvalidWebhook("duration is not a whole number of seconds")


@dataclass(frozen=True)
class CallEventData:
    """One event webhook, reduced to what the call's record needs."""

    conversation_uuid: str
    leg_uuid: str
    is_websocket_leg: bool
    status: str
    timestamp: datetime | None
    direction: str = ""
    from_number: str = ""
    to_number: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration_seconds: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""


def parse_event(payload: Mapping[str, Any]) -> CallEventData:
    """Read an event webhook; raise InvalidWebhook saying why it is unusable."""
    if not isinstance(payload, Mapping):
        raise InvalidWebhook("the event must be a JSON object")
    payload = dict(payload)
    conversation_uuid = clean_id(
        payload.get("conversation_uuid") or payload.get("conversation_uuid_to"),
        "conversation_uuid",
        required=False,
    )
    # human/machine events name the leg `call_uuid`, not `uuid`.
    leg_uuid = clean_id(
        payload.get("uuid") or payload.get("call_uuid"), "uuid", required=False
    )
    if not conversation_uuid and not leg_uuid:
        raise InvalidWebhook(
            "the event names no call: conversation_uuid and uuid are both missing"
        )
    status = _text(payload, "status", max_length=40) or _event_kind(payload)
    direction = _text(payload, "direction", max_length=20)
    duration_seconds = _duration(payload.get("duration"))
    websocket_leg = is_websocket_leg(payload)
    return CallEventData(
        conversation_uuid=conversation_uuid,
        leg_uuid=leg_uuid,
        is_websocket_leg=websocket_leg,
        status=status,
        timestamp=parse_timestamp(payload.get("timestamp"), "timestamp"),
        direction=direction,
        from_number=_text(payload, "from") or _text(payload, "from_user"),
        # The socket leg's `to` is a URI, never a number.
        to_number="" if websocket_leg else _text(payload, "to"),
        start_time=parse_timestamp(payload.get("start_time"), "start_time"),
        end_time=parse_timestamp(payload.get("end_time"), "end_time"),
        duration_seconds=duration_seconds,
        payload=payload,
        # The same without the keys pressed: a retry matches whether or not
        # its digits are kept, and no hash of a card number is stored.
        fingerprint=fingerprint(
            event_payload_to_keep(payload, hide_digits=DIGITS_HIDDEN_MASKED)
        ),
    )


def sample_rate_from_content_type(content_type: Any) -> int:
    """`audio/l16;rate=16000` -> 16000; anything else is refused."""
    if not isinstance(content_type, str):
        raise InvalidSocketMessage("content-type is missing")
    match = _CONTENT_TYPE_PATTERN.fullmatch(content_type)
    if not match or int(match.group(1)) not in ACCEPTED_SAMPLE_RATES:
        raise InvalidSocketMessage(f"unsupported content-type {content_type[:60]!r}")
    return int(match.group(1))


@dataclass(frozen=True)
class SocketMessage:
    """A text message on the audio socket: `websocket:connected`, DTMF, ..."""

    event: str
    payload: dict[str, Any]

    @property
    def is_connected(self) -> bool:
        return self.event == "websocket:connected"


def parse_socket_message(text: str) -> SocketMessage:
    """Parse a socket text message; it must be a JSON object."""
    try:
        payload = loads_json(text)
    except (ValueError, RecursionError):
        raise InvalidSocketMessage("text message is not JSON we can read") from None
    if not isinstance(payload, dict):
        raise InvalidSocketMessage("text message is not a JSON object")
    event = payload.get("event")
    if not isinstance(event, str) or not event:
        event = "websocket:unknown"
    return SocketMessage(event=event[:60], payload=payload)


# Why a key press is kept without its key (CallEvent.payload["digit_hidden"]).
DIGITS_HIDDEN_PAUSED = "recording paused"
DIGITS_HIDDEN_MASKED = "digits are never stored here"


def socket_event_to_keep(
    event: str, payload: Mapping[str, Any], *, hide_digits: str = ""
) -> dict[str, Any]:
    """What to store of a socket text message; with hide_digits, no key pressed.

    A caller typing a card number while recording is paused must leave no
    digit anywhere: a DTMF message keeps only that a key was pressed, and
    for how long; a garbled message (which could hold a digit) keeps nothing
    of its text.
    """
    if not hide_digits:
        return dict(payload)
    if event == "websocket:dtmf":
        kept = {"event": event, "digit_hidden": hide_digits}
        if isinstance(payload.get("duration"), int | float):
            kept["duration"] = payload["duration"]
        return kept
    if event == "websocket:invalid":
        return {"text_hidden": hide_digits}
    return dict(payload)


def event_payload_to_keep(
    payload: Mapping[str, Any], *, hide_digits: str = ""
) -> dict[str, Any]:
    """An event webhook's payload; with hide_digits, an `input` keeps no digits.

    Vonage's input events carry the keys pressed in dtmf.digits (and what
    was said in speech): both go, the rest of the event stays.
    """
    kept = dict(payload)
    if hide_digits and isinstance(kept.get("dtmf"), Mapping):
        dtmf = {k: v for k, v in kept["dtmf"].items() if k != "digits"}
        kept["dtmf"] = dtmf | {"digits_hidden": hide_digits}
    if hide_digits and "speech" in kept:
        kept["speech"] = {"hidden": hide_digits}
    return kept
