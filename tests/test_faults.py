"""Lose no audio: crashes, storage failures and broken sockets, done for real."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import httpx
import pytest
import websockets
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.files.storage import FileSystemStorage
from django.core.management import CommandError, call_command

from recordings_app.audio.spool import SpoolWriter
from recordings_app.live.events import CALLS_GROUP
from recordings_app.models import Call, LiveSocket, Recording

from .helpers import (
    FRAME,
    crashed_writer,
    open_socket,
    pcm,
    recordings_of,
    send_frames,
    wait_for_recordings,
    wav_of,
)

pytestmark = pytest.mark.usefixtures("close_async_orm_connections")


async def in_thread(function, *args):
    """Run blocking ORM work off the loop; its connection closes after each use."""
    return await database_sync_to_async(function, thread_sensitive=False)(*args)


def recover(grace: float = 0) -> str:
    out = io.StringIO()
    call_command("recover_recordings", "--grace", str(grace), stdout=out)
    return out.getvalue()


def wav_data(recording: Recording) -> bytes:
    with recording.file.open("rb") as handle, wave.open(handle) as wav:
        return wav.readframes(wav.getnframes())


# --- recovery ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_spool_left_by_a_dead_writer_becomes_a_recovered_recording(settings):
    audio = pcm(1.0, 16000)
    crashed_writer(settings.SPOOL_DIR, audio)

    output = recover()

    assert "1 recording(s) recovered." in output
    recording = Recording.objects.get()
    assert recording.recovered
    assert wav_data(recording) == audio
    assert recording.call.uuid == "aaaaaaaa-0000-0000-0000-000000000001"
    assert recording.sha256 and len(recording.sha256) == 64
    assert len(recording.peaks) == 1000 and max(recording.peaks) > 0
    assert list(settings.SPOOL_DIR.iterdir()) == []


@pytest.mark.django_db
def test_without_flushing_a_crash_loses_the_buffer(settings):
    """Proves the flush matters: a writer that never flushes leaves less behind."""
    audio = pcm(1.0, 16000)
    crashed_writer(settings.SPOOL_DIR, audio, flush_every_frame=False)

    recover()

    kept = b"".join(wav_data(r) for r in Recording.objects.all())
    assert len(kept) < len(audio)


@pytest.mark.django_db
def test_recovery_twice_recovers_once(settings):
    crashed_writer(settings.SPOOL_DIR, pcm(0.5, 16000))

    recover()
    second = recover()

    assert "0 recording(s) recovered." in second
    assert Recording.objects.count() == 1


@pytest.mark.django_db
def test_recovery_leaves_a_live_calls_spool_alone(settings):
    writer = SpoolWriter(
        settings.SPOOL_DIR,
        call_uuid="live",
        conversation_uuid="CON-live",
        sample_rate=16000,
    )
    writer.write(pcm(0.2, 16000))

    assert "0 recording(s) recovered." in recover(grace=0)

    assert writer.path.exists() and writer.meta_path.exists()
    writer.write(pcm(0.2, 16000, seed=2))
    finished = writer.close()
    assert finished.sample_count == 2 * 3200
    assert not Recording.objects.exists()


def live_row(spool_path) -> LiveSocket:
    """The row a recording socket keeps while its call is live (pause, listen-in)."""
    call = Call.objects.create(uuid="aaaaaaaa-0000-0000-0000-000000000001")
    return LiveSocket.objects.create(
        call=call,
        channel_name="recorder",
        spool_name=spool_path.name,
        sample_rate=16000,
    )


def dashboard_spy(monkeypatch) -> list[tuple[str, dict]]:
    """What the channel layer is asked to tell live pages' groups.

    A recorder, not a real receive: a receive from this sync test's
    throwaway event loop would leave channels-redis' receive lock bound to
    that loop for every later test of the process.
    """
    sent: list[tuple[str, dict]] = []

    async def group_send(group: str, message: dict) -> None:
        sent.append((group, message))

    monkeypatch.setattr(get_channel_layer(), "group_send", group_send)
    return sent


@pytest.mark.django_db
def test_recovery_keeps_a_live_calls_row_so_staff_can_still_pause_it(settings):
    writer = SpoolWriter(
        settings.SPOOL_DIR,
        call_uuid="aaaaaaaa-0000-0000-0000-000000000001",
        conversation_uuid="CON-1",
        sample_rate=16000,
    )
    writer.write(pcm(0.2, 16000))
    live = live_row(writer.path)

    assert "0 recording(s) recovered." in recover(grace=0)

    assert LiveSocket.objects.filter(pk=live.pk).exists()
    writer.close()


@pytest.mark.django_db
def test_recovering_a_dead_writers_spool_tells_dashboards_the_call_ended(
    settings, monkeypatch
):
    crashed_writer(settings.SPOOL_DIR, pcm(0.2, 16000))
    [meta] = settings.SPOOL_DIR.glob("*.json")
    live = live_row(meta.with_suffix(".wav"))
    told = dashboard_spy(monkeypatch)

    assert "1 recording(s) recovered." in recover()

    assert not LiveSocket.objects.filter(pk=live.pk).exists()
    assert told == [(CALLS_GROUP, {"type": "call.ended", "call_id": live.call_id})]


@pytest.mark.django_db
def test_recovery_goes_on_when_dashboards_cannot_be_told(settings, monkeypatch):
    crashed_writer(settings.SPOOL_DIR, pcm(0.2, 16000))
    [meta] = settings.SPOOL_DIR.glob("*.json")
    live = live_row(meta.with_suffix(".wav"))

    async def layer_down(*args, **kwargs):
        raise ConnectionError("redis went away")

    monkeypatch.setattr(get_channel_layer(), "group_send", layer_down)

    assert "1 recording(s) recovered." in recover()
    assert not LiveSocket.objects.filter(pk=live.pk).exists()
    assert Recording.objects.get().call_id == live.call_id


@pytest.mark.django_db
def test_recovery_waits_for_the_grace_period(settings):
    crashed_writer(settings.SPOOL_DIR, pcm(0.2, 16000))

    assert "0 recording(s) recovered." in recover(grace=3600)
    assert "1 recording(s) recovered." in recover(grace=0)


# --- storage failures -------------------------------------------------------

socket_test = pytest.mark.django_db(transaction=True)


@pytest.fixture
def full_disk(monkeypatch):
    """Storage that fails like a full disk until the test lets it recover."""

    def no_space(self, name, content):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FileSystemStorage, "_save", no_space)
    return monkeypatch


@socket_test
async def test_a_storage_failure_keeps_the_spool_and_recovery_stores_it_later(
    settings, full_disk, caplog
):
    audio = pcm(0.6, 16000)
    communicator = await open_socket()
    await send_frames(communicator, audio, FRAME)
    await communicator.disconnect()  # no exception reaches the peer

    assert await recordings_of() == []
    assert len(list(settings.SPOOL_DIR.glob("*.wav"))) == 1
    assert "aaaaaaaa-0000-0000-0000-000000000001" in caplog.text
    assert "spool kept" in caplog.text

    with pytest.raises(CommandError, match="could not be recovered; they are kept"):
        await in_thread(recover)
    full_disk.undo()
    await in_thread(recover)

    [recording] = await recordings_of()
    assert recording.recovered
    assert wav_of(recording)[1] == audio


async def stored_but_row_lost(settings, monkeypatch) -> tuple[bytes, Path]:
    """A call whose audio reached storage while its row failed: its audio
    and the spool metadata (with its "stored" note) left for recovery."""
    audio = pcm(0.4, 16000)

    def database_down(self, *args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Recording, "save", database_down)
    communicator = await open_socket()
    await send_frames(communicator, audio, FRAME)
    await communicator.disconnect()
    monkeypatch.undo()
    [meta] = settings.SPOOL_DIR.glob("*.json")
    return audio, meta


@socket_test
async def test_a_database_failure_after_storing_is_finished_by_recovery(
    settings, monkeypatch
):
    audio, meta = await stored_but_row_lost(settings, monkeypatch)
    stored = json.loads(meta.read_text())["stored"]

    await in_thread(recover)

    [recording] = await recordings_of()
    assert recording.file.name == stored["name"]
    assert wav_of(recording)[1] == audio
    assert recording.peaks == stored["peaks"] and len(recording.peaks) == 1000
    assert list(settings.SPOOL_DIR.iterdir()) == []


@socket_test
async def test_recovery_draws_the_waveform_when_older_metadata_has_none(
    settings, monkeypatch
):
    audio, meta = await stored_but_row_lost(settings, monkeypatch)
    noted = json.loads(meta.read_text())
    drawn = noted["stored"].pop("peaks")  # as noted before waveforms were kept
    meta.write_text(json.dumps(noted))

    await in_thread(recover)

    [recording] = await recordings_of()
    assert recording.peaks == drawn and max(drawn) > 0


@socket_test
async def test_recovery_reads_a_stored_note_written_before_its_newer_figures(
    settings, monkeypatch
):
    """Notes of older versions lack started_at (in the spool's metadata then),
    the pause figures and the waveform: the row is saved all the same."""
    audio, meta = await stored_but_row_lost(settings, monkeypatch)
    noted = json.loads(meta.read_text())
    for newer in ("started_at", "paused_seconds", "ended_paused", "peaks"):
        noted["stored"].pop(newer)
    meta.write_text(json.dumps(noted))

    await in_thread(recover)

    [recording] = await recordings_of()
    assert recording.file.name == noted["stored"]["name"]
    assert recording.started_at.isoformat() == noted["started_at"]
    assert recording.paused_seconds == 0 and not recording.ended_paused
    assert wav_of(recording)[1] == audio and max(recording.peaks) > 0
    assert list(settings.SPOOL_DIR.iterdir()) == []


# --- a real server, really broken -------------------------------------------


async def open_vonage_socket(http: httpx.AsyncClient, base_url: str, n: int = 1):
    """Answer webhook, then the socket at the NCCO's URI with its connected message."""
    call_uuid = f"bbbbbbbb-0000-0000-0000-{n:012d}"
    params = {
        "uuid": call_uuid,
        "conversation_uuid": f"CON-{call_uuid}",
        "from": "447700900123",
        "to": "447700900000",
    }
    ncco = (await http.get(f"{base_url}/webhooks/answer", params=params)).json()
    endpoint = ncco[1]["endpoint"][0]
    socket = await websockets.connect(endpoint["uri"])
    await socket.send(
        json.dumps(
            {
                "event": "websocket:connected",
                "content-type": endpoint["content-type"],
                **endpoint["headers"],
            }
        )
    )
    return call_uuid, socket


async def send_all(socket, audio: bytes) -> None:
    for start in range(0, len(audio), FRAME):
        await socket.send(audio[start : start + FRAME])


@pytest.mark.e2e
async def test_after_kill_9_mid_call_recovery_keeps_all_but_the_last_second(
    daphne_server, settings
):
    audio = pcm(4.0, 16000, seed=11)
    async with httpx.AsyncClient() as http:
        call_uuid, socket = await open_vonage_socket(http, daphne_server.url)
        start = time.monotonic()
        sent = 0
        for index in range(150):  # 3 s of the 4, at real-time pace
            await socket.send(audio[index * FRAME : (index + 1) * FRAME])
            sent += FRAME
            await asyncio.sleep(max(0, start + (index + 1) * 0.02 - time.monotonic()))
        daphne_server.process.send_signal(signal.SIGKILL)
        daphne_server.process.wait()

    output = await in_thread(recover)

    [recording] = await in_thread(wait_for_recordings, call_uuid)
    kept = wav_data(recording)
    lost_seconds = (sent - len(kept)) / 32000
    print(
        f"\naudio sent before kill -9: {sent / 32000:.2f} s; lost: {lost_seconds:.3f} s"
    )
    assert "1 recording(s) recovered." in output
    assert recording.recovered
    assert kept == audio[: len(kept)]  # a prefix: nothing shifted or invented
    assert lost_seconds <= settings.CALLRECORDER_SPOOL_FLUSH_SECONDS + 0.1


@pytest.mark.e2e
async def test_a_peer_that_vanishes_without_a_close_frame_still_gets_its_recording(
    daphne_server,
):
    audio = pcm(1.0, 16000, seed=12)
    async with httpx.AsyncClient() as http:
        call_uuid, socket = await open_vonage_socket(http, daphne_server.url)
        await send_all(socket, audio)
        socket.transport.close()  # TCP FIN, no WebSocket close frame

    [recording] = await in_thread(wait_for_recordings, call_uuid)
    assert wav_data(recording) == audio
    assert not recording.recovered


@pytest.mark.e2e
async def test_a_connection_cut_in_the_middle_of_a_frame_keeps_every_whole_frame(
    daphne_server,
):
    audio = pcm(1.0, 16000, seed=13)
    async with httpx.AsyncClient() as http:
        call_uuid, socket = await open_vonage_socket(http, daphne_server.url)
        await send_all(socket, audio)
        # A binary frame header announcing 640 masked bytes, then only 100.
        socket.transport.write(b"\x82\xfe\x02\x80" + os.urandom(4) + os.urandom(100))
        socket.transport.close()

    [recording] = await in_thread(wait_for_recordings, call_uuid)
    assert wav_data(recording) == audio


@pytest.mark.e2e
async def test_a_burst_of_calls_closing_at_once_all_get_complete_recordings(
    daphne_server,
):
    calls = 100
    audio = [random.Random(n).randbytes(32000 * 3) for n in range(calls)]  # 3 s each

    async def one(n: int) -> str:
        # The closings are the point here: 100 answers at once on runserver can
        # take past httpx's 5 s (call setup in bursts is its own issue, 16).
        async with httpx.AsyncClient(timeout=30) as http:
            call_uuid, socket = await open_vonage_socket(http, daphne_server.url, n)
            await send_all(socket, audio[n])
            await socket.close()
            return call_uuid

    uuids = await asyncio.gather(*(one(n) for n in range(calls)))

    for n, call_uuid in enumerate(uuids):
        [recording] = await in_thread(wait_for_recordings, call_uuid, 1, 30)
        assert wav_data(recording) == audio[n]
        assert recording.frame_count == 150


@pytest.mark.e2e
async def test_events_long_after_the_socket_still_complete_the_call(daphne_server):
    audio = pcm(0.4, 16000, seed=14)
    async with httpx.AsyncClient() as http:
        call_uuid, socket = await open_vonage_socket(http, daphne_server.url)
        await send_all(socket, audio)
        await socket.close()
        await in_thread(wait_for_recordings, call_uuid)
        await asyncio.sleep(1)
        response = await http.post(
            f"{daphne_server.url}/webhooks/event",
            json={
                "uuid": call_uuid,
                "conversation_uuid": f"CON-{call_uuid}",
                "status": "completed",
                "duration": "7",
            },
        )

    assert response.status_code == 200
    call = await Call.objects.aget(uuid=call_uuid)
    assert (call.status, call.duration_seconds) == ("completed", 7)
    [recording] = await in_thread(wait_for_recordings, call_uuid)
    assert wav_data(recording) == audio


def raw_binary_frames(audio: bytes) -> bytes:
    """The audio as client WebSocket frames (masked with a zero key), ready to blast."""
    header = b"\x82\xfe" + FRAME.to_bytes(2, "big") + b"\x00\x00\x00\x00"
    return b"".join(
        header + audio[start : start + FRAME] for start in range(0, len(audio), FRAME)
    )


@pytest.mark.e2e
@pytest.mark.parametrize("daphne_args", [["--application-close-timeout", "0"]])
# A server that falls behind a burst whatever its speed: each call's 3 min of
# noise is encoded to FLAC as it is stored, seconds of work for 20 calls, so
# Daphne's check (once a second) finds consumers still busy after their peer
# left. (Flushing every frame to the OS slows the frames too.)
@pytest.mark.parametrize(
    "daphne_env",
    [{"CALLRECORDER_SPOOL_FLUSH_SECONDS": "0", "CALLRECORDER_STORAGE_FORMAT": "flac"}],
)
async def test_calls_still_queued_when_daphnes_close_timeout_fires_are_kept_whole(
    daphne_server,
):
    """Peers that hang up while the server is behind: Daphne cancels their
    consumers (here: at once) after they left, with work still to do."""
    calls = 20
    audio = [random.Random(n).randbytes(32000 * 180) for n in range(calls)]  # 3 min

    async def one(n: int) -> str:
        async with httpx.AsyncClient() as http:
            call_uuid, socket = await open_vonage_socket(http, daphne_server.url, n)
            # All of it at once, faster than any server records it, then gone.
            socket.transport.write(raw_binary_frames(audio[n]))
            socket.transport.close()
            return call_uuid

    uuids = await asyncio.gather(*(one(n) for n in range(calls)))

    for n, call_uuid in enumerate(uuids):
        [recording] = await in_thread(wait_for_recordings, call_uuid, 1, 60)
        # FLAC is lossless: the PCM's hash is the hash of what was sent.
        assert recording.format == "flac"
        assert recording.pcm_sha256 == hashlib.sha256(audio[n]).hexdigest(), (
            f"call {n} incomplete"
        )
    # The timeout did fire: this test is about what happens then.
    assert "finishing after the server's close timeout" in daphne_server.output()


@pytest.mark.django_db
def test_recovery_skips_a_spool_another_process_is_finishing(settings):
    crashed_writer(settings.SPOOL_DIR, pcm(0.2, 16000))
    [meta] = settings.SPOOL_DIR.glob("*.json")
    script = f"""
import fcntl, sys, time
handle = open({str(meta)!r})
fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(30)
"""
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        assert "0 recording(s) recovered." in recover()
    finally:
        holder.kill()
        holder.wait()
    assert "1 recording(s) recovered." in recover()
