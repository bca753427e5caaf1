from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from recordings_app.models import Call, CallEvent
from recordings_app.simulator.caller import vonage_jwt

pytestmark = pytest.mark.django_db

CALL = {
    "from": "447700900123",
    "to": "447700900000",
    "uuid": "aaaaaaaa-1111-2222-3333-444444444444",
    "conversation_uuid": "CON-bbbbbbbb-1111-2222-3333-444444444444",
}
SOCKET_URI = "wss://example.com/ws/audio?uuid=x"
SECRET = "a-signature-secret-of-32-characters"


def post_event(client, payload, **extra):
    return client.post(
        reverse("recordings:event_webhook"),
        data=json.dumps(payload),
        content_type="application/json",
        **extra,
    )


def connect_endpoint(ncco):
    return ncco[1]["endpoint"][0]


def test_answer_by_get_replies_with_talk_then_connect_to_our_socket(client):
    response = client.get(reverse("recordings:answer_webhook"), CALL)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    ncco = response.json()
    assert [action["action"] for action in ncco] == ["talk", "connect"]
    assert ncco[0]["text"] == "This call is recorded."
    endpoint = connect_endpoint(ncco)
    assert endpoint["type"] == "websocket"
    assert endpoint["content-type"] == "audio/l16;rate=16000"
    assert ncco[1]["from"] == CALL["to"]
    assert ncco[1]["eventUrl"] == ["http://testserver/webhooks/event"]


def test_answer_socket_uri_and_headers_carry_the_call_ids(client):
    ncco = client.get(reverse("recordings:answer_webhook"), CALL).json()
    endpoint = connect_endpoint(ncco)

    uri = urlsplit(endpoint["uri"])
    assert (uri.scheme, uri.netloc, uri.path) == ("ws", "testserver", "/ws/audio")
    query = parse_qs(uri.query)
    assert query["uuid"] == [CALL["uuid"]]
    assert query["conversation_uuid"] == [CALL["conversation_uuid"]]
    assert endpoint["headers"] == {
        "call_uuid": CALL["uuid"],
        "conversation_uuid": CALL["conversation_uuid"],
    }


def test_answer_by_post_json_works_like_get(client):
    response = client.post(
        reverse("recordings:answer_webhook"),
        data=json.dumps(CALL),
        content_type="application/json",
    )

    assert response.status_code == 200
    assert connect_endpoint(response.json())["type"] == "websocket"
    assert Call.objects.get().uuid == CALL["uuid"]


def test_answer_behind_a_tls_tunnel_gives_a_wss_uri_on_the_public_host(
    client, settings
):
    """The tunnel's agent on this machine is a trusted proxy; through a
    tunnel, webhooks must be signed."""
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    settings.VONAGE_SIGNATURE_SECRET = SECRET
    query_hash = hashlib.sha256(
        json.dumps(CALL, separators=(",", ":")).encode()
    ).hexdigest()
    response = client.get(
        reverse("recordings:answer_webhook"),
        CALL,
        headers={
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "abc.ngrok.app",
            "Authorization": f"Bearer {vonage_jwt(SECRET, query_hash)}",
        },
    )

    uri = connect_endpoint(response.json())["uri"]
    assert uri.startswith("wss://abc.ngrok.app/ws/audio?")
    assert response.json()[1]["eventUrl"] == ["https://abc.ngrok.app/webhooks/event"]


def test_public_url_setting_wins_over_the_request_host(client, settings):
    settings.PUBLIC_URL = "https://calls.example.com"

    ncco = client.get(reverse("recordings:answer_webhook"), CALL).json()

    assert connect_endpoint(ncco)["uri"].startswith("wss://calls.example.com/ws/audio?")


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_answer_asks_for_the_configured_sample_rate(client, settings, rate):
    settings.CALLRECORDER_SAMPLE_RATE = rate

    ncco = client.get(reverse("recordings:answer_webhook"), CALL).json()

    assert connect_endpoint(ncco)["content-type"] == f"audio/l16;rate={rate}"


def test_greeting_text_is_configurable(client, settings):
    settings.CALLRECORDER_GREETING = "Hello, this line records."

    ncco = client.get(reverse("recordings:answer_webhook"), CALL).json()

    assert ncco[0] == {"action": "talk", "text": "Hello, this line records."}


def test_answer_creates_the_call_once_even_when_vonage_retries(client):
    client.get(reverse("recordings:answer_webhook"), CALL)
    client.get(reverse("recordings:answer_webhook"), CALL)

    call = Call.objects.get()
    assert call.uuid == CALL["uuid"]
    assert call.conversation_uuid == CALL["conversation_uuid"]
    assert (call.from_number, call.to_number) == (CALL["from"], CALL["to"])
    assert call.started_at is not None


@pytest.mark.parametrize("missing", ["uuid", "conversation_uuid"])
def test_answer_without_call_ids_is_refused_with_a_reason(client, missing):
    params = {key: value for key, value in CALL.items() if key != missing}

    response = client.get(reverse("recordings:answer_webhook"), params)

    assert response.status_code == 400
    assert f"{missing} is missing" in response.content.decode()
    assert not Call.objects.exists()


def test_answer_refuses_ids_that_are_not_vonage_ids(client):
    response = client.get(
        reverse("recordings:answer_webhook"), {**CALL, "uuid": "../../etc/passwd"}
    )

    assert response.status_code == 400
    assert not Call.objects.exists()


def test_event_arriving_before_the_answer_creates_the_call(client):
    response = post_event(
        client,
        {
            **CALL,
            "status": "started",
            "direction": "inbound",
            "timestamp": "2026-01-02T03:04:05.000Z",
        },
    )

    assert response.status_code == 200
    call = Call.objects.get()
    assert call.status == "started"
    assert call.direction == "inbound"
    assert call.from_number == CALL["from"]
    event = call.events.get()
    assert event.timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert event.payload["status"] == "started"


def test_completed_event_sets_end_duration_and_start(client):
    client.get(reverse("recordings:answer_webhook"), CALL)
    post_event(
        client,
        {
            **CALL,
            "status": "completed",
            "direction": "inbound",
            "start_time": "2026-01-02T03:04:05.000Z",
            "end_time": "2026-01-02T03:05:10.000Z",
            "duration": "65",
            "timestamp": "2026-01-02T03:05:10.100Z",
        },
    )

    call = Call.objects.get()
    assert call.status == "completed"
    assert call.duration_seconds == 65
    assert call.started_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert call.ended_at == datetime(2026, 1, 2, 3, 5, 10, tzinfo=UTC)


def test_socket_leg_events_join_the_call_without_touching_its_numbers(client):
    client.get(reverse("recordings:answer_webhook"), CALL)
    post_event(client, {**CALL, "status": "answered", "direction": "inbound"})
    socket_leg = {
        "from": "447700900000",
        "to": SOCKET_URI,
        "uuid": "cccccccc-1111-2222-3333-444444444444",
        "conversation_uuid": CALL["conversation_uuid"],
        "direction": "outbound",
        "headers": {"call_uuid": CALL["uuid"]},
    }
    post_event(client, {**socket_leg, "status": "started"})
    post_event(client, {**socket_leg, "status": "completed", "duration": "3"})

    call = Call.objects.get()
    assert (call.from_number, call.to_number) == (CALL["from"], CALL["to"])
    assert call.direction == "inbound"
    assert call.status == "answered"
    assert call.duration_seconds is None
    assert call.uuid == CALL["uuid"]
    assert list(call.events.values_list("is_websocket_leg", flat=True)) == [
        False,
        True,
        True,
    ]


def test_repeated_delivery_of_an_event_is_stored_once(client):
    payload = {**CALL, "status": "ringing", "timestamp": "2026-01-02T03:04:05.000Z"}

    first = post_event(client, payload)
    second = post_event(client, payload)

    assert first.status_code == second.status_code == 200
    assert CallEvent.objects.count() == 1


def test_a_late_ringing_event_does_not_undo_completed(client):
    post_event(client, {**CALL, "status": "completed", "duration": "5"})
    post_event(client, {**CALL, "status": "ringing"})

    call = Call.objects.get()
    assert call.status == "completed"
    assert call.events.count() == 2


def test_event_by_get_query_string_is_accepted(client):
    response = client.get(
        reverse("recordings:event_webhook"), {**CALL, "status": "ringing"}
    )

    assert response.status_code == 200
    assert Call.objects.get().status == "ringing"


def test_human_machine_event_naming_only_call_uuid_reaches_the_call(client):
    client.get(reverse("recordings:answer_webhook"), CALL)

    response = post_event(client, {"call_uuid": CALL["uuid"], "status": "human"})

    assert response.status_code == 200
    assert Call.objects.get().events.get().status == "human"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"status": "ringing"}', "names no call"),
        (
            b'{"uuid": "abc", "status": "completed", "duration": "long"}',
            "duration",
        ),
        (b'{"uuid": "abc", "timestamp": "yesterday"}', "timestamp"),
    ],
)
def test_malformed_event_gets_400_with_a_reason_and_stores_nothing(
    client, body, reason
):
    response = client.post(
        reverse("recordings:event_webhook"), data=body, content_type="application/json"
    )

    assert response.status_code == 400
    assert reason in response.content.decode()
    assert not Call.objects.exists()
    assert not CallEvent.objects.exists()


def test_webhooks_refuse_other_methods(client):
    assert client.put(reverse("recordings:event_webhook")).status_code == 405
    assert client.delete(reverse("recordings:answer_webhook")).status_code == 405


def test_spent_tokens_are_forgotten_once_they_expire_but_not_on_every_request(
    monkeypatch,
):
    """The table of spent tokens does not grow for ever, and a burst of
    webhooks does not pay a delete each: expired rows go once a minute."""
    from recordings_app.models import UsedToken
    from recordings_app.services import access

    monkeypatch.setattr(access, "_tokens_pruned_at", float("-inf"))
    assert access.token_use(key="jwt:old", valid_for=-1)  # already expired
    assert access.token_use(key="jwt:fresh", valid_for=300)
    assert set(UsedToken.objects.values_list("key", flat=True)) == {
        "jwt:old",
        "jwt:fresh",
    }  # within the minute: not pruned yet

    monkeypatch.setattr(access, "_tokens_pruned_at", access._tokens_pruned_at - 61)
    assert access.token_use(key="jwt:next", valid_for=300)

    assert set(UsedToken.objects.values_list("key", flat=True)) == {
        "jwt:fresh",
        "jwt:next",
    }
    assert not access.token_use(key="jwt:fresh", valid_for=300)  # still a replay
