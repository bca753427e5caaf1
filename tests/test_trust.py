"""Trust I: only the right people hear a call, and a pause keeps card numbers out.

Each test here fails with its protection removed (issue 14's note says how
each was checked).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.debug import technical_500_response

from recordings_app.addresses import client_ip
from recordings_app.consumers.audio import RecordingConsumer
from recordings_app.models import AccessLogEntry, Call, CallEvent
from recordings_app.signatures import socket_token
from recordings_app.vonage import (
    DIGITS_HIDDEN_MASKED,
    event_payload_to_keep,
    parse_event,
)

from .helpers import (
    application,
    browser_headers,
    caller,
    ids,
    make_call,
    open_socket,
    pause,
    pcm,
    record,
    recordings_of,
    send_frames,
    signed_in,
    socket_path,
    vonage_socket,
    wait_until_live,
)


def socket_test(test):
    """A test on real sockets: the database committed, as the consumers see it."""
    test = pytest.mark.usefixtures("close_async_orm_connections")(test)
    return pytest.mark.django_db(transaction=True)(test)


CARD = "4111111111111111"


async def press(communicator, keys: str) -> None:
    for key in keys:
        dtmf = {"event": "websocket:dtmf", "digit": key, "duration": 250}
        await communicator.send_to(text_data=json.dumps(dtmf))


@database_sync_to_async
def socket_key_presses(call_id: int) -> list[dict]:
    return [
        event.payload
        for event in CallEvent.objects.filter(call_id=call_id, status="websocket:dtmf")
    ]


async def stored_events(call_id: int, count: int) -> None:
    """Wait until the socket's messages so far are stored (they queue)."""
    for _ in range(300):
        if (
            await CallEvent.objects.filter(call_id=call_id, source="socket").acount()
            >= count
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} socket events stored")


@database_sync_to_async
def pages_of(call_id: int) -> str:
    """Everything a signed-in superuser can see of the call: page and admin."""
    admin = User.objects.create_superuser("boss", password="pw-boss-123456")
    client = Client()
    client.force_login(admin)
    call_page = client.get(reverse("recordings:call_detail", args=[call_id]))
    admin_page = client.get(reverse("admin:recordings_app_call_change", args=[call_id]))
    events = client.get(reverse("admin:recordings_app_callevent_changelist"))
    return "".join(page.content.decode() for page in (call_page, admin_page, events))


# --- 1. keys pressed while paused --------------------------------------------


@socket_test
async def test_a_card_number_typed_while_paused_leaves_no_digit_anywhere(
    settings, caplog
):
    await caller()
    recorder = await open_socket()
    live_socket = await wait_until_live()
    await send_frames(recorder, pcm(0.2, 16000), 640)
    assert await pause(live_socket, True) is True
    await press(recorder, CARD)
    await recorder.send_to(text_data='{"event": "websocket:dtmf", "digit": "9"')
    await stored_events(live_socket.call_id, 1 + 16 + 1)  # connected, keys, garbled
    assert await pause(live_socket, False) is False
    await press(recorder, "7")
    await recorder.disconnect()

    [recording] = await recordings_of()
    presses = await socket_key_presses(recording.call_id)
    assert len(presses) == 17
    hidden, after = presses[:16], presses[16]
    assert all("digit" not in press for press in hidden)
    assert {press["digit_hidden"] for press in hidden} == {"recording paused"}
    assert all(press["duration"] == 250 for press in hidden)
    assert after["digit"] == "7"
    garbled = await CallEvent.objects.aget(status="websocket:invalid")
    assert garbled.payload == {"text_hidden": "recording paused"}
    shown = await pages_of(recording.call_id)
    assert "Key pressed (hidden: recording paused)" in shown
    assert "Key pressed: 7" in shown
    for leak in (CARD, '"digit": "4"', '"digit": "1"', '"digit": "9"'):
        assert leak not in shown
    assert CARD not in caplog.text


@socket_test
async def test_with_digits_masked_no_key_is_ever_stored(settings):
    settings.CALLRECORDER_DTMF_DIGITS = "mask"
    recorder = await open_socket()
    await press(recorder, "5")
    await send_frames(recorder, pcm(0.2, 16000), 640)
    await recorder.disconnect()

    [recording] = await recordings_of()
    [pressed] = await socket_key_presses(recording.call_id)
    assert pressed == {
        "event": "websocket:dtmf",
        "digit_hidden": DIGITS_HIDDEN_MASKED,
        "duration": 250,
    }


def input_event(digits: str, at: str = "2026-12-03T08:00:00.000Z") -> dict:
    return {
        "conversation_uuid": ids()["conversation_uuid"],
        "uuid": ids()["uuid"],
        "dtmf": {"digits": digits, "timed_out": True},
        "speech": {"results": [{"text": "four one one one"}]},
        "timestamp": at,
    }


def post_event(client, payload):
    return client.post(
        reverse("recordings:event_webhook"),
        data=json.dumps(payload),
        content_type="application/json",
    )


@pytest.mark.django_db
def test_an_input_event_while_paused_keeps_neither_digits_nor_words(client):
    call = make_call(1)
    call.live_sockets.create(
        channel_name="c1", spool_name="s1.wav", sample_rate=16000, paused=True
    )

    assert post_event(client, input_event(CARD)).status_code == 200

    [stored] = CallEvent.objects.filter(call=call, status="input")
    assert stored.payload["dtmf"] == {
        "timed_out": True,
        "digits_hidden": "recording paused",
    }
    assert "four" not in json.dumps(stored.payload)
    assert CARD not in json.dumps(stored.payload)


@pytest.mark.django_db
def test_an_input_event_keeps_its_digits_when_not_paused_unless_masked(
    client, settings
):
    call = make_call(1)
    post_event(client, input_event("42"))
    assert CallEvent.objects.get(call=call).payload["dtmf"]["digits"] == "42"

    settings.CALLRECORDER_DTMF_DIGITS = "mask"
    post_event(client, input_event("43", at="2026-12-03T08:00:05.000Z"))
    masked = CallEvent.objects.filter(call=call).order_by("-id").first()
    assert "digits" not in masked.payload["dtmf"]


def test_no_hash_of_the_digits_is_stored_either():
    """The fingerprint of an input event is the same whatever keys were pressed:
    a SHA-256 of a 16-digit card number is cheap to reverse."""
    first = parse_event(input_event(CARD))
    second = parse_event(input_event("5500000000000004"))

    assert first.fingerprint == second.fingerprint
    assert (
        "digits"
        not in event_payload_to_keep(input_event(CARD), hide_digits="x")["dtmf"]
    )


# --- 2. cross-site WebSocket hijacking ---------------------------------------


async def first_output(path: str, headers) -> dict:
    """What a browser socket sends first: a close code, or data."""
    communicator = WebsocketCommunicator(application, path, headers=headers)
    await communicator.connect()
    message = await communicator.receive_output(timeout=5)
    if message["type"] == "websocket.close":
        return message
    await communicator.disconnect()
    return message


@socket_test
@pytest.mark.parametrize(
    ("origin", "host"),
    [
        (b"https://attacker.loca.lt", b"victim.loca.lt"),  # an allowed host's
        (b"http://localhost:9999", b"localhost:8000"),  # another port
        (b"https://localhost:8000", b"localhost:8000"),  # another scheme
        (b"null", b"localhost:8000"),
        (b"", b"localhost:8000"),
    ],
    ids=["other host", "other port", "other scheme", "null", "none"],
)
async def test_a_page_of_another_origin_gets_4403_and_not_a_byte(origin, host):
    await caller()
    recorder = await open_socket()
    live_socket = await wait_until_live()
    _, cookie = await signed_in(staff=True)
    headers = [h for h in browser_headers(cookie, origin=origin, host=host) if h[1]]

    for path in ("/ws/calls", f"/ws/calls/{live_socket.call_id}/listen"):
        message = await first_output(path, headers)
        assert (message["type"], message.get("code")) == ("websocket.close", 4403)
    await recorder.disconnect()


@socket_test
async def test_the_sites_own_page_gets_the_dashboard():
    _, cookie = await signed_in()
    message = await first_output(
        "/ws/calls",
        browser_headers(cookie, b"http://victim.loca.lt", b"victim.loca.lt"),
    )

    assert json.loads(message["text"])["event"] == "snapshot"


@socket_test
async def test_with_public_url_only_its_origin_is_taken(settings):
    settings.PUBLIC_URL = "https://calls.example.com"
    _, cookie = await signed_in()
    own = browser_headers(cookie, b"https://calls.example.com", b"calls.example.com")
    other = browser_headers(cookie, b"http://localhost:8000", b"localhost:8000")

    assert json.loads((await first_output("/ws/calls", own))["text"])
    assert (await first_output("/ws/calls", other)).get("code") == 4403


@socket_test
async def test_a_forwarded_proto_counts_only_from_a_trusted_proxy(settings):
    """Behind a TLS proxy the page is https while the socket reaches us as ws."""
    _, cookie = await signed_in()
    headers = browser_headers(cookie, b"https://localhost:8000", b"localhost:8000")
    headers.append((b"x-forwarded-proto", b"https"))

    def from_peer(peer):
        communicator = WebsocketCommunicator(application, "/ws/calls", headers)
        communicator.scope["client"] = [peer, 1234]
        return communicator

    stranger = from_peer("203.0.113.9")
    await stranger.connect()
    assert (await stranger.receive_output(timeout=5)).get("code") == 4403
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxied = from_peer("10.1.2.3")
    await proxied.connect()
    assert json.loads((await proxied.receive_output(timeout=5))["text"])
    await proxied.disconnect()


# --- 3. unsigned webhooks only straight from this machine --------------------


CALL = {
    "from": "447700900123",
    "to": "447700900000",
    "uuid": "aaaaaaaa-0000-0000-0000-000000000001",
    "conversation_uuid": "CON-aaaaaaaa-0000-0000-0000-000000000001",
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("peer", "headers"),
    [
        ("203.0.113.5", {}),
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.5"}),
        ("127.0.0.1", {"X-Forwarded-Proto": "https"}),
        ("::1", {"Forwarded": "for=203.0.113.5"}),
    ],
    ids=["another machine", "a tunnel", "a tls tunnel", "a proxy"],
)
def test_without_the_secret_a_webhook_from_elsewhere_is_refused(client, peer, headers):
    answer = client.get(
        reverse("recordings:answer_webhook"), CALL, REMOTE_ADDR=peer, headers=headers
    )
    event = client.post(
        reverse("recordings:event_webhook"),
        data=json.dumps({**CALL, "status": "started"}),
        content_type="application/json",
        REMOTE_ADDR=peer,
        headers=headers,
    )

    for response in (answer, event):
        assert response.status_code == 401
        assert "VONAGE_SIGNATURE_SECRET" in response.content.decode()
    assert not Call.objects.exists()


@pytest.mark.django_db
def test_without_the_secret_this_machine_and_the_unsafe_setting_get_in(
    client, settings
):
    assert client.get(reverse("recordings:answer_webhook"), CALL).status_code == 200
    settings.UNSAFE_ALLOW_UNSIGNED_WEBHOOKS = True
    elsewhere = client.get(
        reverse("recordings:answer_webhook"), CALL, REMOTE_ADDR="203.0.113.5"
    )
    assert elsewhere.status_code == 200


@socket_test
@pytest.mark.parametrize(
    ("peer", "headers"),
    [
        (("203.0.113.5", 4000), []),
        (("127.0.0.1", 4000), [(b"x-forwarded-for", b"203.0.113.5")]),
    ],
    ids=["another machine", "a tunnel"],
)
async def test_without_the_secret_an_audio_socket_from_elsewhere_gets_4401(
    peer, headers, settings
):
    communicator = vonage_socket(socket_path(), headers=headers, client=peer)
    await communicator.connect()
    await communicator.send_to(text_data=json.dumps({"event": "websocket:connected"}))

    output = await communicator.receive_output(timeout=3)
    assert (output["type"], output["code"]) == ("websocket.close", 4401)
    assert not list(settings.SPOOL_DIR.glob("*"))


# --- 4. malformed input is a 4xx, and debug pages keep credentials -----------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        '{"conversation_uuid": "CON-1", "uuid": "a1", "status": "ringing", "x": NaN}',
        '{"conversation_uuid": "CON-1", "uuid": "a1", "x": [-Infinity]}',
        json.dumps({**CALL, "status": "ringing", "timestamp": "0001-01-01T00:00:00Z"}),
        json.dumps({**CALL, "start_time": "0001-01-01T00:30:00+01:00"}),
        json.dumps({**CALL, "end_time": "9999-12-31T23:59:59Z"}),
    ],
    ids=["NaN", "Infinity", "year 1", "year 1 east of UTC", "year 9999"],
)
def test_an_event_that_cannot_be_stored_is_a_400_with_a_reason(client, body):
    response = client.post(
        reverse("recordings:event_webhook"), data=body, content_type="application/json"
    )

    assert response.status_code == 400
    assert "Bad event webhook" in response.content.decode()
    assert not CallEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"until": "9999-12-31"}, "less than or equal to"),
        ({"since": "0001-01-01"}, "greater than or equal to"),
    ],
)
def test_a_date_filter_out_of_range_is_a_400_with_a_reason(user_client, params, reason):
    response = user_client.get(reverse("recordings:call_list"), params)

    assert response.status_code == 400
    assert reason in response.content.decode()


def test_the_debug_error_page_shows_no_credential(settings):
    # Built here, so that the page's own view of this code shows no password.
    settings.DEBUG = True
    settings.REDIS_URL = "redis://:" + "hunter" + "2-redis@redis.internal:6379/0"
    settings.DATABASE_URL = "postgres://app:" + "hunter" + "2-db@db.internal/calls"
    settings.CHANNEL_LAYERS = {
        "default": {"CONFIG": {"hosts": [{"address": settings.REDIS_URL}]}}
    }
    request = RequestFactory().get("/", HTTP_X_TOKEN="hunter" + "2-header")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        page = technical_500_response(request, *sys.exc_info()).content.decode()

    assert "boom" in page
    assert "hunter" + "2" not in page


# --- 5. idle sockets and tokens bound to their conversation ------------------


@socket_test
async def test_a_socket_that_never_says_connected_is_closed_and_frees_its_slot(
    settings,
):
    settings.CALLRECORDER_CONNECTED_TIMEOUT_SECONDS = 1.0
    settings.CALLRECORDER_MAX_SOCKETS = 1
    idle = await open_socket(rate=0)
    for _ in range(50):  # its token is checked: then it holds the one slot
        if RecordingConsumer.active_sockets:
            break
        await asyncio.sleep(0.01)
    assert RecordingConsumer.active_sockets == 1

    output = await idle.receive_output(timeout=3)
    assert (output["type"], output["code"]) == ("websocket.close", 4410)
    assert RecordingConsumer.active_sockets == 0
    real = await open_socket(2)  # the slot is free for a real call
    await send_frames(real, pcm(0.5, 16000), 640)
    await asyncio.sleep(1.2)  # past the timeout: a connected call is kept
    await real.disconnect()
    await idle.disconnect()
    assert await recordings_of(1) == []
    [recording] = await recordings_of(2)
    assert recording.sample_count == 8000


@socket_test
async def test_a_token_for_one_conversation_cannot_record_in_another(settings):
    mine, theirs = ids(1), ids(2)
    token = socket_token(
        call_uuid=mine["uuid"], conversation_uuid=mine["conversation_uuid"]
    )
    query = f"uuid={mine['uuid']}&conversation_uuid={theirs['conversation_uuid']}"
    communicator = await open_socket(query=f"{query}&token={token}", rate=0)

    output = await communicator.receive_output(timeout=3)
    assert (output["type"], output["code"]) == ("websocket.close", 4403)
    assert not list(settings.SPOOL_DIR.glob("*"))


# --- 8. addresses in the access log ------------------------------------------


@pytest.mark.django_db
def test_a_forwarded_for_counts_only_from_a_trusted_proxy(user_client, settings):
    recording = record(make_call(1), pcm(0.1, 16000), settings.SPOOL_DIR)
    headers = {"X-Forwarded-For": "198.51.100.7"}

    user_client.get(recording.get_absolute_url(), headers=headers)
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    settings.ACCESS_LOG_PLAY_WINDOW_SECONDS = 0
    user_client.get(recording.get_absolute_url(), headers=headers)

    logged = list(AccessLogEntry.objects.order_by("id").values_list("ip_address"))
    assert logged == [("127.0.0.1",), ("198.51.100.7",)]


@pytest.mark.django_db
def test_a_stranger_claiming_https_does_not_change_the_answer(client, settings):
    """Without TRUSTED_PROXIES, X-Forwarded-Proto and -Host are dropped, so a
    client cannot point the NCCO's socket at another host."""
    settings.UNSAFE_ALLOW_UNSIGNED_WEBHOOKS = True
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}

    ncco = client.get(reverse("recordings:answer_webhook"), CALL, headers=headers)

    assert ncco.json()[1]["endpoint"][0]["uri"].startswith("ws://testserver/")


@pytest.mark.parametrize(
    ("trusted", "logged"),
    [([], "203.0.113.1"), (["203.0.113.0/24"], "198.51.100.7")],
)
def test_client_ip_reads_a_forwarded_for_only_from_a_trusted_proxy(
    settings, trusted, logged
):
    """Even where the middleware did not run first."""
    settings.TRUSTED_PROXIES = trusted
    request = RequestFactory().get(
        "/", REMOTE_ADDR="203.0.113.1", HTTP_X_FORWARDED_FOR="198.51.100.7"
    )

    assert client_ip(request) == logged


# --- also: a Content-Security-Policy without inline script -------------------


@pytest.mark.django_db
def test_every_page_forbids_inline_script_and_has_none(admin_client, settings):
    recording = record(make_call(1), pcm(0.1, 16000), settings.SPOOL_DIR)
    pages = [
        reverse("recordings:call_list"),
        recording.call.get_absolute_url(),
        reverse("admin:recordings_app_recording_changelist"),
        reverse("login"),
    ]
    for url in pages:
        response = admin_client.get(url)
        policy = dict(
            directive.strip().split(" ", 1)
            for directive in response["Content-Security-Policy"].split(";")
        )
        assert policy["script-src"] == "'self'", url
        assert policy["frame-ancestors"] == "'none'", url
        page = response.content.decode()
        scripts = re.findall(r"<script\b([^>]*)>", page)
        inline = [s for s in scripts if "src=" not in s and "application/json" not in s]
        assert inline == [], url
