"""Finalise timed inside: the work the consumer's disconnect() does, on its own.

Writes a call's frames with the app's SpoolWriter, then times what
RecordingConsumer.disconnect() runs at hangup: SpoolWriter.close() (patch the
WAV header, fsync) and recordings.recording_finalize() (move into storage,
insert the Recording row). No server and no socket: this is the floor of the
finalise time measured end to end by run.py. Run it from the app's directory,
on a migrated database:

    DATABASE_URL=sqlite:////tmp/bench/fin.sqlite3 MEDIA_ROOT=/tmp/bench/fin/media \
    SPOOL_DIR=/tmp/bench/fin/spool .venv/bin/python bench/finalise.py --minutes 1 60
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid

sys.path.insert(0, os.getcwd())  # run from the app's directory
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callrecorder.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from recordings_app.audio.pcm import frame_bytes  # noqa: E402
from recordings_app.audio.spool import SpoolWriter  # noqa: E402
from recordings_app.services import calls, recordings  # noqa: E402


def one_call(minutes: float) -> dict:
    call_uuid = str(uuid.uuid4())
    call = calls.call_for_socket(
        call_uuid=call_uuid, conversation_uuid=f"CON-{call_uuid}"
    )
    spool = SpoolWriter(
        settings.SPOOL_DIR,
        call_uuid=call_uuid,
        conversation_uuid=call.conversation_uuid,
        sample_rate=16000,
        flush_seconds=settings.CALLRECORDER_SPOOL_FLUSH_SECONDS,
    )
    frame = os.urandom(frame_bytes(16000))
    frames = int(minutes * 60 * 50)
    started = time.perf_counter()
    for _ in range(frames):
        spool.write(frame)
    written = time.perf_counter()
    finished = spool.close()
    closed = time.perf_counter()
    recording = recordings.recording_finalize(call=call, spool=finished)
    stored = time.perf_counter()
    return {
        "minutes": minutes,
        "frames": recording.frame_count,
        "size_bytes": recording.size_bytes,
        "write_us_per_frame": round((written - started) / frames * 1e6, 2),
        "close_ms": round((closed - written) * 1000, 1),
        "recording_finalize_ms": round((stored - closed) * 1000, 1),
        "finalise_ms": round((stored - written) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 60])
    args = parser.parse_args()
    print(json.dumps([one_call(minutes) for minutes in args.minutes]))


if __name__ == "__main__":
    main()
