"""Only Vonage and signed-in users get in: every rejection, proven."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
from urllib.parse import urlencode

import pytest
from channels.db import database_sync_to_async
from django.core import signing
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from recordings_app.consumers.audio import RecordingConsumer
from recordings_app.models import AccessLogEntry, Call, CallEvent, Recording
from recordings_app.services import audit
from recordings_app.signatures import socket_token
from recordings_app.simulator.caller import vonage_jwt

from .helpers import (
    ids,
    make_call,
    open_socket,
    pcm,
    record,
    recordings_of,
    send_frames,
    socket_path,
    wav_of,
)

SECRET = "vonage-signature-secret-0123456789abcdef"  # 32+ bytes, as Vonage's
EVENT = {
    "from": "447700900123",
    "to": "447700900000",
    "uuid": "aaaaaaaa-1111-2222-3333-444444444444",
    "conversation_uuid": "CON-bbbbbbbb-1111-2222-3333-444444444444",
    "status": "ringing",
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def signed(settings):
    settings.VONAGE_SIGNATURE_SECRET = SECRET


def post_event(client, payload=EVENT, *, token=None, body=None):
    body = body if body is not None else json.dumps(payload).encode()
    token = token if token is not None else vonage_jwt(SECRET, sha256(body))
    return client.post(
        reverse("recordings:event_webhook"),
        data=body,
        content_type="application/json",
        headers=bearer(token) if token else {},
    )


# --- signed webhooks -------------------------------------------------------


@pytest.mark.django_db
class TestSignedWebhooks:
    pytestmark = pytest.mark.usefixtures("signed")

    def test_an_event_signed_like_vonage_is_stored(self, client):
        assert post_event(client).status_code == 200
        assert CallEvent.objects.count() == 1

    def test_an_answer_by_get_signed_over_its_query_is_answered(self, client):
        params = {k: EVENT[k] for k in ("to", "from", "uuid", "conversation_uuid")}
        query_hash = sha256(json.dumps(params, separators=(",", ":")).encode())

        response = client.get(
            reverse("recordings:answer_webhook"),
            params,
            headers=bearer(vonage_jwt(SECRET, query_hash)),
        )

        assert response.status_code == 200
        endpoint = response.json()[1]["endpoint"][0]
        assert endpoint["authorization"] == {"type": "vonage"}

    @pytest.mark.parametrize(
        ("token", "reason"),
        [
            ("", "not signed"),
            ("not-a-jwt", "malformed"),
            (vonage_jwt("some-other-secret-0123456789abcdef", "x"), "signature"),
            (vonage_jwt(SECRET, "x", iat=int(time.time()) - 301), "expired"),
            (vonage_jwt(SECRET, "x", iat=int(time.time()) + 3600), "future"),
            (vonage_jwt(SECRET, "x", jti=""), "jti"),
        ],
    )
    def test_a_bad_or_missing_token_gets_401_and_stores_nothing(
        self, client, token, reason
    ):
        response = post_event(client, token=token)

        assert response.status_code == 401
        assert reason in response.content.decode()
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert not Call.objects.exists()

    def test_a_token_from_a_clock_a_little_ahead_is_accepted(self, client):
        body = json.dumps(EVENT).encode()
        ahead = vonage_jwt(SECRET, sha256(body), iat=int(time.time()) + 10)

        assert post_event(client, body=body, token=ahead).status_code == 200

    def test_a_replayed_token_gets_401_and_changes_nothing(self, client):
        body = json.dumps(EVENT).encode()
        token = vonage_jwt(SECRET, sha256(body))
        assert post_event(client, body=body, token=token).status_code == 200

        replay = post_event(client, body=body, token=token)

        assert replay.status_code == 401
        assert "replay" in replay.content.decode()
        assert CallEvent.objects.count() == 1

    def test_a_body_altered_after_signing_gets_401(self, client):
        signed_body = json.dumps(EVENT).encode()
        token = vonage_jwt(SECRET, sha256(signed_body))
        altered = json.dumps({**EVENT, "status": "completed"}).encode()

        response = post_event(client, body=altered, token=token)

        assert response.status_code == 401
        assert "altered" in response.content.decode()
        assert not Call.objects.exists()

    def test_a_refused_request_leaves_its_token_unused(self, client):
        """A 400 rolls back the token's use: Vonage's retry is not a 'replay'."""
        bad = json.dumps({"status": "ringing"}).encode()
        token = vonage_jwt(SECRET, sha256(bad))

        assert post_event(client, body=bad, token=token).status_code == 400
        assert post_event(client, body=bad, token=token).status_code == 400


# --- the audio socket ------------------------------------------------------

socket_tests = pytest.mark.django_db(transaction=True)


async def closed_with(communicator) -> int:
    output = await communicator.receive_output(timeout=3)
    assert output["type"] == "websocket.close"
    await communicator.disconnect()
    return output["code"]


def query(**values) -> str:
    call = ids()
    token = socket_token(
        call_uuid=call["uuid"], conversation_uuid=call["conversation_uuid"]
    )
    return urlencode({**call, "token": token, **values})


@database_sync_to_async
def nothing_stored() -> bool:
    return not Recording.objects.exists() and not CallEvent.objects.exists()


@socket_tests
@pytest.mark.parametrize(
    ("make_query", "code"),
    [
        (lambda: urlencode(ids()), 4401),  # no token
        (
            lambda: query(token="forged:1xWJvs:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            4401,
        ),
        (lambda: query(uuid="aaaaaaaa-0000-0000-0000-999999999999"), 4403),  # another's
        (lambda: query(uuid="../../etc/passwd"), 4400),
    ],
    ids=["no token", "forged token", "another call's token", "bad uuid"],
)
async def test_socket_without_a_valid_token_for_its_call_is_closed_before_storing(
    make_query, code, settings
):
    # Tokens are made when the test runs: one made at collection may expire.
    communicator = await open_socket(query=make_query())
    await send_frames(communicator, pcm(0.2, 16000), 640)

    assert await closed_with(communicator) == code
    assert await nothing_stored()
    assert not list(settings.SPOOL_DIR.glob("*"))


@socket_tests
async def test_an_expired_socket_token_is_closed_4401(monkeypatch):
    socket_query = query()
    later = time.time() + 10_000
    monkeypatch.setattr(signing.time, "time", lambda: later)

    communicator = await open_socket(query=socket_query)

    assert await closed_with(communicator) == 4401
    assert await nothing_stored()


@socket_tests
async def test_a_reused_socket_token_is_closed_4409_and_the_first_call_is_kept():
    socket_query = query()
    first = await open_socket(query=socket_query)
    await send_frames(first, pcm(0.2, 16000), 640)
    await first.disconnect()

    second = await open_socket(query=socket_query)
    await send_frames(second, pcm(0.2, 16000, seed=9), 640)

    assert await closed_with(second) == 4409
    [recording] = await recordings_of()
    assert wav_of(recording)[1] == pcm(0.2, 16000)


@socket_tests
async def test_with_signatures_on_the_socket_needs_vonages_jwt(settings):
    settings.VONAGE_SIGNATURE_SECRET = SECRET

    unsigned = await open_socket()
    assert await closed_with(unsigned) == 4401

    token = vonage_jwt(SECRET, sha256(b"")).encode()
    signed = await open_socket(2, headers=[(b"authorization", b"Bearer " + token)])
    await send_frames(signed, pcm(0.2, 16000), 640)
    await signed.disconnect()
    [recording] = await recordings_of(2)
    assert wav_of(recording)[1] == pcm(0.2, 16000)


@socket_tests
async def test_an_oversized_frame_closes_1009_and_keeps_the_audio_before_it(settings):
    settings.CALLRECORDER_MAX_FRAME_BYTES = 1000
    communicator = await open_socket()
    await send_frames(communicator, pcm(0.2, 16000), 640)
    await communicator.send_to(bytes_data=b"\x00" * 1001)

    assert await closed_with(communicator) == 1009
    [recording] = await recordings_of()
    assert wav_of(recording)[1] == pcm(0.2, 16000)


@socket_tests
async def test_a_call_past_the_length_limit_closes_4408_and_keeps_what_was_said(
    settings,
):
    settings.CALLRECORDER_MAX_CALL_SECONDS = 1
    audio = pcm(2.0, 16000)
    communicator = await open_socket()
    await send_frames(communicator, audio, 640)

    assert await closed_with(communicator) == 4408
    [recording] = await recordings_of()
    assert wav_of(recording)[1] == audio[: 16000 * 2]


@socket_tests
async def test_past_the_socket_limit_a_new_call_is_refused_4429(settings):
    settings.CALLRECORDER_MAX_SOCKETS = 1
    first = await open_socket(1)
    second = await open_socket(2)

    assert await closed_with(second) == 4429
    await send_frames(first, pcm(0.2, 16000), 640)
    await first.disconnect()
    assert RecordingConsumer.active_sockets == 0
    [recording] = await recordings_of(1)
    assert wav_of(recording)[1] == pcm(0.2, 16000)


# --- pages and media -------------------------------------------------------


@pytest.fixture
def recording(settings, db) -> Recording:
    return record(make_call(1), b"\x01\x02" * 8000, settings.SPOOL_DIR)


def urls_of(recording: Recording) -> list[str]:
    return [
        reverse("recordings:call_list"),
        recording.call.get_absolute_url(),
        reverse("recordings:call_by_uuid", args=[recording.call.uuid]),
        recording.get_absolute_url(),
        recording.get_download_url(),
    ]


def test_a_stranger_is_sent_to_sign_in_and_gets_no_audio(client, recording):
    for url in urls_of(recording):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
    assert not AccessLogEntry.objects.exists()


def test_recordings_are_not_served_from_a_public_media_url(user_client, recording):
    assert user_client.get(f"/media/{recording.file.name}").status_code == 404


def test_a_listener_may_play_but_not_delete(user_client, recording):
    response = user_client.post(
        reverse("recordings:recording_delete", args=[recording.pk])
    )

    assert response.status_code == 403
    assert Recording.objects.filter(pk=recording.pk).exists()
    page = user_client.get(recording.call.get_absolute_url()).content.decode()
    assert "Delete recording" not in page


def test_staff_delete_from_the_call_page_removes_the_file_and_is_logged(
    admin_client, admin_user, recording, django_capture_on_commit_callbacks
):
    name = recording.file.name
    page = admin_client.get(recording.call.get_absolute_url()).content.decode()
    assert "Delete recording" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("recordings:recording_delete", args=[recording.pk]),
            REMOTE_ADDR="203.0.113.9",
        )

    assert response.status_code == 302
    assert not Recording.objects.exists()
    assert not default_storage.exists(name)
    entry = AccessLogEntry.objects.get(action="delete")
    assert (entry.action, entry.username, entry.ip_address) == (
        "delete",
        admin_user.username,
        "203.0.113.9",
    )
    assert entry.recording_file == name


def test_x_accel_redirect_hands_the_file_to_nginx(user_client, recording, settings):
    settings.RECORDINGS_DELIVERY = "x-accel-redirect"

    response = user_client.get(recording.get_absolute_url())

    assert (
        response["X-Accel-Redirect"] == f"/protected-recordings/{recording.file.name}"
    )
    assert response.content == b""
    assert AccessLogEntry.objects.filter(action="play").count() == 1


def test_storage_url_delivery_redirects_to_the_storage(
    user_client, recording, settings
):
    settings.RECORDINGS_DELIVERY = "storage-url"

    response = user_client.get(recording.get_download_url())

    assert response.status_code == 302
    assert response["Location"] == recording.file.url


# --- the access log --------------------------------------------------------


def body_of(response) -> bytes:
    from .helpers import body

    return body(response)


def test_one_play_with_many_range_requests_is_one_entry(user_client, user, recording):
    url = recording.get_absolute_url()
    for start in (0, 100, 5000, 44, 9000):
        body_of(user_client.get(url, headers={"Range": f"bytes={start}-"}))
    body_of(user_client.get(recording.get_download_url()))

    entries = AccessLogEntry.objects.order_by("id")
    assert [e.action for e in entries] == ["play", "download"]
    play = entries[0]
    assert (play.username, play.call_id, play.recording_id) == (
        user.username,
        recording.call_id,
        recording.pk,
    )
    assert play.ip_address == "127.0.0.1"


def test_a_play_after_the_window_is_a_new_entry(user_client, recording, settings):
    settings.ACCESS_LOG_PLAY_WINDOW_SECONDS = 0
    body_of(user_client.get(recording.get_absolute_url()))
    body_of(user_client.get(recording.get_absolute_url()))

    assert AccessLogEntry.objects.filter(action="play").count() == 2


def anchored() -> None:
    """The checkpoint of the head its commit would have written (a test's
    transaction never commits)."""
    head = AccessLogEntry.objects.order_by("-id").first()
    audit.checkpoint_write(head.pk, head.entry_hash)


@pytest.fixture
def log_of_three(user_client, recording, settings) -> list[AccessLogEntry]:
    settings.ACCESS_LOG_PLAY_WINDOW_SECONDS = 0
    for _ in range(3):
        body_of(user_client.get(recording.get_absolute_url()))
    anchored()
    return list(AccessLogEntry.objects.order_by("id"))


def verify() -> str:
    out = io.StringIO()
    call_command("verify_access_log", stdout=out)
    return out.getvalue()


def test_the_chain_of_an_untouched_log_verifies(log_of_three):
    assert "Access log intact: 3 entries" in verify()
    assert log_of_three[1].prev_hash == log_of_three[0].entry_hash


def test_an_altered_entry_breaks_the_chain(log_of_three):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE recordings_app_accesslogentry SET username = 'x' WHERE id = %s",
            [log_of_three[1].pk],
        )

    with pytest.raises(CommandError, match=f"entry {log_of_three[1].pk} was altered"):
        verify()


def test_a_removed_entry_breaks_the_chain(log_of_three):
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM recordings_app_accesslogentry WHERE id = %s",
            [log_of_three[1].pk],
        )

    with pytest.raises(
        CommandError, match=f"entry {log_of_three[2].pk}: the entry before"
    ):
        verify()


def test_the_app_cannot_edit_or_delete_the_log(log_of_three, admin_client):
    entry = log_of_three[0]
    entry.username = "someone"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        AccessLogEntry.objects.all().delete()
    with pytest.raises(PermissionError):
        AccessLogEntry.objects.update(username="someone")

    change = reverse("admin:recordings_app_accesslogentry_change", args=[entry.pk])
    admin_client.post(change, {"username": "someone"})
    delete = reverse("admin:recordings_app_accesslogentry_delete", args=[entry.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert AccessLogEntry.objects.get(pk=entry.pk).username != "someone"
    assert "Access log intact: 3 entries" in verify()


def test_staff_filter_the_log_in_the_admin(log_of_three, admin_client, user):
    url = reverse("admin:recordings_app_accesslogentry_changelist")

    page = admin_client.get(
        url, {"action": "play", "q": user.username}
    ).content.decode()

    assert page.count(f'<td class="field-username">{user.username}</td>') == 3


def test_admin_bulk_delete_logs_each_recording(admin_client, settings):
    recordings = [
        record(make_call(n), b"\x01\x02" * 320, settings.SPOOL_DIR) for n in range(3)
    ]

    admin_client.post(
        reverse("admin:recordings_app_recording_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [r.pk for r in recordings],
            "post": "yes",
        },
    )

    assert not Recording.objects.exists()
    logged = AccessLogEntry.objects.filter(action="delete")
    assert sorted(logged.values_list("recording_id", flat=True)) == sorted(
        r.pk for r in recordings
    )


# --- found in review ---------------------------------------------------------


@pytest.mark.parametrize(
    "forwarded", ["203.0.113.7:51234", "unknown", "<script>", "1.2.3.4, not-an-ip"]
)
def test_a_forwarded_for_that_is_not_an_ip_falls_back_to_the_peer(
    user_client, recording, forwarded
):
    response = user_client.get(
        recording.get_absolute_url(), headers={"X-Forwarded-For": forwarded}
    )

    assert response.status_code == 200
    assert AccessLogEntry.objects.get().ip_address == "127.0.0.1"


def test_an_ipv6_address_in_any_spelling_keeps_the_chain_verifiable(
    user_client, recording, settings
):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    body_of(
        user_client.get(
            recording.get_absolute_url(), headers={"X-Forwarded-For": "2001:DB8:0:0::1"}
        )
    )

    assert AccessLogEntry.objects.get().ip_address == "2001:db8::1"
    anchored()
    assert "Access log intact: 1 entries" in verify()


def test_the_call_page_in_the_admin_offers_no_unlogged_inline_delete(
    admin_client, recording
):
    page = admin_client.get(
        reverse("admin:recordings_app_call_change", args=[recording.call_id])
    ).content.decode()

    assert "recordings-0-DELETE" not in page


@socket_tests
async def test_a_webhooks_jwt_cannot_open_the_socket_again(settings):
    settings.VONAGE_SIGNATURE_SECRET = SECRET
    token = vonage_jwt(SECRET, sha256(b""))
    headers = [(b"authorization", f"Bearer {token}".encode())]
    first = await open_socket(1, headers=headers)
    await first.disconnect()

    second = await open_socket(2, headers=headers)

    assert await closed_with(second) == 4409


@socket_tests
async def test_a_refused_replay_leaves_the_sockets_own_token_unspent(settings):
    """Both tokens are spent together or not at all: the socket URI of a
    socket refused for a replayed JWT still opens for Vonage's retry with a
    fresh JWT."""
    settings.VONAGE_SIGNATURE_SECRET = SECRET

    def bearer(token: str) -> list[tuple[bytes, bytes]]:
        return [(b"authorization", f"Bearer {token}".encode())]

    used = vonage_jwt(SECRET, sha256(b""))
    first = await open_socket(1, headers=bearer(used))
    await first.disconnect()
    query = socket_path(2).partition("?")[2]
    replayed = await open_socket(2, query=query, headers=bearer(used))
    assert await closed_with(replayed) == 4409

    fresh = vonage_jwt(SECRET, sha256(b""))
    retry = await open_socket(2, query=query, headers=bearer(fresh))
    await send_frames(retry, pcm(0.2, 16000), 640)
    await retry.disconnect()

    assert len(await recordings_of(2)) == 1


@socket_tests
async def test_a_database_error_on_a_key_press_costs_the_event_not_the_call(
    monkeypatch,
):
    from recordings_app.services import calls

    def database_down(**kwargs):
        raise RuntimeError("database is locked")

    audio = pcm(0.4, 16000)
    communicator = await open_socket()
    await send_frames(communicator, audio[:6400], 640)
    connected = CallEvent.objects.filter(status="websocket:connected")
    while not await connected.aexists():  # the socket is recording
        await asyncio.sleep(0.01)
    monkeypatch.setattr(calls, "socket_event_record", database_down)
    await communicator.send_to(text_data='{"event":"websocket:dtmf","digit":"1"}')
    await send_frames(communicator, audio[6400:], 640)
    await communicator.disconnect()

    [recording] = await recordings_of()
    assert wav_of(recording)[1] == audio
    assert RecordingConsumer.active_sockets == 0


@socket_tests
async def test_a_channel_layer_outage_does_not_stop_the_recording(monkeypatch):
    from channels.layers import InMemoryChannelLayer

    async def redis_down(self, group, message):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(InMemoryChannelLayer, "group_send", redis_down)
    audio = pcm(0.4, 16000)
    communicator = await open_socket()
    await send_frames(communicator, audio, 640)
    await communicator.disconnect()

    [recording] = await recordings_of()
    assert wav_of(recording)[1] == audio


def test_a_head_or_refused_range_is_not_logged_as_a_play(user_client, recording):
    user_client.head(recording.get_absolute_url())
    refused = user_client.get(
        recording.get_absolute_url(), headers={"Range": "bytes=999999-"}
    )

    assert refused.status_code == 416
    assert not AccessLogEntry.objects.exists()
