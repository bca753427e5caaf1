"""Calls in progress: the dashboard socket, levels, pause and resume, listen-in."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import timedelta

import pytest
from asgiref.sync import ThreadSensitiveContext
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError
from django.db.models.functions import Now
from django.urls import reverse
from django.utils import timezone

from recordings_app import selectors
from recordings_app.live import events as live_events
from recordings_app.live.pause import CallEnded
from recordings_app.models import AccessLogEntry, Call, CallEvent, LiveSocket
from recordings_app.services import recordings, retention

from .helpers import (
    application,
    browser_headers,
    caller,
    close_code,
    crashed_writer,
    ids,
    next_event,
    open_dashboard,
    open_socket,
    pause,
    pcm,
    recordings_of,
    send_frames,
    signed_in,
    wait_until_live,
    wav_of,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_async_orm_connections"),
]

FRAME = 640  # 20 ms at 16 kHz
SECOND = 32000  # bytes of one second at 16 kHz


async def test_dashboard_refuses_a_visitor_who_is_not_signed_in():
    assert await close_code("/ws/calls", None) == 4401


async def test_dashboard_refuses_a_page_from_another_site():
    _, cookie = await signed_in()
    dashboard = WebsocketCommunicator(
        application,
        "/ws/calls",
        headers=browser_headers(cookie, origin=b"https://evil.example"),
    )
    await dashboard.connect()  # accepted, so that it can say why it closes
    message = await dashboard.receive_output(timeout=5)
    assert (message["type"], message["code"]) == ("websocket.close", 4403)


async def test_dashboard_sees_a_call_start_with_its_caller_its_level_and_its_end():
    await caller(number="447700900777")
    _, cookie = await signed_in()
    dashboard = await open_dashboard(cookie)
    recorder = await open_socket()

    started = await next_event(dashboard, "started")
    call = await Call.objects.aget(uuid=ids()["uuid"])
    assert started["call"]["from"] == "447700900777"
    assert started["call"]["url"] == call.get_absolute_url()

    loud = b"\x00\x60" * 320  # about -2.7 dBFS
    for _ in range(25):
        await recorder.send_to(bytes_data=loud)
        await asyncio.sleep(0.02)
    # Within a second, though the page opened before this process had a call.
    levels = await next_event(dashboard, "levels", timeout=1.0)
    assert levels["levels"][str(call.pk)] > 0.9

    await recorder.disconnect()
    ended = await next_event(dashboard, "ended")
    assert ended["call_id"] == call.pk
    assert not await LiveSocket.objects.filter(call=call).aexists()
    await dashboard.disconnect()


async def test_levels_go_out_only_while_someone_watches_and_a_few_times_a_second():
    layer = get_channel_layer()
    spy = await layer.new_channel()
    await layer.group_add(live_events.CALLS_GROUP, spy)
    recorder = await open_socket()
    await wait_until_live()

    async def levels_during(seconds: float) -> int:
        count = 0
        end = asyncio.get_running_loop().time() + seconds
        while (left := end - asyncio.get_running_loop().time()) > 0:
            await recorder.send_to(bytes_data=b"\x00\x10" * 320)
            try:
                while True:  # take what arrived; never wait past this frame
                    message = await asyncio.wait_for(layer.receive(spy), 0.001)
                    count += message["type"] == "calls.levels"
            except TimeoutError:
                pass
            await asyncio.sleep(min(0.02, max(left, 0)))
        return count

    assert await levels_during(1.0) == 0  # nobody watching: nothing sent
    await live_events.watch_renew(layer)
    watched = await levels_during(1.0)
    assert 2 <= watched <= 5  # about every 250 ms, not every 20 ms frame
    await recorder.disconnect()
    await layer.group_discard(live_events.CALLS_GROUP, spy)


async def test_pause_keeps_silence_of_the_same_length_and_the_timeline_says_who():
    audio = pcm(1.5, 16000)
    recorder = await open_socket()
    live_socket = await wait_until_live()
    await send_frames(recorder, audio[: SECOND // 2], FRAME)
    await asyncio.sleep(0.1)  # the frames reach the spool
    assert await pause(live_socket, True) is True
    await send_frames(recorder, audio[SECOND // 2 : SECOND], FRAME)
    await asyncio.sleep(0.1)
    assert await pause(live_socket, False) is False
    await send_frames(recorder, audio[SECOND:], FRAME)
    await recorder.disconnect()

    [recording] = await recordings_of()
    _, kept = wav_of(recording)
    assert len(kept) == len(audio)  # the timeline stays true
    events = [
        event async for event in CallEvent.objects.filter(source="staff").order_by("id")
    ]
    assert [(e.status, e.payload["by"]) for e in events] == [
        ("recording:paused", "alice"),
        ("recording:resumed", "alice"),
    ]
    paused_at = round(events[0].payload["at_seconds"] * SECOND)
    resumed_at = round(events[1].payload["at_seconds"] * SECOND)
    assert paused_at < resumed_at
    assert kept[:paused_at] == audio[:paused_at]
    assert kept[paused_at:resumed_at] == bytes(resumed_at - paused_at)
    assert kept[resumed_at:] == audio[resumed_at:]
    assert recording.paused_seconds == pytest.approx((resumed_at - paused_at) / SECOND)
    assert not recording.ended_paused


async def test_a_call_that_ends_paused_says_so():
    recorder = await open_socket()
    live_socket = await wait_until_live()
    await send_frames(recorder, pcm(0.2, 16000), FRAME)
    await asyncio.sleep(0.1)
    await pause(live_socket, True, by="bob")
    await send_frames(recorder, pcm(0.2, 16000, seed=2), FRAME)
    await recorder.disconnect()

    [recording] = await recordings_of()
    assert recording.ended_paused
    assert recording.paused_seconds == pytest.approx(0.2)
    assert await CallEvent.objects.filter(status="recording:ended-paused").aexists()


async def test_pausing_twice_puts_one_pause_on_the_timeline():
    recorder = await open_socket()
    live_socket = await wait_until_live()
    await pause(live_socket, True)
    await pause(live_socket, True)
    await recorder.disconnect()
    assert await CallEvent.objects.filter(status="recording:paused").acount() == 1


async def post_as_daphne_would(async_client, url: str, data: dict):
    """Django's ASGI handler gives each request its own thread for sync code
    (here the sync middleware); the test client does not, and the request
    would hold the one thread the recorder needs to write the pause event."""
    async with ThreadSensitiveContext():
        return await async_client.post(url, data)


async def test_staff_pause_from_the_page_waits_for_the_recorder(async_client):
    await caller()
    staff, _ = await signed_in(staff=True, name="carol")
    await async_client.aforce_login(staff)
    recorder = await open_socket()
    live_socket = await wait_until_live()
    url = reverse("recordings:call_pause", args=[live_socket.call_id])

    response = await post_as_daphne_would(async_client, url, {"action": "pause"})
    assert response.status_code == 302
    page = await async_client.get(response["Location"])
    content = page.content.decode()
    assert "Recording paused" in content
    assert "recording paused by carol" in content
    assert "Resume recording" in content
    paused_entry = await AccessLogEntry.objects.aget(action="pause")
    assert (paused_entry.username, paused_entry.call_id) == (
        "carol",
        live_socket.call_id,
    )
    await send_frames(recorder, pcm(0.2, 16000), FRAME)
    await recorder.disconnect()
    [recording] = await recordings_of()
    assert recording.ended_paused


async def test_a_pause_nobody_confirms_is_reported_as_not_paused(async_client):
    call = await caller()
    await LiveSocket.objects.acreate(
        call=call, channel_name="specific.gone!x", spool_name="x.wav", sample_rate=16000
    )
    staff, _ = await signed_in(staff=True)
    await async_client.aforce_login(staff)

    response = await async_client.post(
        reverse("recordings:call_pause", args=[call.pk]),
        {"action": "pause"},
        follow=True,
    )
    assert "recording was NOT paused" in response.content.decode()
    assert not await CallEvent.objects.filter(source="staff").aexists()


async def test_only_staff_may_pause(async_client):
    call = await caller()
    user, _ = await signed_in()
    await async_client.aforce_login(user)
    response = await async_client.post(
        reverse("recordings:call_pause", args=[call.pk]), {"action": "pause"}
    )
    assert response.status_code == 403


async def open_listener(call_id: int, cookie: bytes | None):
    communicator = WebsocketCommunicator(
        application, f"/ws/calls/{call_id}/listen", headers=browser_headers(cookie)
    )
    connected, code = await communicator.connect()
    return communicator, connected, code


async def test_staff_hear_the_live_audio_with_silence_while_paused():
    audio = pcm(1.5, 16000)
    recorder = await open_socket()
    live_socket = await wait_until_live()
    _, cookie = await signed_in(staff=True)
    listener, connected, _ = await open_listener(live_socket.call_id, cookie)
    assert connected
    assert json.loads(await listener.receive_from()) == {"sample_rate": 16000}
    await asyncio.sleep(0.1)  # the renewal reaches the recorder

    await send_frames(recorder, audio[: SECOND // 2], FRAME)
    await asyncio.sleep(0.1)
    await pause(live_socket, True)
    await send_frames(recorder, audio[SECOND // 2 : SECOND], FRAME)
    await asyncio.sleep(0.1)
    await pause(live_socket, False)
    await send_frames(recorder, audio[SECOND:], FRAME)
    await recorder.disconnect()

    heard = bytearray()
    while True:
        message = await listener.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            break
        if message.get("bytes"):
            heard += message["bytes"]
        else:
            assert json.loads(message["text"]) == {"event": "ended"}
    [recording] = await recordings_of()
    _, kept = wav_of(recording)
    assert bytes(heard) == kept  # what staff heard is what was kept
    assert bytes(SECOND // 4) in heard  # with silence where it was paused
    await listener.disconnect()
    logged = [
        (entry.action, entry.call_id)
        async for entry in AccessLogEntry.objects.order_by("id")
    ]
    assert logged == [
        ("listen-start", live_socket.call_id),
        ("listen-end", live_socket.call_id),
    ]


async def test_listen_in_is_for_signed_in_staff_and_live_calls_only():
    recorder = await open_socket()
    live_socket = await wait_until_live()
    _, cookie = await signed_in(staff=False, name="dave")
    _, staff_cookie = await signed_in(staff=True, name="erin")

    listen_path = f"/ws/calls/{live_socket.call_id}/listen"
    assert await close_code(listen_path, None) == 4401
    assert await close_code(listen_path, cookie) == 4403
    not_live_path = f"/ws/calls/{live_socket.call_id + 1}/listen"
    assert await close_code(not_live_path, staff_cookie) == 4404
    await recorder.disconnect()


def test_list_shows_calls_in_progress_apart_from_finished_ones(user_client):
    live_call = Call.objects.create(uuid="live-1", from_number="447700900111")
    LiveSocket.objects.create(
        call=live_call, channel_name="c1", spool_name="s1.wav", sample_rate=16000
    )
    Call.objects.create(uuid="done-1", from_number="447700900222")

    page = user_client.get(reverse("recordings:call_list")).content.decode()
    live_part, finished_part = page.split('class="filters"')
    assert "447700900111" in live_part and f'data-call-id="{live_call.pk}"' in page
    assert "447700900111" not in finished_part
    assert "447700900222" in finished_part


def test_a_call_with_two_sockets_is_listed_live_once(user_client):
    call = Call.objects.create(uuid="live-2", from_number="447700900333")
    for n in (1, 2):  # Vonage reconnected while the first was being stored
        LiveSocket.objects.create(
            call=call, channel_name=f"c{n}", spool_name=f"s{n}.wav", sample_rate=16000
        )

    page = user_client.get(reverse("recordings:call_list")).content.decode()
    live_part, finished_part = page.split('class="filters"')
    assert live_part.count(f'data-call-id="{call.pk}"') == 1
    assert f'data-call-id="{call.pk}"' not in finished_part


def test_a_finished_calls_row_is_served_for_the_live_list(user_client):
    call = Call.objects.create(uuid="done-2", from_number="447700900333")
    row = user_client.get(reverse("recordings:call_row", args=[call.pk]))
    assert row.status_code == 200
    assert row.content.decode().strip().startswith("<tr")
    assert "447700900333" in row.content.decode()


def test_recovering_a_dead_writers_spool_ends_its_live_row(settings):
    crashed_writer(settings.SPOOL_DIR, pcm(0.2, 16000))
    [meta_path] = settings.SPOOL_DIR.glob("*.json")
    call = Call.objects.create(uuid=ids(1)["uuid"])
    LiveSocket.objects.create(
        call=call,
        channel_name="c2",
        spool_name=meta_path.with_suffix(".wav").name,
        sample_rate=16000,
    )

    recording = recordings.recording_recover(meta_path=meta_path)
    assert recording is not None and recording.recovered
    assert not LiveSocket.objects.filter(call=call).exists()


# --- robustness: late pages, late requests, stalled Redis, lost rights -------


async def test_a_page_opened_during_a_call_gets_it_in_its_first_message():
    await caller(number="447700900888")
    recorder = await open_socket()
    await wait_until_live()
    _, cookie = await signed_in()
    dashboard = await open_dashboard(cookie)

    snapshot = await next_event(dashboard, "snapshot", timeout=2)
    assert [call["from"] for call in snapshot["calls"]] == ["447700900888"]
    await recorder.disconnect()
    await dashboard.disconnect()


async def test_a_pause_asked_after_the_call_ended_is_refused(monkeypatch):
    finalize = recordings.recording_finalize

    def slow_finalize(**kwargs):  # a long call being stored
        time.sleep(1.5)
        return finalize(**kwargs)

    monkeypatch.setattr(recordings, "recording_finalize", slow_finalize)
    recorder = await open_socket()
    live_socket = await wait_until_live()
    await send_frames(recorder, pcm(0.2, 16000), FRAME)
    hanging_up = asyncio.ensure_future(recorder.disconnect())
    await asyncio.sleep(0.3)  # the recording is being stored

    with pytest.raises(CallEnded):
        await pause(live_socket, True)
    await hanging_up
    [recording] = await recordings_of()
    assert not recording.ended_paused
    assert not await CallEvent.objects.filter(source="staff").aexists()


async def test_a_pause_request_that_arrives_too_late_is_not_applied():
    recorder = await open_socket()
    live_socket = await wait_until_live()
    await get_channel_layer().send(
        live_socket.channel_name,
        {"type": "recording.pause", "paused": True, "by": "x", "expires_at": 1.0},
    )
    await asyncio.sleep(0.2)
    await send_frames(recorder, pcm(0.2, 16000), FRAME)
    await recorder.disconnect()

    [recording] = await recordings_of()
    assert recording.paused_seconds == 0
    assert not await CallEvent.objects.filter(source="staff").aexists()


async def test_a_stalled_listener_never_holds_up_the_recording(monkeypatch):
    layer = get_channel_layer()
    send = layer.send
    stalled = asyncio.Event()

    async def stalling_send(channel, message):
        if message["type"] == "listen.audio":
            await stalled.wait()  # Redis hangs for listen-in traffic
        return await send(channel, message)

    monkeypatch.setattr(layer, "send", stalling_send)
    audio = pcm(1.0, 16000)
    recorder = await open_socket()
    live_socket = await wait_until_live()
    _, cookie = await signed_in(staff=True)
    listener, connected, _ = await open_listener(live_socket.call_id, cookie)
    assert connected
    await asyncio.sleep(0.1)  # the renewal reaches the recorder
    await send_frames(recorder, audio, FRAME)
    key = {"event": "websocket:dtmf", "digit": "7", "duration": 100}
    await recorder.send_to(text_data=json.dumps(key))
    await asyncio.sleep(0.5)

    # The socket kept up: everything it was sent is taken, the key press too.
    assert await CallEvent.objects.filter(status="websocket:dtmf").aexists()
    await recorder.disconnect()
    [recording] = await asyncio.wait_for(recordings_of(), 10)
    assert wav_of(recording)[1] == audio
    stalled.set()


async def test_listen_in_gets_whole_samples_even_from_odd_frames():
    audio = pcm(0.6, 16000)
    recorder = await open_socket()
    live_socket = await wait_until_live()
    _, cookie = await signed_in(staff=True)
    listener, _, _ = await open_listener(live_socket.call_id, cookie)
    await listener.receive_from()  # the sample rate
    await asyncio.sleep(0.1)
    await send_frames(recorder, audio, 1281)  # 5 frames to a chunk: 6405 bytes
    await recorder.disconnect()

    heard = bytearray()
    while (message := await listener.receive_output(timeout=5))["type"] != (
        "websocket.close"
    ):
        if message.get("bytes"):
            assert len(message["bytes"]) % 2 == 0
            heard += message["bytes"]
    assert bytes(heard) == audio


async def test_listen_in_ends_when_the_call_is_no_longer_live(monkeypatch):
    monkeypatch.setattr(live_events, "LISTEN_RENEW_SECONDS", 0.1)
    recorder = await open_socket()
    live_socket = await wait_until_live()
    _, cookie = await signed_in(staff=True)
    listener, _, _ = await open_listener(live_socket.call_id, cookie)
    await listener.receive_from()
    await LiveSocket.objects.filter(pk=live_socket.pk).adelete()  # worker died

    assert json.loads(await listener.receive_from(timeout=2)) == {"event": "ended"}
    await recorder.disconnect()


async def test_a_dashboard_closes_when_its_user_signs_out_elsewhere(monkeypatch):
    monkeypatch.setattr(live_events, "WATCH_RENEW_SECONDS", 0.1)
    _, cookie = await signed_in()
    dashboard = await open_dashboard(cookie)
    await next_event(dashboard, "snapshot")
    session_key = cookie.decode().split("=", 1)[1]
    await database_sync_to_async(SessionStore(session_key).delete)()

    while (message := await dashboard.receive_output(timeout=2))["type"] != (
        "websocket.close"
    ):
        pass
    assert message["code"] == 4401


# --- a process that died: its calls stop showing as live ---------------------


def dead_process_call(number: str = "447700900444", *, age: float = 0) -> Call:
    """A live row whose process last renewed it `age` seconds ago."""
    call = Call.objects.create(uuid=f"dead-{number}", from_number=number)
    LiveSocket.objects.create(
        call=call, channel_name=f"c-{number}", spool_name="s.wav", sample_rate=16000
    )
    renewed_at = Now() - timedelta(seconds=age)
    LiveSocket.objects.filter(call=call).update(seen_at=renewed_at)
    return call


async def go_stale(live_socket: LiveSocket) -> None:
    renewed_at = Now() - timedelta(seconds=LiveSocket.STALE_SECONDS + 1)
    await LiveSocket.objects.filter(pk=live_socket.pk).aupdate(seen_at=renewed_at)


def test_a_call_whose_process_stopped_renewing_it_is_not_live_anywhere(client):
    staff = User.objects.create_superuser("sam", password="pw")
    client.force_login(staff)
    alive = dead_process_call("447700900111", age=LiveSocket.STALE_SECONDS - 10)
    dead = dead_process_call("447700900222", age=LiveSocket.STALE_SECONDS + 1)

    page = client.get(reverse("recordings:call_list")).content.decode()
    live_part, finished_part = page.split('class="filters"')
    assert "447700900111" in live_part and "447700900111" not in finished_part
    assert "447700900222" in finished_part and "447700900222" not in live_part
    assert "Listen live" in client.get(alive.get_absolute_url()).content.decode()
    assert "Listen live" not in client.get(dead.get_absolute_url()).content.decode()
    assert [call["id"] for call in selectors.calls_in_progress(None)] == [alive.pk]
    in_admin = {row.call_id: row.alive for row in LiveSocket.objects.with_alive()}
    assert in_admin == {alive.pk: True, dead.pk: False}
    admin_list = client.get(reverse("admin:recordings_app_livesocket_changelist"))
    assert admin_list.status_code == 200


def test_retention_purges_a_call_whose_process_died_but_not_a_live_one():
    alive = dead_process_call("447700900111", age=10)
    dead = dead_process_call("447700900222", age=LiveSocket.STALE_SECONDS + 1)
    Call.objects.update(started_at=timezone.now() - timedelta(days=60))

    report = retention.purge_calls_older_than(
        timezone.now() - timedelta(days=30), dry_run=False
    )
    assert report.deleted_calls == 1
    assert list(Call.objects.all()) == [alive]
    assert not Call.objects.filter(pk=dead.pk).exists()


async def test_a_recording_process_keeps_its_calls_live(monkeypatch):
    monkeypatch.setattr(LiveSocket, "HEARTBEAT_SECONDS", 0.1)
    monkeypatch.setattr(LiveSocket, "STALE_SECONDS", 0.8)
    recorder = await open_socket()
    live_socket = await wait_until_live()
    for _ in range(80):  # 1.6 s of audio: twice the time it takes to go stale
        await recorder.send_to(bytes_data=b"\x00\x10" * 320)
        await asyncio.sleep(0.02)

    assert await LiveSocket.objects.alive().filter(pk=live_socket.pk).aexists()
    renewed = await LiveSocket.objects.aget(pk=live_socket.pk)
    assert renewed.seen_at > live_socket.seen_at
    await recorder.disconnect()


async def test_an_open_dashboard_drops_a_call_whose_process_died(monkeypatch):
    monkeypatch.setattr(live_events, "WATCH_RENEW_SECONDS", 0.1)
    monkeypatch.setattr(LiveSocket, "HEARTBEAT_SECONDS", 0.2)
    call = await database_sync_to_async(dead_process_call)()
    _, cookie = await signed_in()
    dashboard = await open_dashboard(cookie)
    first = await next_event(dashboard, "snapshot")
    assert [each["id"] for each in first["calls"]] == [call.pk]

    await go_stale(await LiveSocket.objects.aget(call=call))
    later = await next_event(dashboard, "snapshot", timeout=2)
    assert later["calls"] == []  # the page moves the call to the finished list
    await dashboard.disconnect()


async def test_a_call_being_recorded_can_be_paused_though_its_heartbeat_is_late(
    async_client,
):
    await caller()
    staff, _ = await signed_in(staff=True, name="carol")
    await async_client.aforce_login(staff)
    recorder = await open_socket()
    live_socket = await wait_until_live()
    await go_stale(live_socket)  # its worker's database thread was stuck, say

    url = reverse("recordings:call_pause", args=[live_socket.call_id])
    response = await post_as_daphne_would(async_client, url, {"action": "pause"})
    page = await async_client.get(response["Location"])
    assert "Recording paused" in page.content.decode()
    await send_frames(recorder, pcm(0.2, 16000), FRAME)
    await recorder.disconnect()
    [recording] = await recordings_of()
    assert recording.ended_paused


async def hang_up_and_wait_while_stored_slowly(
    recorder, monkeypatch, seconds: float
) -> None:
    """Hang up, and return once storing the recording has begun: it takes
    `seconds` (a long call going to S3, say)."""
    finalize = recordings.recording_finalize
    storing = threading.Event()

    def slow_finalize(**kwargs):
        storing.set()
        time.sleep(seconds)
        return finalize(**kwargs)

    monkeypatch.setattr(recordings, "recording_finalize", slow_finalize)
    await send_frames(recorder, pcm(0.2, 16000), FRAME)
    await recorder.send_input({"type": "websocket.disconnect", "code": 1000})
    assert await asyncio.to_thread(storing.wait, 5)


async def test_a_call_stays_live_until_its_recording_is_stored(monkeypatch):
    monkeypatch.setattr(LiveSocket, "HEARTBEAT_SECONDS", 0.1)
    monkeypatch.setattr(LiveSocket, "STALE_SECONDS", 0.8)
    recorder = await open_socket()
    live_socket = await wait_until_live()
    await hang_up_and_wait_while_stored_slowly(recorder, monkeypatch, 2.5)

    await asyncio.sleep(1.6)  # twice the time it takes to go stale
    assert await LiveSocket.objects.alive().filter(pk=live_socket.pk).aexists()
    await recorder.wait(timeout=5)
    assert len(await recordings_of()) == 1
    assert not await LiveSocket.objects.filter(pk=live_socket.pk).aexists()


async def test_a_dashboard_outlives_a_snapshot_the_database_could_not_give(
    monkeypatch,
):
    monkeypatch.setattr(live_events, "WATCH_RENEW_SECONDS", 0.05)
    monkeypatch.setattr(LiveSocket, "HEARTBEAT_SECONDS", 0.1)
    _, cookie = await signed_in()
    dashboard = await open_dashboard(cookie)
    await next_event(dashboard, "snapshot")
    real_query = selectors.calls_in_progress
    failures = []

    def query_once_failing(numbers) -> list[dict]:
        if not failures:
            failures.append("database away")
            raise OperationalError("database away")
        return real_query(numbers)

    monkeypatch.setattr(selectors, "calls_in_progress", query_once_failing)
    assert (await next_event(dashboard, "snapshot", timeout=2))["calls"] == []
    assert failures
    await dashboard.disconnect()


async def test_a_call_starts_while_another_is_being_stored(monkeypatch):
    first = await open_socket(1)
    await hang_up_and_wait_while_stored_slowly(first, monkeypatch, 2.0)

    started = time.monotonic()
    second = await open_socket(2)
    await wait_until_live(2)
    assert time.monotonic() - started < 1.0  # not after the upload
    await first.wait(timeout=5)
    await second.disconnect()
