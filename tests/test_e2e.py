"""End to end: a real Daphne process, driven exactly as Vonage drives it."""

from __future__ import annotations

import asyncio
import random
import uuid
import wave

import httpx
import pytest
from asgiref.sync import sync_to_async

from recordings_app.models import Call, CallEvent
from recordings_app.simulator.caller import CallPlan, play_call

from .helpers import wait_for_recordings

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("close_async_orm_connections")]


def noise(seconds: float, seed: int) -> CallPlan:
    return CallPlan(
        audio=lambda rate: random.Random(seed).randbytes(int(rate * seconds) * 2),
        dtmf="42",
    )


async def test_a_call_streamed_like_vonage_is_saved_bit_exact_and_linked(
    daphne_server, session_cookies
):
    async with httpx.AsyncClient(timeout=10) as http:
        sent = await play_call(http, daphne_server.url, noise(2.0, seed=7))
        http.cookies.update(session_cookies)

        [recording] = await sync_to_async(wait_for_recordings)(sent.uuid)
        call = await Call.objects.aget(uuid=sent.uuid)
        page = (await http.get(daphne_server.url + call.get_absolute_url())).text
        seek = await http.get(
            daphne_server.url + recording.get_absolute_url(),
            headers={"Range": "bytes=44-"},
        )

    assert sent.frames_sent == 100
    with recording.file.open("rb") as handle, wave.open(handle) as wav:
        assert wav.getframerate() == 16000
        assert wav.readframes(wav.getnframes()) == sent.audio
    assert recording.frame_count == 100
    assert call.status == "completed"
    assert call.conversation_uuid == sent.conversation_uuid
    assert (call.from_number, call.to_number) == ("447700900123", "447700900000")
    assert recording.get_absolute_url() in page
    assert recording.get_download_url() in page
    assert seek.status_code == 206
    assert seek.content == sent.audio
    digits = [e.dtmf_digit async for e in CallEvent.objects.filter(call=call)]
    assert [d for d in digits if d] == ["4", "2"]
    statuses = [e.status async for e in CallEvent.objects.filter(call=call)]
    assert statuses.count("completed") == 2  # the caller's leg and the socket leg


async def test_concurrent_calls_each_get_their_own_bit_exact_recording(daphne_server):
    async with httpx.AsyncClient(timeout=20) as http:
        sent = await asyncio.gather(
            *(play_call(http, daphne_server.url, noise(1.0, seed=n)) for n in range(5))
        )

    for one in sent:
        [recording] = await sync_to_async(wait_for_recordings)(one.uuid)
        with recording.file.open("rb") as handle, wave.open(handle) as wav:
            assert wav.readframes(wav.getnframes()) == one.audio


async def test_a_hundred_calls_answered_at_once_get_no_server_error(daphne_server):
    """SQLite without WAL, IMMEDIATE and a busy timeout fails this with 'locked'."""
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        async def answer(n: int) -> tuple[int, int]:
            call_uuid = str(uuid.uuid4())
            params = {
                "uuid": call_uuid,
                "conversation_uuid": f"CON-{call_uuid}",
                "from": f"4477001{n:05d}",
                "to": "447700900000",
            }
            response = await http.get(
                f"{daphne_server.url}/webhooks/answer", params=params
            )
            event = {**params, "status": "started", "direction": "inbound"}
            posted = await http.post(f"{daphne_server.url}/webhooks/event", json=event)
            return response.status_code, posted.status_code

        statuses = await asyncio.gather(*(answer(n) for n in range(100)))

    assert statuses == [(200, 200)] * 100, daphne_server.output()[-20000:]
    assert await Call.objects.acount() == 100
    assert "database is locked" not in daphne_server.output()


async def test_under_uvicorn_too_a_call_is_saved_bit_exact(uvicorn_server):
    async with httpx.AsyncClient(timeout=10) as http:
        sent = await play_call(http, uvicorn_server.url, noise(1.0, seed=21))

    [recording] = await sync_to_async(wait_for_recordings)(sent.uuid)
    with recording.file.open("rb") as handle, wave.open(handle) as wav:
        assert wav.readframes(wav.getnframes()) == sent.audio
    assert recording.frame_count == 50
