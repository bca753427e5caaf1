"""Files holding calls or secrets are the server's own (issue 15, first slice).

Spools and their metadata, stored recordings, the SQLite database and the
development secret key are created 0600, in folders made 0700: another
user of the machine reads none of them.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from recordings_app.audio.spool import SpoolWriter

from .helpers import ROOT, make_call, pcm, record


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_live_calls_spool_is_readable_by_the_server_only(tmp_path):
    spool_dir = tmp_path / "new" / "spool"
    writer = SpoolWriter(
        spool_dir, call_uuid="CALL-1", conversation_uuid="CON-1", sample_rate=16000
    )
    writer.write(bytes(640))

    modes = {mode(writer.path), mode(writer.meta_path)}
    writer.close()

    assert modes == {0o600}
    assert mode(spool_dir) == 0o700


@pytest.mark.django_db
def test_a_stored_recording_is_readable_by_the_server_only(settings):
    recording = record(make_call(1), pcm(0.2, 16000), settings.SPOOL_DIR)

    stored = Path(recording.file.path)

    assert mode(stored) == 0o600
    assert mode(stored.parent) == 0o700


def test_the_dev_database_and_secret_key_are_created_private(tmp_path):
    for package in ("callrecorder", "recordings_app"):
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc")
        )
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DATABASE_URL"}}
    subprocess.run(
        [sys.executable, "-c", "import callrecorder.settings"],
        cwd=tmp_path,
        env={**env, "SECRET_KEY": ""},
        check=True,
    )

    assert mode(tmp_path / ".dev-secret-key") == 0o600
    assert mode(tmp_path / "db.sqlite3") == 0o600


def test_recordings_nginx_sends_are_readable_by_the_servers_group():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import callrecorder.settings as s; print(oct(s.FILE_UPLOAD_PERMISSIONS),"
            " oct(s.FILE_UPLOAD_DIRECTORY_PERMISSIONS))",
        ],
        cwd=ROOT,
        env={**os.environ, "RECORDINGS_DELIVERY": "x-accel-redirect"},
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout.split() == ["0o640", "0o750"]
