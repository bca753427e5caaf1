"""Archiving: older recordings converted in place (to FLAC or Opus), and key rotation.

A conversion stores the new file, then updates the row, then deletes the
old file, in that order: a failure at any step leaves the old file and a
row that still points to it. Lossless sources are checked against their
PCM SHA-256 before anything is written, so a damaged file is never passed
off as a faithful copy. Opus is lossy: legal hold stops it (not FLAC).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from ..audio import codecs
from ..audio.hashing import wav_hashes
from ..audio.sealing import SealError
from ..audio.spool import private_file
from ..models import AccessLogEntry, Recording
from .access import System, access_log_append
from .retention import RetentionSchedule
from .stored_audio import (
    StoredForm,
    keyring,
    recording_open,
    stored_form,
    work_folder,
)

logger = logging.getLogger(__name__)

# What each target converts from: nothing is converted out of Opus (its
# losses cannot be undone) and nothing to the format it already has.
_SOURCES = {codecs.FLAC: [codecs.WAV], codecs.OPUS: [codecs.WAV, codecs.FLAC]}


ARCHIVE_COMMAND = System("manage.py archive_recordings")


class NotConverted(Exception):
    """A recording was left as it was; the message says why."""


@dataclass
class ArchiveReport:
    """What an archive run found, converted, and left."""

    to: str
    cutoff: datetime
    dry_run: bool
    recordings: int = 0
    bytes: int = 0
    held: int = 0  # on legal hold, so not made lossy
    converted: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    failures: list[str] = field(default_factory=list)
    more: bool = False


def _convertible(to: str) -> Q:
    """From a format `to` is made from; or, with encryption on, `to` itself
    unsealed (stored before the keys were set): it is sealed in passing."""
    condition = Q(format__in=_SOURCES[to])
    if keyring() is not None:
        condition |= Q(format=to, key_id="")
    return condition


def archivable(cutoff: datetime, to: str) -> QuerySet[Recording]:
    """Recordings started before cutoff that an archive to `to` would convert."""
    found = Recording.objects.filter(_convertible(to), started_at__lt=cutoff)
    if to == codecs.OPUS:
        found = found.exclude(call__legal_hold=True)
    return found


def _check_whole_file(recording: Recording) -> None:
    """A recording stored before PCM hashes were kept: its file's own hash."""
    if not recording.sha256:
        raise NotConverted("it has no hash to check its audio against; left as it is")
    digest = hashlib.sha256()
    with recording_open(recording) as stored:
        while chunk := stored.read(1024 * 1024):
            digest.update(chunk)
    if digest.hexdigest() != recording.sha256:
        raise NotConverted(
            "its file does not match its SHA-256 (the stored file is damaged); "
            "left as it is"
        )


def archive_recordings(
    *,
    cutoff: datetime,
    to: str,
    dry_run: bool,
    limit: int | None = None,
    by: Any = ARCHIVE_COMMAND,
) -> ArchiveReport:
    """Convert every archivable recording (or the oldest `limit`), one at a time.

    A run that converts anything, or fails to, goes into the access log.
    """
    found = archivable(cutoff, to)
    report = ArchiveReport(to=to, cutoff=cutoff, dry_run=dry_run)
    report.recordings = found.count()
    report.bytes = found.aggregate(total=Sum("size_bytes"))["total"] or 0
    if to == codecs.OPUS:
        report.held = Recording.objects.filter(
            _convertible(to), started_at__lt=cutoff, call__legal_hold=True
        ).count()
    if dry_run:
        return report
    ids = list(found.order_by("started_at", "pk").values_list("pk", flat=True))
    if limit is not None:
        report.more = len(ids) > limit
        ids = ids[:limit]
    for recording_id in ids:
        recording = Recording.objects.select_related("call").get(pk=recording_id)
        before = recording.size_bytes
        try:
            converted = recording_convert(recording=recording, to=to)
        except (NotConverted, SealError, codecs.UnreadableAudio, OSError) as error:
            report.failures.append(f"recording {recording_id}: not converted ({error})")
            continue
        except Exception as error:  # one recording failing must not stall the rest
            logger.exception("archive: recording %s failed; kept", recording_id)
            report.failures.append(f"recording {recording_id}: not converted ({error})")
            continue
        report.converted += 1
        report.bytes_before += before
        report.bytes_after += converted.size_bytes
    if report.converted or report.failures:
        access_log_append(
            action=AccessLogEntry.Action.ARCHIVE,
            user=by,
            ip_address=None,
            detail={
                "to": to,
                "cutoff": cutoff.isoformat(),
                "converted": report.converted,
                "bytes_before": report.bytes_before,
                "bytes_after": report.bytes_after,
                "failures": len(report.failures),
            },
        )
    return report


def recording_convert(*, recording: Recording, to: str) -> Recording:
    """Store the recording's audio as `to` (sealed if keys are set), in place."""
    reseal = recording.format == to and not recording.sealed and keyring()
    if recording.format not in _SOURCES[to] and not reseal:
        raise NotConverted(f"it is {recording.format}; {to} is not made from that")
    if not recording.pcm_sha256:
        _check_whole_file(recording)
    work = work_folder()
    try:
        # A name of its own: two runs converting the same recording at once
        # never overwrite (nor, cleaning up, delete) each other's file.
        stem = os.path.basename(recording.file.name).partition(".")[0]
        wav_path = work / f"{stem}-{secrets.token_hex(3)}.wav"
        if reseal:
            form, pcm_sha256 = _sealed_as_is(recording, wav_path, to)
        else:
            form, pcm_sha256 = _converted(recording, wav_path, to)
        storage = recording.file.storage
        folder = os.path.dirname(recording.file.name)
        with open(form.path, "rb") as new_file:
            new_name = storage.save(f"{folder}/{form.name}", File(new_file))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    old_name = recording.file.name
    try:
        updated = _point_row_at(recording, to, new_name, form, pcm_sha256)
    except Exception:
        storage.delete(new_name)
        raise
    if updated is None:
        storage.delete(new_name)
        raise NotConverted(
            "it was deleted, converted by another run, or put on legal hold, meanwhile"
        )
    try:
        storage.delete(old_name)
    except Exception as error:
        logger.exception("archive: %s converted, old file %s left", new_name, old_name)
        raise NotConverted(
            f"converted to {new_name}, but the old file {old_name} could not be "
            f"deleted ({error}): delete it by hand"
        ) from None
    return updated


def _converted(recording: Recording, wav_path: Path, to: str):
    """Decode the stored audio and encode it as `to`; checked against its hash."""
    with recording_open(recording) as stored:
        codecs.decode_to_wav(
            stored,
            wav_path,
            sample_rate=recording.sample_rate,
            sample_count=recording.sample_count,
        )
    wav_sha256, pcm_sha256 = wav_hashes(wav_path)
    # Every source here is lossless: its PCM is the recorded PCM, to the bit.
    if recording.pcm_sha256 and pcm_sha256 != recording.pcm_sha256:
        raise NotConverted(
            "its audio does not match its PCM SHA-256 (the stored file is "
            "damaged); left as it is"
        )
    return stored_form(wav_path=wav_path, to=to, wav_sha256=wav_sha256), pcm_sha256


def _sealed_as_is(recording: Recording, wav_path: Path, to: str):
    """The stored file copied out as it is, then sealed: no second encoding."""
    plain = wav_path.with_suffix(f".{codecs.EXTENSIONS[to]}")
    with (
        recording_open(recording) as stored,
        open(plain, "xb", opener=private_file) as copy,
    ):
        shutil.copyfileobj(stored, copy)
    form = stored_form(wav_path=plain, to=to, wav_sha256=recording.sha256, encoded=True)
    return form, recording.pcm_sha256


@transaction.atomic
def _point_row_at(
    recording: Recording, to: str, new_name: str, form: StoredForm, pcm_sha256: str
) -> Recording | None:
    row = (
        Recording.objects.select_for_update()
        .select_related("call")
        .filter(pk=recording.pk, file=recording.file.name)
        .first()
    )
    if row is None or (to == codecs.OPUS and row.call.legal_hold):
        return None
    row.file.name = new_name
    row.format = to
    row.size_bytes = form.size_bytes
    row.sha256 = form.sha256
    row.pcm_sha256 = pcm_sha256
    row.key_id = form.key.key_id if form.key else ""
    row.wrapped_key = form.key.wrapped if form.key else ""
    row.save(
        update_fields=[
            "file",
            "format",
            "size_bytes",
            "sha256",
            "pcm_sha256",
            "key_id",
            "wrapped_key",
        ]
    )
    return row


# Recordings one automatic run converts at most: encoding takes a while
# (Opus about 5% of the call's length on one core), so a backlog is worked
# off by later runs.
ARCHIVE_BATCH = 50
schedule = RetentionSchedule()


def archive_if_due() -> ArchiveReport | None:
    """Convert recordings older than CALLRECORDER_ARCHIVE_AFTER_DAYS, once an interval.

    Called where the retention purge is; errors are logged, never raised.
    """
    days = settings.CALLRECORDER_ARCHIVE_AFTER_DAYS
    if not days or not schedule.claim(settings.CALLRECORDER_RETENTION_CHECK_SECONDS):
        return None
    cutoff = timezone.now() - timedelta(days=days)
    to = settings.CALLRECORDER_ARCHIVE_FORMAT
    try:
        report = archive_recordings(
            cutoff=cutoff,
            to=to,
            dry_run=False,
            limit=ARCHIVE_BATCH,
            by=System("automatic archive"),
        )
    except Exception:
        logger.exception("automatic archive failed")
        return None
    if report.more and not report.failures:
        schedule.reset()
    if report.converted or report.failures:
        logger.info(
            "archive (%s days, to %s): converted %s recording(s), %s -> %s bytes; "
            "%s failure(s)",
            days,
            to,
            report.converted,
            report.bytes_before,
            report.bytes_after,
            len(report.failures),
        )
    for failure in report.failures:
        logger.warning("archive: %s", failure)
    return report
