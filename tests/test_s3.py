"""Recordings in S3-compatible storage, against a real S3 server (moto server)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from recordings_app.models import Call, Recording
from recordings_app.simulator import CallPlan, beep_tone, play_call

from .conftest import free_port, running_server, wait_for_recordings

pytestmark = pytest.mark.e2e
BUCKET = "callrecorder-test"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def s3_endpoint(tmp_path) -> Iterator[str]:
    """A moto S3 server in its own process, with an empty bucket."""
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError((tmp_path / "moto.log").read_text()) from None
            time.sleep(0.1)
    client(endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    process.terminate()
    process.wait(timeout=10)
    log.close()


def client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def s3_server(s3_endpoint, settings, monkeypatch, transactional_db, tmp_path):
    """Daphne and this test process, both storing recordings in the bucket."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    env = {
        **CREDENTIALS,
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
    }
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "default_acl": "private",
                "file_overwrite": False,
            },
        },
    }
    with running_server(settings, tmp_path, extra_env=env) as server:
        yield server


def record_a_call(server) -> tuple[bytes, object]:
    async def play():
        async with httpx.AsyncClient(timeout=20) as http:
            plan = CallPlan(audio=lambda rate: beep_tone(rate, 1.0), realtime=False)
            return await play_call(http, server.url, plan)

    sent = asyncio.run(play())
    [recording] = wait_for_recordings(sent.uuid)
    return sent.audio, recording


def test_a_finished_call_is_uploaded_and_nothing_stays_on_disk(
    s3_server, s3_endpoint, settings
):
    audio, recording = record_a_call(s3_server)

    stored = client(s3_endpoint).get_object(Bucket=BUCKET, Key=recording.file.name)
    wav_bytes = stored["Body"].read()
    assert wav_bytes[44:] == audio
    assert len(wav_bytes) == recording.size_bytes
    assert list(settings.SPOOL_DIR.iterdir()) == []
    assert not (settings.MEDIA_ROOT / recording.file.name).exists()


def test_range_playback_through_the_media_view(s3_server, session_cookies):
    audio, recording = record_a_call(s3_server)

    response = httpx.get(
        s3_server.url + recording.get_absolute_url(),
        headers={"Range": "bytes=1044-"},
        cookies=session_cookies,
    )

    assert response.status_code == 206
    assert response.content == audio[1000:]


def test_storage_url_delivery_hands_out_a_signed_url_that_seeks(
    s3_server, user_client, settings
):
    audio, recording = record_a_call(s3_server)
    settings.RECORDINGS_DELIVERY = "storage-url"

    redirect = user_client.get(recording.get_absolute_url())
    signed_url = redirect["Location"]
    unsigned = httpx.get(signed_url.split("?")[0])
    seek = httpx.get(signed_url, headers={"Range": "bytes=44-143"})

    assert redirect.status_code == 302
    assert "Signature" in signed_url or "X-Amz-Signature" in signed_url
    assert unsigned.status_code == 403  # private: no URL works without a signature
    assert seek.status_code == 206
    assert seek.content == audio[:100]


def test_deleting_in_the_admin_removes_the_object(s3_server, s3_endpoint, admin_client):
    _, recording = record_a_call(s3_server)

    admin_client.post(
        reverse("admin:recordings_app_recording_delete", args=[recording.pk]),
        {"post": "yes"},
    )

    with pytest.raises(ClientError, match="404"):
        client(s3_endpoint).head_object(Bucket=BUCKET, Key=recording.file.name)


def test_the_retention_purge_removes_the_object_and_the_row(s3_server, s3_endpoint):
    _, recording = record_a_call(s3_server)
    Call.objects.filter(pk=recording.call_id).update(
        started_at=timezone.now() - timedelta(days=40)
    )

    call_command("purge_recordings", "--older-than", "30d", "--yes", stdout=StringIO())

    with pytest.raises(ClientError, match="404"):
        client(s3_endpoint).head_object(Bucket=BUCKET, Key=recording.file.name)
    assert not Recording.objects.filter(pk=recording.pk).exists()
