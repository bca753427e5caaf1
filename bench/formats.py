"""Formats and sealing (issue 15): bytes, CPU, Range and finalise per format.

Real speech: ../shared/audio's three 16 kHz readings, looped to a 60-minute
call. Each figure is printed beside its floor, measured in the same run:

- bytes per call-hour: wav, flac, opus (the floor is the WAV itself);
- CPU seconds per call-hour: encode (flac, opus) and seal (AES-256-GCM
  chunks) against copying the file (the floor);
- a Range request (1 MiB) in the middle of a 60-minute sealed FLAC, through
  the app's media view and through the reader alone, against the same range
  of the unsealed file;
- a 60-minute call's finalise (SpoolWriter.close + recording_finalize) for
  each format, sealed or not, and the event loop's longest stall meanwhile
  (finalise runs in a worker thread, as RecordingConsumer does).

Run from the app's directory:

    .venv/bin/python bench/formats.py [--minutes 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
import wave
from functools import partial
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="bench-formats-"))
sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callrecorder.settings")
os.environ.update(
    DATABASE_URL=f"sqlite:///{WORK}/db.sqlite3",
    MEDIA_ROOT=str(WORK / "media"),
    SPOOL_DIR=str(WORK / "spool"),
)

import django  # noqa: E402

django.setup()

from asgiref.sync import async_to_sync, sync_to_async  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from recordings_app.audio import codecs, sealing  # noqa: E402
from recordings_app.audio.spool import SpoolWriter  # noqa: E402
from recordings_app.services import calls, recordings, stored_audio  # noqa: E402

SPEECH = Path(os.getcwd()).parent / "shared" / "audio"
FRAME = 640


def speech_pcm(minutes: float) -> bytes:
    """The three readings, one after another, looped to `minutes`."""
    pieces = []
    for path in sorted(SPEECH.glob("*-16k.wav")):
        with wave.open(str(path)) as wav:
            pieces.append(wav.readframes(wav.getnframes()))
    once = b"".join(pieces)
    wanted = int(minutes * 60 * 16000) * 2
    return (once * (wanted // len(once) + 1))[:wanted]


def cpu(function) -> float:
    started = time.process_time()
    function()
    return time.process_time() - started


def seal(path: Path) -> None:
    key = sealing.new_data_key()
    with open(path, "rb") as source, open(WORK / "sealed", "wb") as target:
        for chunk in sealing.sealed_chunks(source, key):
            target.write(chunk)


def sizes_and_cpu(pcm: bytes, minutes: float) -> dict:
    wav_path = WORK / "speech.wav"
    with wave.open(str(wav_path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(pcm)
    per_hour = 60 / minutes
    out: dict = {
        "copy_floor_cpu_s": round(
            cpu(lambda: shutil.copyfile(wav_path, WORK / "copy.wav")) * per_hour, 3
        )
    }
    for name in codecs.FORMATS:
        target = wav_path if name == "wav" else WORK / f"speech.{name}"
        seconds = 0.0
        if name != "wav":
            seconds = cpu(partial(codecs.encode, wav_path, target, to=name))
        size = target.stat().st_size
        out[name] = {
            "bytes_per_call_hour": round(size * per_hour),
            "of_wav": round(size / wav_path.stat().st_size, 3),
            "kbit_s": round(size * 8 / (minutes * 60) / 1000, 1),
            "encode_cpu_s_per_call_hour": round(seconds * per_hour, 2),
            "seal_cpu_s_per_call_hour": round(cpu(partial(seal, target)) * per_hour, 3),
        }
    return out


def one_call(pcm: bytes, storage_format: str, sealed: bool):
    settings.CALLRECORDER_STORAGE_FORMAT = storage_format
    settings.CALLRECORDER_ENCRYPTION_KEYS = sealing.new_key_spec() if sealed else ""
    call_uuid = str(uuid.uuid4())
    call = calls.call_for_socket(
        call_uuid=call_uuid, conversation_uuid=f"C-{call_uuid}"
    )
    spool = SpoolWriter(
        settings.SPOOL_DIR,
        call_uuid=call_uuid,
        conversation_uuid=call.conversation_uuid,
        sample_rate=16000,
    )
    for start in range(0, len(pcm), FRAME):
        spool.write(pcm[start : start + FRAME])

    async def finalise():
        stall = 0.0
        done = False

        async def ticker():
            nonlocal stall
            while not done:
                before = time.perf_counter()
                await asyncio.sleep(0.005)
                stall = max(stall, time.perf_counter() - before - 0.005)

        tick = asyncio.ensure_future(ticker())
        started = time.perf_counter()
        finished = await sync_to_async(spool.close, thread_sensitive=False)()
        recording = await sync_to_async(
            recordings.recording_finalize, thread_sensitive=False
        )(call=call, spool=finished)
        wall = time.perf_counter() - started
        done = True
        await tick
        return recording, wall, stall

    recording, wall, stall = asyncio.run(finalise())
    return recording, {
        "format": storage_format + (" sealed" if sealed else ""),
        "finalise_s": round(wall, 3),
        "loop_longest_stall_ms": round(stall * 1000, 1),
        "stored_bytes": recording.size_bytes,
    }


async def drain(response) -> int:
    return sum([len(chunk) async for chunk in response.streaming_content])


def range_times(recording, client: Client, repeats: int = 20) -> dict:
    middle = recording.size_bytes // 2
    header = f"bytes={middle}-{middle + 1024 * 1024 - 1}"
    url = recording.get_absolute_url()
    view = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url, HTTP_RANGE=header)
        async_to_sync(drain)(response)
        view.append(time.perf_counter() - started)
        assert response.status_code == 206
    reader = []
    for _ in range(repeats):
        started = time.perf_counter()
        with stored_audio.recording_open(recording) as stream:
            stream.seek(middle)
            stream.read(1024 * 1024)
        reader.append(time.perf_counter() - started)
    return {
        "view_ms": round(sorted(view)[repeats // 2] * 1000, 1),
        "reader_ms": round(sorted(reader)[repeats // 2] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    pcm = speech_pcm(args.minutes)
    result = {
        "minutes": args.minutes,
        "sizes_and_cpu": sizes_and_cpu(pcm, args.minutes),
    }
    finalise = []
    kept = {}
    for storage_format, sealed in [
        ("wav", False),
        ("wav", True),
        ("flac", False),
        ("flac", True),
        ("opus", False),
    ]:
        recording, figures = one_call(pcm, storage_format, sealed)
        finalise.append(figures)
        kept[figures["format"]] = (recording, settings.CALLRECORDER_ENCRYPTION_KEYS)
    result["finalise"] = finalise
    user = get_user_model().objects.create_superuser("bench", password="x" * 20)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    ranges = {}
    for name in ("flac", "flac sealed"):
        recording, keys = kept[name]
        settings.CALLRECORDER_ENCRYPTION_KEYS = keys
        settings.ACCESS_LOG_PLAY_WINDOW_SECONDS = 1e9
        ranges[name] = range_times(recording, client)
    result["range_1mib_middle_of_60min_flac"] = ranges
    print(json.dumps(result, indent=2))
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
