"""Recordings in S3-compatible storage, against a real S3 server (moto server)."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

import httpx
import pytest
from botocore.exceptions import ClientError
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from recordings_app.audio import sealing
from recordings_app.models import Call, Recording
from recordings_app.simulator.caller import CallPlan, play_call
from recordings_app.simulator.sounds import beep_tone

from .helpers import (
    S3_BUCKET,
    body,
    make_call,
    record,
    running_server,
    s3_client,
    speech,
    use_s3,
    wait_for_recordings,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def s3_server(s3_endpoint, settings, monkeypatch, transactional_db, tmp_path):
    """Daphne and this test process, both storing recordings in the bucket."""
    env = use_s3(s3_endpoint, settings, monkeypatch)
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

    stored = s3_client(s3_endpoint).get_object(
        Bucket=S3_BUCKET, Key=recording.file.name
    )
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
        s3_client(s3_endpoint).head_object(Bucket=S3_BUCKET, Key=recording.file.name)


def test_the_retention_purge_removes_the_object_and_the_row(s3_server, s3_endpoint):
    _, recording = record_a_call(s3_server)
    Call.objects.filter(pk=recording.call_id).update(
        started_at=timezone.now() - timedelta(days=40)
    )

    call_command(
        "purge_recordings", "--older-than", "30d", "--yes", stdout=io.StringIO()
    )

    with pytest.raises(ClientError, match="404"):
        s3_client(s3_endpoint).head_object(Bucket=S3_BUCKET, Key=recording.file.name)
    assert not Recording.objects.filter(pk=recording.pk).exists()


def test_compute_peaks_reads_the_waveform_back_from_the_bucket(s3_server):
    _, recording = record_a_call(s3_server)
    drawn = recording.peaks
    # beep_tone: 12000 of 32768 for half a second, then half a second of silence
    assert max(drawn[:500]) == round(12000 * 1000 / 32768)
    assert set(drawn[520:980]) == {0}
    Recording.objects.update(peaks=[])

    call_command("compute_peaks", stdout=io.StringIO())

    recording.refresh_from_db()
    assert recording.peaks == drawn


def test_a_sealed_flac_is_ciphertext_in_the_bucket_and_plays_back(
    s3_endpoint, settings, monkeypatch, transactional_db, tmp_path, session_cookies
):
    keys = sealing.new_key_spec()
    settings.CALLRECORDER_ENCRYPTION_KEYS = keys
    env = use_s3(s3_endpoint, settings, monkeypatch) | {
        "CALLRECORDER_STORAGE_FORMAT": "flac",
        "CALLRECORDER_ENCRYPTION_KEYS": keys,
    }
    with running_server(settings, tmp_path, extra_env=env) as server:
        audio, recording = record_a_call(server)
        stored = (
            s3_client(s3_endpoint)
            .get_object(Bucket=S3_BUCKET, Key=recording.file.name)["Body"]
            .read()
        )
        downloaded = httpx.get(
            server.url + recording.get_download_url(), cookies=session_cookies
        )
        original = httpx.get(
            server.url + recording.get_original_url(), cookies=session_cookies
        )
        seek = httpx.get(
            server.url + recording.get_absolute_url(),
            headers={"Range": "bytes=100-"},
            cookies=session_cookies,
        )

    assert recording.format == "flac" and recording.sealed
    assert not any(magic in stored for magic in (b"RIFF", b"fLaC", b"OggS"))
    assert len(stored) == sealing.sealed_size(recording.size_bytes)
    assert downloaded.content[44:] == audio
    assert original.content[:4] == b"fLaC"
    assert seek.status_code == 206 and seek.content == original.content[100:]
    assert list(settings.SPOOL_DIR.iterdir()) == []  # no plain or work file left


def test_a_seek_in_a_sealed_recording_fetches_only_its_chunks(
    s3_endpoint, settings, monkeypatch, user_client
):
    from storages.backends.s3 import S3File

    use_s3(s3_endpoint, settings, monkeypatch)
    settings.CALLRECORDER_ENCRYPTION_KEYS = sealing.new_key_spec()
    audio = speech()
    recording = record(make_call(1), audio, settings.SPOOL_DIR)

    def whole_object(self, *args, **kwargs):
        raise AssertionError("the whole object was downloaded")

    monkeypatch.setattr(S3File, "_get_file", whole_object)
    middle = recording.size_bytes // 2
    response = user_client.get(
        recording.get_absolute_url(), HTTP_RANGE=f"bytes={middle}-{middle + 99}"
    )
    downloaded = user_client.get(recording.get_download_url())

    assert response.status_code == 206
    assert body(response) == audio[middle - 44 : middle + 56]
    assert body(downloaded)[44:] == audio
