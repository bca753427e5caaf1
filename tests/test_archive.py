"""manage.py archive_recordings: older recordings converted in place, nothing lost."""

from __future__ import annotations

import hashlib
import io
import os
import time
from datetime import timedelta

import pytest
from django.core.files.storage import FileSystemStorage
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from recordings_app.audio import codecs, sealing
from recordings_app.models import Recording
from recordings_app.services import archive, holds

from .helpers import body, make_call, record, speech

pytestmark = pytest.mark.django_db

SPEECH = speech("beckett-16k.wav")
WAV = codecs.wav_header(sample_rate=16000, sample_count=len(SPEECH) // 2) + SPEECH


def old_recording(settings, n: int, days: int = 40) -> Recording:
    recording = record(make_call(n), SPEECH, settings.SPOOL_DIR)
    Recording.objects.filter(pk=recording.pk).update(
        started_at=timezone.now() - timedelta(days=days)
    )
    recording.refresh_from_db()
    return recording


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("archive_recordings", *args, stdout=out, stderr=out)
    return out.getvalue()


def downloaded_wav(client, recording: Recording) -> bytes:
    url = reverse("recordings:recording_download", args=[recording.pk])
    return body(client.get(url))


def test_a_dry_run_says_what_would_be_converted_and_converts_nothing(settings):
    recording = old_recording(settings, 1)

    said = run("--older-than", "30d", "--to", "flac")

    assert "1 recording(s)" in said and "Dry run: nothing was converted" in said
    recording.refresh_from_db()
    assert recording.format == "wav" and recording.file.storage.exists(
        recording.file.name
    )


def test_older_recordings_become_flac_in_place_and_give_the_same_wav(
    settings, user_client
):
    old = old_recording(settings, 1)
    recent = record(make_call(2), SPEECH, settings.SPOOL_DIR)
    old_name, pcm_sha256 = old.file.name, old.pcm_sha256

    said = run("--older-than", "30d", "--to", "flac", "--yes")

    old.refresh_from_db()
    recent.refresh_from_db()
    assert "Converted 1 recording(s)" in said
    assert old.format == "flac" and old.file.name.endswith(".flac")
    assert old.pcm_sha256 == pcm_sha256
    assert old.size_bytes < 0.6 * len(WAV)
    assert not old.file.storage.exists(old_name)
    assert downloaded_wav(user_client, old) == WAV
    assert recent.format == "wav"


def test_legal_hold_stops_opus_but_not_flac(settings, user, user_client):
    held = old_recording(settings, 1)
    holds.legal_hold_set(call=held.call, on=True, by=user)

    to_opus = run("--older-than", "30d", "--to", "opus", "--yes")
    held.refresh_from_db()
    assert "1 on legal hold are kept as they are" in to_opus
    assert held.format == "wav"

    run("--older-than", "30d", "--to", "flac", "--yes")
    held.refresh_from_db()
    assert held.format == "flac"
    assert downloaded_wav(user_client, held) == WAV


def test_a_failure_to_store_the_new_file_leaves_the_old_one(
    settings, user_client, monkeypatch
):
    recording = old_recording(settings, 1)

    def full_disk(self, name, content, max_length=None):
        raise OSError("No space left on device")

    monkeypatch.setattr(FileSystemStorage, "save", full_disk)
    with pytest.raises(CommandError, match="1 failure"):
        run("--older-than", "30d", "--to", "flac", "--yes")
    monkeypatch.undo()

    recording.refresh_from_db()
    assert recording.format == "wav"
    assert downloaded_wav(user_client, recording) == WAV
    assert [p.name for p in settings.SPOOL_DIR.iterdir()] == []  # no work left


def test_an_old_file_that_cannot_be_deleted_is_reported_and_the_new_one_plays(
    settings, user_client, monkeypatch
):
    recording = old_recording(settings, 1)
    old_name = recording.file.name

    def refuses(self, name):
        raise PermissionError("read-only bucket")

    monkeypatch.setattr(FileSystemStorage, "delete", refuses)
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command(
            "archive_recordings",
            "--older-than",
            "30d",
            "--to",
            "flac",
            "--yes",
            stdout=out,
            stderr=out,
        )
    monkeypatch.undo()

    recording.refresh_from_db()
    assert f"the old file {old_name} could not be deleted" in out.getvalue()
    assert recording.format == "flac"
    assert downloaded_wav(user_client, recording) == WAV


def test_a_damaged_file_is_not_passed_off_as_a_faithful_copy(settings):
    recording = old_recording(settings, 1)
    with open(recording.file.path, "r+b") as handle:
        handle.seek(5000)
        handle.write(b"\x7f\x7f")

    with pytest.raises(CommandError):
        run("--older-than", "30d", "--to", "flac", "--yes")

    recording.refresh_from_db()
    assert recording.format == "wav"


def test_archiving_seals_under_the_current_key(settings, user_client):
    recording = old_recording(settings, 1)  # stored before encryption was on
    settings.CALLRECORDER_ENCRYPTION_KEYS = sealing.new_key_spec()

    run("--older-than", "30d", "--to", "opus", "--yes")

    recording.refresh_from_db()
    assert recording.sealed and recording.format == "opus"
    with recording.file.open("rb") as stored:
        assert b"OggS" not in stored.read()
    assert len(downloaded_wav(user_client, recording)) == len(WAV)


def test_archive_after_days_converts_automatically(settings):
    recording = old_recording(settings, 1)
    settings.CALLRECORDER_ARCHIVE_AFTER_DAYS = 30
    settings.CALLRECORDER_ARCHIVE_FORMAT = "flac"
    archive.schedule.reset()

    report = archive.archive_if_due()

    recording.refresh_from_db()
    assert report.converted == 1 and recording.format == "flac"
    assert archive.archive_if_due() is None  # not due again within the interval


def test_a_recording_from_before_pcm_hashes_is_checked_by_its_file_hash(
    settings, user_client
):
    intact = old_recording(settings, 1)
    damaged = old_recording(settings, 2)
    Recording.objects.update(pcm_sha256="")  # as stored before this release
    with open(damaged.file.path, "r+b") as handle:
        handle.truncate(len(WAV) // 4)  # three quarters of its audio lost

    with pytest.raises(CommandError, match="1 failure"):
        run("--older-than", "30d", "--to", "flac", "--yes")

    intact.refresh_from_db()
    damaged.refresh_from_db()
    assert intact.format == "flac"
    assert intact.pcm_sha256 == hashlib.sha256(SPEECH).hexdigest()  # filled in
    assert damaged.format == "wav" and damaged.file.storage.exists(damaged.file.name)


def test_turning_encryption_on_seals_older_flac_and_opus_as_they_are(
    settings, user_client
):
    settings.CALLRECORDER_STORAGE_FORMAT = "opus"
    recording = old_recording(settings, 1)
    with recording.file.open("rb") as stored:
        plain = stored.read()
    settings.CALLRECORDER_ENCRYPTION_KEYS = sealing.new_key_spec()

    said = run("--older-than", "30d", "--to", "opus", "--yes")

    recording.refresh_from_db()
    original = body(
        user_client.get(reverse("recordings:recording_original", args=[recording.pk]))
    )
    assert "Converted 1 recording(s)" in said
    assert recording.sealed and recording.format == "opus"
    assert original == plain  # sealed as it was: no second lossy encoding
    with recording.file.open("rb") as stored:
        assert b"OggS" not in stored.read()


def test_two_runs_converting_one_recording_never_lose_the_file(
    settings, user_client, monkeypatch
):
    recording = old_recording(settings, 1)
    other = Recording.objects.get(pk=recording.pk)  # another run's copy
    point_row_at = archive._point_row_at

    def other_run_commits_first(*args):
        monkeypatch.setattr(archive, "_point_row_at", point_row_at)
        archive.recording_convert(recording=other, to="flac")
        return point_row_at(*args)

    monkeypatch.setattr(archive, "_point_row_at", other_run_commits_first)
    with pytest.raises(archive.NotConverted, match="converted by another run"):
        archive.recording_convert(recording=recording, to="flac")

    recording.refresh_from_db()
    assert recording.format == "flac"
    assert downloaded_wav(user_client, recording) == WAV
    folder = settings.MEDIA_ROOT / os.path.dirname(recording.file.name)
    assert [path.name for path in folder.iterdir()] == [
        os.path.basename(recording.file.name)
    ]


def test_work_folders_a_killed_conversion_left_are_removed_at_recovery(settings):
    settings.SPOOL_DIR.mkdir(parents=True)
    left = settings.SPOOL_DIR / ".work-killed"
    left.mkdir()
    (left / "call.wav").write_bytes(WAV)  # plain audio of a sealed recording
    long_ago = time.time() - 7 * 3600
    os.utime(left, (long_ago, long_ago))
    fresh = settings.SPOOL_DIR / ".work-running"
    fresh.mkdir()

    out = io.StringIO()
    call_command("recover_recordings", stdout=out)

    assert not left.exists() and fresh.exists()
    assert "1 work folder(s) of killed conversions removed" in out.getvalue()
