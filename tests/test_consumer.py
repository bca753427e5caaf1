from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode

import pytest

from recordings_app.consumers import tasks
from recordings_app.consumers.audio import RecordingConsumer
from recordings_app.models import Call, CallEvent, LiveSocket, Recording
from recordings_app.services import access, calls
from recordings_app.signatures import socket_token

from .helpers import (
    connected_message,
    ids,
    open_socket,
    pcm,
    recordings_of,
    send_frames,
    socket_path,
    vonage_socket,
    wav_of,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_async_orm_connections"),
]


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
async def test_audio_at_each_rate_is_saved_bit_exact_with_its_rate(rate):
    audio = pcm(1.0, rate)
    communicator = await open_socket(rate=rate)
    await send_frames(communicator, audio, rate // 50 * 2)
    await communicator.disconnect()

    [recording] = await recordings_of()
    assert wav_of(recording) == (rate, audio)
    assert recording.sample_rate == rate
    assert recording.frame_count == 50
    assert recording.duration_seconds == pytest.approx(1.0)
    assert recording.size_bytes == len(audio) + 44 == recording.file.size


async def test_odd_sized_frames_are_joined_without_losing_or_shifting_a_byte():
    audio = pcm(0.5, 16000)
    communicator = await open_socket()
    await send_frames(communicator, audio, 641)
    await communicator.disconnect()

    [recording] = await recordings_of()
    assert wav_of(recording) == (16000, audio)
    assert recording.odd_byte_carries > 0


async def test_dtmf_is_stored_as_a_call_event_and_never_written_into_the_audio():
    audio = pcm(0.4, 16000)
    communicator = await open_socket()
    await send_frames(communicator, audio[:6400], 640)
    dtmf = {"event": "websocket:dtmf", "digit": "5", "duration": 260}
    await communicator.send_to(text_data=json.dumps(dtmf))
    await communicator.send_to(text_data=json.dumps(dtmf))  # pressed twice
    await send_frames(communicator, audio[6400:], 640)
    await communicator.disconnect()

    [recording] = await recordings_of()
    assert wav_of(recording)[1] == audio
    presses = CallEvent.objects.filter(status="websocket:dtmf")
    digits = [event.dtmf_digit async for event in presses]
    assert digits == ["5", "5"]


async def test_a_socket_that_sends_no_audio_saves_no_recording_but_keeps_the_call(
    settings,
):
    communicator = await open_socket()
    await communicator.disconnect()

    assert await recordings_of() == []
    call = await Call.objects.aget(uuid=ids()["uuid"])
    assert call.conversation_uuid == ids()["conversation_uuid"]
    assert list(settings.SPOOL_DIR.iterdir()) == []


async def test_two_calls_at_once_each_get_their_own_bit_exact_file():
    first_audio, second_audio = pcm(1.0, 16000, seed=1), pcm(1.0, 16000, seed=2)
    first, second = await open_socket(1), await open_socket(2)
    for start in range(0, len(first_audio), 640):
        await first.send_to(bytes_data=first_audio[start : start + 640])
        await second.send_to(bytes_data=second_audio[start : start + 640])
    await asyncio.gather(first.disconnect(), second.disconnect())

    [first_recording] = await recordings_of(1)
    [second_recording] = await recordings_of(2)
    assert first_recording.file.name != second_recording.file.name
    assert wav_of(first_recording)[1] == first_audio
    assert wav_of(second_recording)[1] == second_audio


async def test_a_reconnect_of_the_same_call_adds_a_recording_and_overwrites_nothing():
    audio = pcm(0.2, 16000)
    for _ in range(2):
        communicator = await open_socket()
        await send_frames(communicator, audio, 640)
        await communicator.disconnect()

    recordings = await recordings_of()
    assert len(recordings) == 2
    assert recordings[0].file.name != recordings[1].file.name
    assert all(wav_of(recording)[1] == audio for recording in recordings)


async def test_the_conversation_is_the_one_the_token_was_made_for():
    """The URI may leave the conversation out, and the connected message may
    name another one: the socket records on the conversation its token names."""
    audio = pcm(0.2, 16000)
    call = ids()
    token = socket_token(
        call_uuid=call["uuid"], conversation_uuid=call["conversation_uuid"]
    )
    query = urlencode({"uuid": call["uuid"], "token": token})
    communicator = await open_socket(query=query, rate=0)
    connected = connected_message() | {"conversation_uuid": ids(2)["conversation_uuid"]}
    await communicator.send_to(text_data=json.dumps(connected))
    await send_frames(communicator, audio, 640)
    await communicator.disconnect()

    [recording] = await recordings_of()
    assert wav_of(recording)[1] == audio
    assert recording.call.conversation_uuid == call["conversation_uuid"]


async def test_socket_with_a_forged_id_is_closed_with_4400():
    communicator = await open_socket(query="uuid=../../etc&conversation_uuid=x", rate=0)

    output = await communicator.receive_output()
    assert output == {
        "type": "websocket.close",
        "code": 4400,
        "reason": "uuid is not a valid Vonage identifier",
    }
    await communicator.disconnect()


async def test_first_message_other_than_connected_is_closed_with_4400():
    communicator = await open_socket(rate=0)
    await communicator.send_to(text_data=json.dumps({"event": "websocket:dtmf"}))

    output = await communicator.receive_output()
    assert output["type"] == "websocket.close"
    assert output["code"] == 4400
    await communicator.disconnect()
    assert not await Recording.objects.aexists()


async def test_audio_before_connected_is_refused_with_4400():
    communicator = await open_socket(rate=0)
    await communicator.send_to(bytes_data=b"\x00" * 640)

    assert (await communicator.receive_output())["code"] == 4400
    await communicator.disconnect()


async def test_unsupported_audio_format_is_closed_with_4415():
    communicator = await open_socket(rate=0)
    await communicator.send_to(
        text_data=json.dumps(
            {"event": "websocket:connected", "content-type": "audio/mulaw;rate=8000"}
        )
    )

    output = await communicator.receive_output()
    assert output["code"] == 4415
    assert "unsupported content-type" in output["reason"]
    await communicator.disconnect()


async def test_garbled_text_mid_call_is_kept_and_the_audio_goes_on():
    audio = pcm(0.2, 16000)
    communicator = await open_socket()
    await send_frames(communicator, audio[:3200], 640)
    await communicator.send_to(text_data="not json at all")
    await send_frames(communicator, audio[3200:], 640)
    await communicator.disconnect()

    [recording] = await recordings_of()
    assert wav_of(recording)[1] == audio
    event = await CallEvent.objects.aget(status="websocket:invalid")
    assert event.payload == {"text": "not json at all"}


async def test_socket_start_and_end_are_published_to_the_calls_group():
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("calls", channel)
    communicator = await open_socket()
    await communicator.send_to(bytes_data=b"\x01\x00" * 320)

    async def next_call_message() -> dict:
        while True:  # skip "anyone watching?" (live.monitor), asked as the call starts
            message = await asyncio.wait_for(layer.receive(channel), 5)
            if message["type"].startswith("call."):
                return message

    started = await next_call_message()
    await communicator.disconnect()
    ended = await next_call_message()
    call = await Call.objects.aget(uuid=ids()["uuid"])
    assert started["type"] == "call.started"
    assert started["call_id"] == call.pk
    assert started["call"]["url"] == call.get_absolute_url()
    assert ended == {"type": "call.ended", "call_id": call.pk}
    await layer.group_discard("calls", channel)


async def test_audio_frames_skip_the_per_message_database_thread_hop(monkeypatch):
    """Channels closes old DB connections (a thread hop) before every message;
    20 ms audio frames must not pay for it."""
    import channels.consumer

    hops = 0
    original = channels.consumer.aclose_old_connections

    async def counting_hop():
        nonlocal hops
        hops += 1
        await original()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counting_hop)
    communicator = await open_socket()
    await send_frames(communicator, pcm(2.0, 16000), 640)
    await communicator.disconnect()

    [recording] = await recordings_of()
    assert recording.frame_count == 100
    assert hops <= 3  # connect, websocket:connected, disconnect


@pytest.mark.parametrize(
    ("module", "slow_step"),
    [(access, "tokens_use"), (calls, "call_socket_open")],
    ids=["tokens_use", "call_socket_open"],
)
async def test_a_socket_cut_off_while_it_opens_still_records_the_audio_queued(
    monkeypatch, module, slow_step
):
    """Daphne cancels a consumer still busy application_close_timeout after
    its peer left, even one still opening (a slow database): the audio that
    arrived meanwhile must still be recorded, and the call's events kept."""
    real_step = getattr(module, slow_step)

    def slow(**kwargs):
        time.sleep(0.5)
        return real_step(**kwargs)

    monkeypatch.setattr(module, slow_step, slow)
    audio = pcm(1.0, 16000)
    communicator = vonage_socket(socket_path())
    await communicator.send_input({"type": "websocket.connect"})
    await communicator.send_to(text_data=json.dumps(connected_message()))
    await send_frames(communicator, audio, 640)
    dtmf = {"event": "websocket:dtmf", "digit": "7", "duration": 260}
    await communicator.send_to(text_data=json.dumps(dtmf))
    await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
    await asyncio.sleep(0.1)  # the consumer waits on the database

    while not communicator.future.done():  # as Daphne does, every second
        communicator.future.cancel()
        await asyncio.sleep(0.2)
    for _ in range(100):  # the drain goes on after the consumer let go
        if await recordings_of() and not tasks.background_tasks:
            break
        await asyncio.sleep(0.05)

    [recording] = await recordings_of()
    assert wav_of(recording) == (16000, audio)
    events = [event.status async for event in recording.call.events.all()]
    assert sorted(events) == ["websocket:connected", "websocket:dtmf"]
    assert RecordingConsumer.active_sockets == 0
    assert not await LiveSocket.objects.aexists()
