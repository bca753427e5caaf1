from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from recordings_app.vonage import (
    InvalidSocketMessage,
    InvalidWebhook,
    build_ncco,
    clean_id,
    fingerprint,
    is_websocket_leg,
    parse_answer,
    parse_event,
    parse_socket_message,
    parse_timestamp,
    sample_rate_from_content_type,
    websocket_base_url,
    websocket_uri,
)

CALL_UUID = "aaaaaaaa-1111-2222-3333-444444444444"
SOCKET_UUID = "cccccccc-1111-2222-3333-444444444444"
CONVERSATION_UUID = "CON-bbbbbbbb-1111-2222-3333-444444444444"
OUR_NUMBER = "447700900000"
CALLER = "447700900123"
SOCKET_URI = f"wss://rec.example.com/ws/audio?uuid={CALL_UUID}"
EVENT_URL = "https://rec.example.com/webhooks/event"
ANSWER = {
    "from": CALLER,
    "to": OUR_NUMBER,
    "uuid": CALL_UUID,
    "conversation_uuid": CONVERSATION_UUID,
}


def ncco(**overrides):
    options = {
        "greeting": "This call is recorded.",
        "websocket_uri": SOCKET_URI,
        "sample_rate": 16000,
        "socket_headers": {"call_uuid": CALL_UUID, "caller": CALLER},
        "from_number": OUR_NUMBER,
        "event_url": EVENT_URL,
    }
    return build_ncco(**{**options, **overrides})


def event(**fields):
    return {"uuid": CALL_UUID, "conversation_uuid": CONVERSATION_UUID, **fields}


# NCCO


def test_ncco_greets_the_caller_then_connects_the_call_to_our_socket():
    talk, connect = ncco()

    assert talk == {"action": "talk", "text": "This call is recorded."}
    assert connect["action"] == "connect"
    assert connect["eventUrl"] == [EVENT_URL]
    assert connect["endpoint"] == [
        {
            "type": "websocket",
            "uri": SOCKET_URI,
            "content-type": "audio/l16;rate=16000",
            "headers": {"call_uuid": CALL_UUID, "caller": CALLER},
        }
    ]


@pytest.mark.parametrize("number", [OUR_NUMBER, "14155550100", "1234567"])
def test_connect_calls_out_from_our_number_when_it_is_e164(number):
    connect = ncco(from_number=number)[-1]

    assert connect["from"] == number
    assert "from_" not in connect
    assert "randomFromNumber" not in connect


@pytest.mark.parametrize(
    "number",
    [
        "",
        "+447700900000",
        "07700900000",
        "123456",
        "1234567890123456",
        "Alice",
        pytest.param(f"{OUR_NUMBER}\n", id="trailing-newline"),
    ],
)
def test_connect_lets_vonage_pick_a_caller_id_when_our_number_is_not_e164(number):
    connect = ncco(from_number=number)[-1]

    assert connect["randomFromNumber"] is True
    assert "from" not in connect
    assert "from_" not in connect


def test_ncco_holds_plain_json_values_not_sdk_enums():
    actions = ncco()
    endpoint = actions[-1]["endpoint"][0]

    assert json.loads(json.dumps(actions)) == actions
    assert [type(action["action"]) for action in actions] == [str, str]
    assert type(endpoint["type"]) is str
    assert type(endpoint["content-type"]) is str


def test_ncco_without_a_greeting_only_connects():
    assert [action["action"] for action in ncco(greeting="")] == ["connect"]


@pytest.mark.parametrize("sample_rate", [8000, 16000, 24000])
def test_ncco_asks_for_audio_at_each_supported_sample_rate(sample_rate):
    content_type = ncco(sample_rate=sample_rate)[-1]["endpoint"][0]["content-type"]

    assert content_type == f"audio/l16;rate={sample_rate}"
    assert sample_rate_from_content_type(content_type) == sample_rate


@pytest.mark.parametrize(
    ("http_url", "ws_url"),
    [
        ("https://rec.example.com", "wss://rec.example.com"),
        ("http://127.0.0.1:8000/", "ws://127.0.0.1:8000"),
        ("https://example.com/callrecorder/", "wss://example.com/callrecorder"),
    ],
)
def test_websocket_base_url_maps_http_schemes_to_websocket_ones(http_url, ws_url):
    assert websocket_base_url(http_url) == ws_url


def test_websocket_uri_carries_the_call_ids_in_its_query_string():
    uri = websocket_uri(
        "wss://rec.example.com",
        "/ws/audio",
        {"uuid": CALL_UUID, "conversation_uuid": "CON-a&b=c"},
    )

    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "wss",
        "rec.example.com",
        "/ws/audio",
    )
    assert parse_qs(parts.query) == {
        "uuid": [CALL_UUID],
        "conversation_uuid": ["CON-a&b=c"],
    }


# Answer webhook


def test_answer_reads_the_call_ids_and_both_numbers():
    answer = parse_answer(ANSWER)

    assert answer.uuid == CALL_UUID
    assert answer.conversation_uuid == CONVERSATION_UUID
    assert answer.from_number == CALLER
    assert answer.to_number == OUR_NUMBER


def test_answer_from_an_app_user_reads_from_user():
    answer = parse_answer({**ANSWER, "from": None, "from_user": "alice"})

    assert answer.from_number == "alice"


def test_answer_numbers_sent_as_json_integers_are_kept_as_text():
    answer = parse_answer({**ANSWER, "from": 447700900123, "to": 447700900000})

    assert (answer.from_number, answer.to_number) == (CALLER, OUR_NUMBER)


@pytest.mark.parametrize("field", ["uuid", "conversation_uuid"])
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "is missing"),
        ("", "is missing"),
        ("../../etc/passwd", "is not a valid Vonage identifier"),
        ("..", "is not a valid Vonage identifier"),
        ("a/b", "is not a valid Vonage identifier"),
        ("-leading-dash", "is not a valid Vonage identifier"),
        ("a b", "is not a valid Vonage identifier"),
        ("a" * 81, "is not a valid Vonage identifier"),
        (12345, "is not a valid Vonage identifier"),
        pytest.param(
            "aaaa-1111\n",
            "is not a valid Vonage identifier",
            id="trailing-newline",
        ),
    ],
)
def test_answer_without_a_usable_call_id_is_refused_naming_the_field(
    field, value, reason
):
    with pytest.raises(InvalidWebhook) as raised:
        parse_answer({**ANSWER, field: value})

    assert str(raised.value) == f"{field} {reason}"


@pytest.mark.parametrize("value", [CALL_UUID, CONVERSATION_UUID, "a" * 80])
def test_vonage_ids_are_accepted_as_sent(value):
    assert clean_id(value, "uuid") == value


def test_optional_id_may_be_missing():
    assert clean_id(None, "uuid", required=False) == ""


# Event webhook


@pytest.mark.parametrize(
    "to",
    [SOCKET_URI, "ws://127.0.0.1:8000/ws/audio?uuid=x", "WSS://REC.EXAMPLE.COM/ws"],
)
def test_event_from_the_socket_leg_is_marked_and_has_no_to_number(to):
    parsed = parse_event(
        event(uuid=SOCKET_UUID, status="disconnected", to=to, **{"from": OUR_NUMBER})
    )

    assert parsed.is_websocket_leg
    assert parsed.to_number == ""
    assert parsed.from_number == OUR_NUMBER
    assert parsed.leg_uuid == SOCKET_UUID
    assert parsed.conversation_uuid == CONVERSATION_UUID


def test_event_from_the_caller_leg_keeps_its_to_number():
    parsed = parse_event(event(status="answered", to=OUR_NUMBER))

    assert not parsed.is_websocket_leg
    assert parsed.to_number == OUR_NUMBER


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"to": SOCKET_URI}, True),
        ({"to": OUR_NUMBER, "endpoint_type": "websocket"}, True),
        ({"to": OUR_NUMBER}, False),
        ({"to": "sip:alice@example.com"}, False),
        ({"to": "https://rec.example.com/ws/audio"}, False),
        ({}, False),
    ],
)
def test_socket_leg_is_recognised_by_its_uri_or_endpoint_type(payload, expected):
    assert is_websocket_leg(payload) is expected


@pytest.mark.parametrize("status", ["human", "machine"])
def test_machine_detection_events_name_the_leg_by_call_uuid(status):
    parsed = parse_event(
        {
            "call_uuid": CALL_UUID,
            "conversation_uuid": CONVERSATION_UUID,
            "status": status,
        }
    )

    assert parsed.leg_uuid == CALL_UUID
    assert parsed.status == status


def test_transfer_event_is_tied_to_the_conversation_it_moved_to():
    parsed = parse_event(
        {
            "uuid": CALL_UUID,
            "conversation_uuid_from": "CON-old",
            "conversation_uuid_to": CONVERSATION_UUID,
        }
    )

    assert parsed.conversation_uuid == CONVERSATION_UUID
    assert parsed.status == "transfer"


def test_event_naming_no_call_is_refused():
    with pytest.raises(InvalidWebhook, match="conversation_uuid and uuid"):
        parse_event({"status": "started", "to": OUR_NUMBER})


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"timestamp": "yesterday"}, "timestamp is not an ISO 8601 timestamp"),
        ({"timestamp": 1585656000}, "timestamp is not an ISO 8601 timestamp"),
        ({"timestamp": "2020-03-31T12:00:00"}, "timestamp has no time zone"),
        ({"start_time": "31/03/2020"}, "start_time is not an ISO 8601 timestamp"),
        ({"end_time": "soon"}, "end_time is not an ISO 8601 timestamp"),
        ({"duration": -1}, "duration is negative"),
        ({"duration": "-5"}, "duration is negative"),
        ({"duration": "ten"}, "duration is not a whole number of seconds"),
        ({"duration": "12.5"}, "duration is not a whole number of seconds"),
        ({"duration": [12]}, "duration is not a whole number of seconds"),
        pytest.param(
            {"duration": float("inf")},
            "duration is not a whole number of seconds",
            id="infinite-duration",
        ),
        ({"uuid": "../../etc/passwd"}, "uuid is not a valid Vonage identifier"),
        ({"status": {"a": 1}}, "status must be a string"),
        ({"status": "x" * 41}, "status is longer than 40 characters"),
    ],
)
def test_event_with_an_unusable_field_is_refused_saying_why(fields, reason):
    with pytest.raises(InvalidWebhook) as raised:
        parse_event({**event(status="completed"), **fields})

    assert str(raised.value) == reason


def test_completed_event_reads_its_times_and_duration():
    parsed = parse_event(
        event(
            status="completed",
            timestamp="2020-03-31T12:02:05.000Z",
            start_time="2020-03-31T12:00:00.000Z",
            end_time="2020-03-31T12:02:05.000Z",
            duration="125",
        )
    )

    assert parsed.status == "completed"
    assert parsed.start_time == datetime(2020, 3, 31, 12, 0, tzinfo=UTC)
    assert parsed.end_time == datetime(2020, 3, 31, 12, 2, 5, tzinfo=UTC)
    assert parsed.timestamp == parsed.end_time
    assert parsed.duration_seconds == 125


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"recording_url": "https://api.nexmo.com/v1/files/x", "size": 1}, "record"),
        ({"conversation_uuid_to": CONVERSATION_UUID}, "transfer"),
        ({"reason": "Invalid NCCO"}, "error"),
        ({"dtmf": {"digits": "12", "timed_out": False}}, "input"),
        ({"speech": {"results": []}}, "input"),
        ({"payload": {"step": "menu"}}, "notify"),
        ({}, "event"),
    ],
)
def test_event_without_a_status_is_named_by_what_it_carries(fields, kind):
    assert parse_event(event(**fields)).status == kind


def test_event_keeps_the_payload_as_sent_with_its_fingerprint():
    payload = event(status="answered", network="", headers={"caller": CALLER})

    parsed = parse_event(payload)

    assert parsed.payload == payload
    assert parsed.fingerprint == fingerprint(payload)


def test_timestamps_are_read_as_utc_and_blank_ones_as_none():
    assert parse_timestamp("2020-03-31T12:00:00.000Z", "timestamp") == datetime(
        2020, 3, 31, 12, tzinfo=UTC
    )
    assert parse_timestamp("", "timestamp") is None
    assert parse_timestamp(None, "timestamp") is None


def test_fingerprint_ignores_key_order():
    first = {"uuid": CALL_UUID, "status": "answered", "headers": {"a": 1, "b": 2}}
    second = {"headers": {"b": 2, "a": 1}, "status": "answered", "uuid": CALL_UUID}

    assert fingerprint(first) == fingerprint(second)


@pytest.mark.parametrize(
    "changed",
    [
        {"status": "ringing"},
        {"uuid": SOCKET_UUID},
        {"headers": {"a": 1, "b": 3}},
        {"timestamp": "2020-03-31T12:00:00.001Z"},
    ],
)
def test_fingerprint_differs_when_any_value_differs(changed):
    payload = {
        "uuid": CALL_UUID,
        "status": "answered",
        "headers": {"a": 1, "b": 2},
        "timestamp": "2020-03-31T12:00:00.000Z",
    }

    assert fingerprint({**payload, **changed}) != fingerprint(payload)


def test_fingerprint_differs_when_a_field_is_added():
    payload = {"uuid": CALL_UUID, "status": "answered"}

    assert fingerprint({**payload, "detail": "x"}) != fingerprint(payload)


# Audio socket


@pytest.mark.parametrize(
    ("content_type", "rate"),
    [
        ("audio/l16;rate=16000", 16000),
        ("audio/l16;rate=8000", 8000),
        ("audio/l16;rate=24000", 24000),
        ("audio/L16;rate=16000", 16000),
        ("AUDIO/L16;RATE=16000", 16000),
        ("  audio/l16 ; rate = 16000  ", 16000),
    ],
)
def test_socket_content_type_gives_the_sample_rate(content_type, rate):
    assert sample_rate_from_content_type(content_type) == rate


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        16000,
        "",
        "audio/l16",
        "audio/l16;rate=",
        "audio/pcm;rate=16000",
        "audio/l24;rate=16000",
        "audio/l16;rate=16000;channels=2",
        "audio/l16;rate=16k",
        "audio/l16;rate=4000",
        "audio/l16;rate=96000",
        "audio/l16;rate=-16000",
        pytest.param("audio/l16;rate=" + "1" * 5000, id="5000-digit-rate"),
    ],
)
def test_socket_content_type_other_than_l16_at_a_sane_rate_is_refused(
    content_type,
):
    with pytest.raises(InvalidSocketMessage):
        sample_rate_from_content_type(content_type)


@pytest.mark.parametrize("text", ["", "hello", "{", "{'event': 'x'}"])
def test_socket_text_that_is_not_json_is_refused(text):
    with pytest.raises(InvalidSocketMessage, match="not JSON"):
        parse_socket_message(text)


@pytest.mark.parametrize("text", ["[]", '"websocket:connected"', "42", "null"])
def test_socket_text_that_is_not_a_json_object_is_refused(text):
    with pytest.raises(InvalidSocketMessage, match="not a JSON object"):
        parse_socket_message(text)


def test_socket_text_nested_too_deep_for_the_parser_is_refused():
    """100 kB of brackets is well under Daphne's 1 MiB message limit."""
    with pytest.raises(InvalidSocketMessage):
        parse_socket_message("[" * 100_000)


def test_connected_message_is_recognised_with_its_headers():
    text = json.dumps(
        {
            "event": "websocket:connected",
            "content-type": "audio/l16;rate=16000",
            "call_uuid": CALL_UUID,
        }
    )

    message = parse_socket_message(text)

    assert message.event == "websocket:connected"
    assert message.is_connected
    assert message.payload["call_uuid"] == CALL_UUID


def test_dtmf_message_keeps_its_event_name_and_digit():
    message = parse_socket_message(
        '{"event": "websocket:dtmf", "digit": "5", "duration": 260}'
    )

    assert message.event == "websocket:dtmf"
    assert not message.is_connected
    assert message.payload == {
        "event": "websocket:dtmf",
        "digit": "5",
        "duration": 260,
    }


@pytest.mark.parametrize(
    "text", ["{}", '{"event": ""}', '{"event": 5}', '{"event": null}']
)
def test_socket_message_without_an_event_name_is_unknown(text):
    message = parse_socket_message(text)

    assert message.event == "websocket:unknown"
    assert not message.is_connected


def _signed(secret: str, algorithm: str = "HS256", **claims) -> str:
    import time
    import uuid

    import jwt

    claims = {"iat": int(time.time()), "jti": str(uuid.uuid4())} | claims
    return jwt.encode(claims, secret, algorithm=algorithm)


@pytest.mark.parametrize(
    "make_token, sdk_should_accept",
    [
        (lambda: _signed("s" * 64), True),
        (lambda: _signed("another-secret-0123456789abcdefgh"), False),
        (lambda: _signed("s" * 64, algorithm="HS512"), False),
        (lambda: _signed("s" * 64)[:-3] + "abc", False),  # the signature altered
        (lambda: _signed("s" * 64).replace(".", ".e30", 1)[:-8], False),  # payload
        (lambda: "not-a-jwt", False),
    ],
    ids=["signed", "other secret", "HS512", "signature", "payload", "malformed"],
)
def test_a_webhook_signature_is_accepted_exactly_when_the_vonage_sdk_accepts_it(
    make_token, sdk_should_accept
):
    """Tokens are signed when the test runs, not when it is collected: a
    token made at collection is minutes old by the time a long suite gets
    here, and the max_age check would rightly refuse it."""
    from vonage_jwt import verify_signature
    from vonage_jwt.errors import VonageVerifyJwtError

    from recordings_app.signatures import SignatureError, verify_vonage_jwt

    token = make_token()
    try:
        sdk_accepts = verify_signature(token, "s" * 64)
    except VonageVerifyJwtError:
        sdk_accepts = False
    try:
        verify_vonage_jwt(token, secret="s" * 64, max_age=300)
        we_accept = True
    except SignatureError:
        we_accept = False

    assert sdk_accepts == sdk_should_accept
    assert we_accept == sdk_accepts
