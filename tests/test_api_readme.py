"""Every API example in the README, run with curl against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import wave

import pytest
from django.contrib.auth.models import User

from recordings_app.models import AccessLogEntry, Call
from recordings_app.services.api_tokens import api_token_create

from .helpers import LISTENER, ROOT, grant, make_call, pcm, record, require

pytestmark = pytest.mark.e2e


def readme_api_examples() -> list[str]:
    """The curl lines of the README's "HTTP API" section, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## HTTP API\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("curl ")]


def test_every_api_example_in_the_readme_works(daphne_server, settings, tmp_path):
    require("curl")
    examples = readme_api_examples()
    assert len(examples) >= 10
    audio = pcm(3.0, 16000, seed=3)
    call = make_call(1)
    Call.objects.filter(pk=call.pk).update(from_number="447700123456")
    recording = record(call, audio, settings.SPOOL_DIR)
    alice = grant(
        User.objects.create_user("alice"),
        *LISTENER,
        "delete_recording",
        "set_legal_hold",
    )
    env = {
        **os.environ,
        "CALLRECORDER": daphne_server.url,
        "TOKEN": api_token_create(user=alice, scope="read")[1],
        "WRITE_TOKEN": api_token_create(user=alice, scope="write")[1],
        "CALL": str(call.pk),
        "RECORDING": str(recording.pk),
    }

    for example in examples:
        ran = subprocess.run(
            ["bash", "-c", example], env=env, cwd=tmp_path, capture_output=True
        )
        assert ran.returncode == 0, (example, ran.stderr)
        if ran.stdout:
            json.loads(ran.stdout)  # every answer is JSON
        if "legal-hold" in example:
            held = example.startswith("curl -sf -X POST")
            assert json.loads(ran.stdout)["legal_hold"] is held

    listed = subprocess.run(
        ["bash", "-c", examples[0]], env=env, capture_output=True, check=True
    )
    [listed_call] = json.loads(listed.stdout)["results"]
    assert listed_call["recordings"] == []  # the last example deleted it
    assert not call.recordings.exists()
    with wave.open(str(tmp_path / "call.wav")) as wav:
        assert wav.readframes(wav.getnframes()) == audio
    start = (tmp_path / "start.wav").read_bytes()
    assert len(start) == 64000 and start.startswith(b"RIFF")
    downloads = AccessLogEntry.objects.filter(action="download", username="alice")
    assert downloads.exists()
