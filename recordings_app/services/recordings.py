"""Recordings: a finished spool stored, an orphaned one recovered, pauses noted.

The spool file is removed only once the audio is in storage and its row is
saved; a failure at any step leaves enough in the spool folder for
recovery to finish the job (see audio.spool).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .. import metrics
from ..audio.codecs import decode_to_wav
from ..audio.peaks import wav_peaks
from ..audio.spool import (
    FinishedSpool,
    finishing_lock,
    note_stored,
    read_meta,
    recover_spool,
    stored_note,
)
from ..models import Call, CallEvent, LiveSocket, Recording
from . import webhooks
from .calls import call_for_socket
from .live_sockets import live_sockets_end
from .stored_audio import (
    discard_work_files,
    recording_open,
    stored_form,
    work_folder,
)

logger = logging.getLogger(__name__)


class SpoolFile(File):
    """A finished spool handed to storage.

    `temporary_file_path` lets FileSystemStorage move the file into place
    (a rename on the same filesystem) instead of copying it; other storages
    read it as a normal file.
    """

    def temporary_file_path(self) -> str:
        return self.file.name


@metrics.counts_recordings(via="socket")
def recording_finalize(*, call: Call, spool: FinishedSpool) -> Recording | None:
    """Store a finished spool as the call's Recording; a silent socket stores nothing.

    If the row fails after the file has moved, the note left in the spool's
    metadata says where the file went, and recovery saves the row.
    """
    with finishing_lock(spool.meta_path):
        return _store_spool(call=call, spool=spool, failure_announced=True)


def _store_spool(
    *, call: Call, spool: FinishedSpool, failure_announced: bool = False
) -> Recording | None:
    if spool.sample_count == 0:
        spool.discard()
        return None
    try:
        recording = _stored(call=call, spool=spool)
    except Exception as error:
        if failure_announced:  # the call's end; a recovery retry says nothing new
            _announce_failure(call, error)
        raise
    spool.meta_path.unlink(missing_ok=True)
    spool.path.unlink(missing_ok=True)  # still there when storage copied it
    discard_work_files(spool.path)
    return recording


def _announce_failure(call: Call, error: Exception) -> None:
    """recording.failed: the audio is kept in the spool, and recording.ready
    follows once recovery stores it. Only the kind of error goes out."""
    try:
        webhooks.webhook_event_queue(
            event="recording.failed",
            call=call,
            extra={"error": type(error).__name__, "kept_for_recovery": True},
        )
    except Exception:
        logger.exception("call %s: recording.failed not queued", call.pk)


def _stored(*, call: Call, spool: FinishedSpool) -> Recording:
    """The file in storage and its row (with recording.ready), committed."""
    figures = spool.figures()
    form = stored_form(
        wav_path=spool.path,
        to=settings.CALLRECORDER_STORAGE_FORMAT,
        wav_sha256=figures.sha256,
    )
    figures = replace(
        figures,
        format=form.format,
        size_bytes=form.size_bytes,
        sha256=form.sha256,
        key_id=form.key.key_id if form.key else "",
        wrapped_key=form.key.wrapped if form.key else "",
    )
    recording = Recording.from_figures(call=call, figures=figures)
    with open(form.path, "rb") as stored:
        recording.file.save(form.name, SpoolFile(stored), save=False)
    try:
        note_stored(spool.meta_path, name=recording.file.name, figures=figures)
    except OSError:
        logger.exception(
            "call %s: audio stored as %s but its spool metadata not updated",
            call.uuid or call.conversation_uuid,
            recording.file.name,
        )
    _save_and_announce(recording)
    return recording


@transaction.atomic
def _save_and_announce(recording: Recording) -> None:
    """The row, and recording.ready for the webhooks, in one transaction."""
    recording.save()
    webhooks.webhook_event_queue(
        event="recording.ready", call=recording.call, recording=recording
    )


def recording_peaks(*, recording: Recording) -> list[int]:
    """The waveform of a stored recording, read through the storage API."""
    with recording_open(recording) as audio:
        if recording.format == Recording.Format.WAV:
            return wav_peaks(audio)
        work = work_folder()  # plain audio stays in the private spool folder
        try:
            wav_path = work / "decoded.wav"
            decode_to_wav(
                audio,
                wav_path,
                sample_rate=recording.sample_rate,
                sample_count=recording.sample_count,
            )
            with open(wav_path, "rb") as decoded:
                return wav_peaks(decoded)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def recording_peaks_fill(*, recording: Recording) -> list[int]:
    """Give a recording stored without a waveform (or a stale one) its peaks."""
    peaks = recording_peaks(recording=recording)
    Recording.objects.filter(pk=recording.pk).update(peaks=peaks)
    return peaks


@metrics.counts_recordings(via="recovery")
def recording_recover(*, meta_path: Path) -> Recording | None:
    """Turn an orphaned spool (its writer died, or storage failed) into a Recording.

    Raises SpoolInUse for a live call's spool, BrokenSpool for one that
    cannot be read; either way the spool stays where it is.
    """
    with finishing_lock(meta_path):
        return _recover(meta_path)


def _recover(meta_path: Path) -> Recording | None:
    meta = read_meta(meta_path)
    call = call_for_socket(
        call_uuid=meta.get("call_uuid", ""),
        conversation_uuid=meta.get("conversation_uuid", ""),
    )
    # A spool recovered long after (its machine was down for a while) may
    # find its call purged and made afresh: it keeps the day it happened,
    # which retention goes by.
    spooled_at = parse_datetime(str(meta.get("started_at", "")))
    if spooled_at is not None and spooled_at < call.started_at:
        call.started_at = spooled_at
        call.save(update_fields=["started_at", "updated_at"])
    audio_name = meta_path.with_suffix(".wav").name
    stored = stored_note(meta)
    if stored and default_storage.exists(stored[0]):
        # The file reached storage; only the row is missing (unless it was
        # saved and only the spool's clean-up failed: then it is not again).
        name, figures = stored
        recording = Recording.objects.filter(file=name).first()
        if recording is not None:
            meta_path.unlink()
            meta_path.with_suffix(".wav").unlink(missing_ok=True)
            discard_work_files(meta_path.with_suffix(".wav"))
            live_sockets_end(spool_name=audio_name)
            return recording
        recording = Recording.from_figures(call=call, figures=figures)
        recording.file.name = name
        if figures.peaks is None:  # noted before waveforms were kept
            recording.peaks = recording_peaks(recording=recording)
        _save_and_announce(recording)
        meta_path.unlink()
        meta_path.with_suffix(".wav").unlink(missing_ok=True)
        discard_work_files(meta_path.with_suffix(".wav"))
        live_sockets_end(spool_name=audio_name)
        return recording
    # Raises SpoolInUse while a live call's writer holds the spool: its row stays.
    spool = recover_spool(meta_path)
    live_sockets_end(spool_name=audio_name)
    return _store_spool(call=call, spool=spool)


@transaction.atomic
def recording_pause_record(
    *, live_socket_id: int, paused: bool, by: str, at_seconds: float
) -> CallEvent | None:
    """Put a pause or a resume on the call's timeline, with who did it and when.

    Called by the recording socket once it has actually paused or resumed,
    so the timeline never claims a pause that did not happen.
    """
    live = LiveSocket.objects.select_for_update().filter(pk=live_socket_id).first()
    if live is None:
        return None
    live.paused = paused
    live.paused_by = by if paused else ""
    live.save(update_fields=["paused", "paused_by"])
    now = timezone.now()
    return CallEvent.objects.create(
        call_id=live.call_id,
        source=CallEvent.Source.STAFF,
        status="recording:paused" if paused else "recording:resumed",
        timestamp=now,
        payload={"by": by, "at_seconds": round(at_seconds, 2)},
        fingerprint=f"staff:{live.pk}:{now.isoformat()}:{paused}",
    )


def recording_ended_paused_record(*, call: Call, at_seconds: float) -> CallEvent:
    """A call that ended while paused says so on its timeline."""
    now = timezone.now()
    return CallEvent.objects.create(
        call=call,
        source=CallEvent.Source.STAFF,
        status="recording:ended-paused",
        timestamp=now,
        payload={"at_seconds": round(at_seconds, 2)},
        fingerprint=f"ended-paused:{now.isoformat()}",
    )
