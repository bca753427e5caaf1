"""Retention: purge_recordings by hand, and the automatic purge."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from io import StringIO

import pytest
from channels.db import database_sync_to_async
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone

from recordings_app import selectors
from recordings_app.models import AccessLogEntry, Call, LiveSocket, Recording
from recordings_app.services import holds, recordings, retention

from .helpers import (
    crashed_writer,
    make_call,
    open_socket,
    pcm,
    record,
    recordings_of,
    send_frames,
)

pytestmark = pytest.mark.django_db

AUDIO = b"\x01\x02" * 3200  # 0.2 s at 16 kHz


@pytest.fixture(autouse=True)
def _fresh_retention_clock(monkeypatch) -> None:
    """Each test starts as a new process would: no automatic purge run yet."""
    monkeypatch.setattr(retention, "schedule", retention.RetentionSchedule())


def old_call(n: int, days: float, settings, **fields) -> Recording:
    call = make_call(n, started_at=timezone.now() - timedelta(days=days), **fields)
    return record(call, AUDIO, settings.SPOOL_DIR)


def purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_recordings", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_a_dry_run_says_what_would_go_and_deletes_nothing(settings):
    old = [old_call(1, 40, settings), old_call(2, 35, settings)]
    old_call(3, 5, settings)

    output = purge("--older-than", "30d")

    assert "2 call(s), 2 recording(s)" in output
    assert f"({2 * old[0].size_bytes} bytes)" in output
    assert f"oldest {old[0].call.started_at:%Y-%m-%d %H:%M}" in output
    assert f"newest {old[1].call.started_at:%Y-%m-%d %H:%M}" in output
    assert "Dry run: nothing was deleted." in output
    assert Call.objects.count() == 3
    assert all(default_storage.exists(r.file.name) for r in old)


def test_yes_deletes_old_calls_files_and_rows_and_keeps_new_ones(settings):
    old = old_call(1, 40, settings)
    new = old_call(2, 5, settings)

    output = purge("--older-than", "30d", "--yes")

    assert "Deleted 1 call(s), 1 recording(s)" in output
    assert not default_storage.exists(old.file.name)
    assert not Call.objects.filter(pk=old.call_id).exists()
    assert not Recording.objects.filter(pk=old.pk).exists()
    assert default_storage.exists(new.file.name)
    assert Recording.objects.filter(pk=new.pk).exists()
    # Who deleted what stays answerable: the access log names the purge.
    entry = AccessLogEntry.objects.get(recording_id=old.pk)
    assert (entry.action, entry.username) == ("delete", "retention purge")


def test_a_call_on_legal_hold_is_never_purged(settings, admin_user):
    held = old_call(1, 400, settings)
    holds.legal_hold_set(call=held.call, on=True, by=admin_user)

    output = purge("--older-than", "1h", "--yes")

    assert "(1 older call(s) on legal hold are kept)" in output
    assert Recording.objects.filter(pk=held.pk).exists()
    assert default_storage.exists(held.file.name)


def test_a_call_in_progress_is_never_purged(settings):
    live = old_call(1, 40, settings)
    LiveSocket.objects.create(
        call=live.call, channel_name="c1", spool_name="s1.wav", sample_rate=16000
    )

    output = purge("--older-than", "30d", "--yes")

    assert "Nothing to purge." in output
    assert default_storage.exists(live.file.name)


@pytest.mark.parametrize("age", ["30", "thirty days", "0d", "-3d", "5m", ""])
def test_a_bad_age_is_refused_with_a_clear_error(age):
    with pytest.raises(CommandError, match="is not an age: use a whole number"):
        purge(f"--older-than={age}")


@pytest.mark.parametrize(
    ("age", "expected"),
    [("12h", timedelta(hours=12)), ("30d", timedelta(days=30)), ("2w", timedelta(14))],
)
def test_ages_in_hours_days_and_weeks(age, expected):
    from recordings_app.management.commands.purge_recordings import parse_age

    assert parse_age(age) == expected


def test_a_file_that_cannot_be_deleted_keeps_its_row(settings, monkeypatch):
    stuck = old_call(1, 40, settings)
    other = old_call(2, 40, settings)
    real_delete = FileSystemStorage.delete

    def delete(storage, name):
        if name == stuck.file.name:
            raise OSError("storage unavailable")
        real_delete(storage, name)

    monkeypatch.setattr(FileSystemStorage, "delete", delete)

    with pytest.raises(CommandError, match="1 failure.*kept"):
        purge("--older-than", "30d", "--yes")

    assert Recording.objects.filter(pk=stuck.pk).exists()
    assert default_storage.exists(stuck.file.name)
    assert Call.objects.filter(pk=stuck.call_id).exists()
    assert not Recording.objects.filter(pk=other.pk).exists()
    assert not default_storage.exists(other.file.name)


def test_a_call_that_fails_to_purge_is_reported_and_the_others_still_go(
    settings, monkeypatch
):
    stuck = old_call(1, 50, settings)  # the oldest: purged first
    other = old_call(2, 40, settings)
    real_append = retention.access_log_append

    def access_log_append(*, recording=None, **kwargs):
        if recording is not None and recording.pk == stuck.pk:
            raise RuntimeError("access log unavailable")
        return real_append(recording=recording, **kwargs)

    monkeypatch.setattr(retention, "access_log_append", access_log_append)
    out = StringIO()

    with pytest.raises(CommandError, match="1 failure"):
        call_command(
            "purge_recordings", "--older-than", "30d", "--yes", stdout=out, stderr=out
        )

    output = out.getvalue()
    assert "Deleted 1 call(s), 1 recording(s)" in output
    assert f"call {stuck.call_id}: not purged (access log unavailable)" in output
    assert Recording.objects.filter(pk=stuck.pk).exists()
    assert not Call.objects.filter(pk=other.call_id).exists()
    assert not default_storage.exists(other.file.name)


def test_automatic_retention_purges_when_set(settings):
    settings.CALLRECORDER_RETENTION_DAYS = 30
    old = old_call(1, 31, settings)
    new = old_call(2, 29, settings)

    report = retention.retention_purge_if_due()

    assert report.deleted_calls == 1
    assert not default_storage.exists(old.file.name)
    assert list(Call.objects.all()) == [new.call]


def test_automatic_retention_does_nothing_when_unset(settings):
    settings.CALLRECORDER_RETENTION_DAYS = None
    old = old_call(1, 3000, settings)

    assert retention.retention_purge_if_due() is None
    assert default_storage.exists(old.file.name)


def test_automatic_retention_runs_at_most_once_an_interval(settings):
    settings.CALLRECORDER_RETENTION_DAYS = 30
    settings.CALLRECORDER_RETENTION_CHECK_SECONDS = 3600
    retention.retention_purge_if_due()
    later = old_call(1, 31, settings)

    assert retention.retention_purge_if_due() is None
    assert Recording.objects.filter(pk=later.pk).exists()

    settings.CALLRECORDER_RETENTION_CHECK_SECONDS = 0
    assert retention.retention_purge_if_due().deleted_calls == 1


def test_recover_recordings_runs_the_automatic_purge(settings):
    settings.CALLRECORDER_RETENTION_DAYS = 30
    old = old_call(1, 31, settings)
    out = StringIO()

    call_command("recover_recordings", stdout=out)

    assert "Retention (30 days): 1 call(s) purged." in out.getvalue()
    assert not Call.objects.filter(pk=old.call_id).exists()


def test_of_many_threads_finishing_calls_at_once_one_purges(settings, monkeypatch):
    settings.CALLRECORDER_RETENTION_DAYS = 30
    purges = []

    def slow_purge(cutoff, *, dry_run, limit=None):
        purges.append(cutoff)
        time.sleep(0.2)  # still purging while the others ask
        return retention.PurgeReport(cutoff=cutoff, dry_run=dry_run)

    monkeypatch.setattr(retention, "purge_calls_older_than", slow_purge)
    start = threading.Barrier(8)

    def finish_a_call():
        start.wait()
        return retention.retention_purge_if_due()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: finish_a_call(), range(8)))

    assert len(purges) == 1
    assert sum(result is not None for result in results) == 1


def test_a_backlog_is_purged_a_batch_a_run_without_waiting(settings, monkeypatch):
    settings.CALLRECORDER_RETENTION_DAYS = 30
    monkeypatch.setattr(retention, "RETENTION_BATCH", 2)
    old = [old_call(n, 40 + n, settings) for n in range(3)]

    first = retention.retention_purge_if_due()
    second = retention.retention_purge_if_due()

    assert (first.deleted_calls, first.more) == (2, True)
    assert (second.deleted_calls, second.more) == (1, False)
    assert not Recording.objects.filter(pk__in=[r.pk for r in old]).exists()
    assert retention.retention_purge_if_due() is None  # caught up: wait now


@pytest.mark.django_db(transaction=True)
async def test_a_call_ending_runs_the_automatic_purge(settings):
    settings.CALLRECORDER_RETENTION_DAYS = 30
    old = await database_sync_to_async(old_call)(90, 31, settings)
    recorder = await open_socket()
    await send_frames(recorder, pcm(0.2, 16000), 640)
    await recorder.disconnect()

    for _ in range(100):
        if not await Call.objects.filter(pk=old.call_id).aexists():
            break
        await asyncio.sleep(0.05)
    assert not await Call.objects.filter(pk=old.call_id).aexists()
    assert not default_storage.exists(old.file.name)
    assert len(await recordings_of()) == 1  # the call that just ended is kept


def test_a_call_recovered_after_its_purge_keeps_the_day_it_happened(settings):
    """A machine down for weeks recovers a spool whose call retention purged
    meanwhile: the call comes back with its own date, and goes with the next
    purge rather than being kept for another full period."""
    crashed_writer(settings.SPOOL_DIR, pcm(0.2, 16000))
    [meta_path] = settings.SPOOL_DIR.glob("*.json")
    started = timezone.now() - timedelta(days=60)
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "started_at": started.isoformat()}))

    recording = recordings.recording_recover(meta_path=meta_path)
    assert recording.call.started_at == started
    cutoff = timezone.now() - timedelta(days=30)
    assert selectors.purgeable_calls(cutoff).filter(pk=recording.call_id).exists()
