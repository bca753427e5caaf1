"""Every write to calls, events and recordings goes through these functions."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .audio import (
    FinishedSpool,
    finishing_lock,
    read_meta,
    recover_spool,
    wav_peaks,
)
from .live import CALLS_GROUP
from .models import (
    GENESIS_HASH,
    AccessLogEntry,
    Call,
    CallEvent,
    LiveSocket,
    Recording,
    UsedToken,
)
from .vonage import FINAL_STATUSES, STATUS_RANK, AnswerRequest, CallEventData

logger = logging.getLogger(__name__)


def _call_locked(*, conversation_uuid: str, leg_uuid: str) -> Call:
    """Find the call a message names, creating it if this is the first word of it.

    Joins legs on conversation_uuid first; an event that only names its leg
    is matched to the caller's leg or to a leg seen in an earlier event.
    """
    lookups = []
    if conversation_uuid:
        lookups.append(Q(conversation_uuid=conversation_uuid))
    if leg_uuid:
        lookups.append(Q(uuid=leg_uuid))
        lookups.append(Q(events__leg_uuid=leg_uuid))
    for lookup in lookups:
        call = Call.objects.select_for_update().filter(lookup).first()
        if call is not None:
            return call
    try:
        with transaction.atomic():
            return Call.objects.create(conversation_uuid=conversation_uuid or None)
    except IntegrityError:  # created by a concurrent request just now
        return Call.objects.select_for_update().get(conversation_uuid=conversation_uuid)


def _claim_caller_leg(call: Call, leg_uuid: str) -> None:
    if leg_uuid and not call.uuid and not Call.objects.filter(uuid=leg_uuid).exists():
        call.uuid = leg_uuid


def _advance_status(call: Call, status: str) -> None:
    if (
        STATUS_RANK.get(status, 0) >= STATUS_RANK.get(call.status, 0)
        and status in STATUS_RANK
    ):
        call.status = status


@transaction.atomic
def call_answer(*, answer: AnswerRequest) -> Call:
    """Record a call Vonage is asking us to answer. Idempotent: Vonage retries."""
    call = _call_locked(
        conversation_uuid=answer.conversation_uuid, leg_uuid=answer.uuid
    )
    _claim_caller_leg(call, answer.uuid)
    call.from_number = call.from_number or answer.from_number
    call.to_number = call.to_number or answer.to_number
    _advance_status(call, "started")
    call.save()
    return call


@transaction.atomic
def call_event_record(*, event: CallEventData) -> tuple[CallEvent, bool]:
    """Store one event webhook on its call; a repeated delivery changes nothing.

    Only the caller's leg updates the call's numbers, direction and status:
    the socket leg's events are kept on the timeline, as they came.
    """
    call = _call_locked(
        conversation_uuid=event.conversation_uuid,
        leg_uuid="" if event.is_websocket_leg else event.leg_uuid,
    )
    call_event, created = CallEvent.objects.get_or_create(
        call=call,
        fingerprint=event.fingerprint,
        defaults={
            "source": CallEvent.Source.WEBHOOK,
            "leg_uuid": event.leg_uuid,
            "is_websocket_leg": event.is_websocket_leg,
            "status": event.status,
            "timestamp": event.timestamp or timezone.now(),
            "payload": event.payload,
        },
    )
    if not created or event.is_websocket_leg:
        return call_event, created
    if event.conversation_uuid and not call.conversation_uuid:
        call.conversation_uuid = event.conversation_uuid
    _claim_caller_leg(call, event.leg_uuid)
    call.direction = event.direction or call.direction
    call.from_number = event.from_number or call.from_number
    call.to_number = event.to_number or call.to_number
    _advance_status(call, event.status)
    if event.start_time:
        call.started_at = event.start_time
    if event.end_time:
        call.ended_at = event.end_time
    elif event.status in FINAL_STATUSES and call.ended_at is None:
        call.ended_at = event.timestamp or timezone.now()
    if event.duration_seconds is not None:
        call.duration_seconds = event.duration_seconds
    call.save()
    return call_event, created


@transaction.atomic
def call_for_socket(*, call_uuid: str, conversation_uuid: str) -> Call:
    """The call an audio socket belongs to (created if no webhook named it yet)."""
    call = _call_locked(conversation_uuid=conversation_uuid, leg_uuid=call_uuid)
    _claim_caller_leg(call, call_uuid)
    if conversation_uuid and not call.conversation_uuid:
        call.conversation_uuid = conversation_uuid
    call.save()
    return call


def socket_event_record(
    *, call: Call, event: str, payload: dict[str, Any], fingerprint: str
) -> CallEvent:
    """Store a text message from the audio socket (DTMF and the like) on the call."""
    call_event, _ = CallEvent.objects.get_or_create(
        call=call,
        fingerprint=fingerprint,
        defaults={
            "source": CallEvent.Source.SOCKET,
            "status": event,
            "payload": payload,
        },
    )
    return call_event


def live_socket_open(
    *, call: Call, channel_name: str, spool_name: str, sample_rate: int
) -> LiveSocket:
    """Mark a call live: the dashboard lists it, staff can pause or listen in."""
    return LiveSocket.objects.create(
        call=call,
        channel_name=channel_name,
        spool_name=spool_name,
        sample_rate=sample_rate,
    )


async def live_socket_for_call(
    *, call_id: int, even_if_stale: bool = False
) -> LiveSocket | None:
    """The newest socket recording this call now, if any.

    even_if_stale: for a pause, which asks the socket itself and hears
    whether it is there. A late heartbeat must never stop staff pausing a
    call that is still being recorded.
    """
    sockets = LiveSocket.objects.filter(call_id=call_id)
    if not even_if_stale:
        sockets = sockets.alive()
    return await sockets.order_by("-id").afirst()


def live_sockets_seen(*, live_socket_ids: list[int]) -> int:
    """A process's heartbeat: its sockets are still recording (one query)."""
    rows = LiveSocket.objects.filter(pk__in=live_socket_ids)
    return rows.update(seen_at=Now())


def live_socket_close(*, live_socket_id: int) -> None:
    LiveSocket.objects.filter(pk=live_socket_id).delete()


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


class SpoolFile(File):
    """A finished spool handed to storage.

    `temporary_file_path` lets FileSystemStorage move the file into place
    (a rename on the same filesystem) instead of copying it; other storages
    read it as a normal file.
    """

    def temporary_file_path(self) -> str:
        return self.file.name


def recording_finalize(*, call: Call, spool: FinishedSpool) -> Recording | None:
    """Store a finished spool as the call's Recording; a silent socket stores nothing.

    The spool is removed only once the file is in storage and the row is
    saved. If the row fails after the file has moved, the metadata left in
    the spool folder says where the file went, and recovery finishes the job.
    """
    with finishing_lock(spool.meta_path):
        return _store_spool(call=call, spool=spool)


def _store_spool(*, call: Call, spool: FinishedSpool) -> Recording | None:
    if spool.sample_count == 0:
        spool.discard()
        return None
    recording = Recording(
        call=call,
        sample_rate=spool.meta.sample_rate,
        sample_count=spool.sample_count,
        frame_count=spool.frame_count,
        expected_frame_count=spool.expected_frame_count,
        gap_count=spool.gap_count,
        longest_gap_ms=spool.longest_gap_ms,
        size_bytes=spool.size_bytes,
        odd_byte_carries=spool.odd_byte_carries,
        paused_seconds=spool.paused_samples / spool.meta.sample_rate,
        ended_paused=spool.ended_paused,
        sha256=spool.sha256(),
        peaks=_spool_peaks(spool),
        recovered=spool.recovered,
        started_at=spool.meta.started_at,
        ended_at=spool.ended_at,
    )
    with open(spool.path, "rb") as audio:
        recording.file.save(spool.path.name, SpoolFile(audio), save=False)
    try:
        _note_stored(spool.meta_path, recording)
    except OSError:
        logger.exception(
            "call %s: audio stored as %s but its spool metadata not updated",
            call.uuid or call.conversation_uuid,
            recording.file.name,
        )
    recording.save()
    spool.meta_path.unlink(missing_ok=True)
    spool.path.unlink(missing_ok=True)  # still there when storage copied it
    return recording


def _spool_peaks(spool: FinishedSpool) -> list[int]:
    """The waveform, computed once here so no page load ever reads the audio."""
    try:
        with open(spool.path, "rb") as audio:
            return wav_peaks(audio)
    except ValueError:  # a header recovery could not make sense of: no waveform
        logger.warning("%s: no waveform, the WAV header is unreadable", spool.path)
        return []


def recording_peaks(*, recording: Recording) -> list[int]:
    """The waveform of a stored recording, read through the storage API."""
    with recording.file.open("rb") as audio:
        return wav_peaks(audio)


_STORED_FIELDS = [
    "sample_rate",
    "sample_count",
    "frame_count",
    "expected_frame_count",
    "gap_count",
    "longest_gap_ms",
    "size_bytes",
    "odd_byte_carries",
    "paused_seconds",
    "ended_paused",
    "sha256",
    "recovered",
    "peaks",
]


def _note_stored(meta_path: Path, recording: Recording) -> None:
    """Record in the spool's metadata that its file is now in storage."""
    meta = json.loads(meta_path.read_text())
    meta["stored"] = {
        "name": recording.file.name,
        "ended_at": recording.ended_at.isoformat(),
        **{field: getattr(recording, field) for field in _STORED_FIELDS},
    }
    meta_path.write_text(json.dumps(meta))


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
    stored = meta.get("stored")
    if stored and default_storage.exists(stored["name"]):
        # The file reached storage; only the row is missing.
        recording = Recording(
            call=call,
            started_at=meta["started_at"],
            ended_at=stored["ended_at"],
            # Metadata noted before waveforms were kept has no peaks.
            **{field: stored[field] for field in _STORED_FIELDS if field in stored},
        )
        recording.file.name = stored["name"]
        if "peaks" not in stored:
            recording.peaks = recording_peaks(recording=recording)
        recording.save()
        meta_path.unlink()
        meta_path.with_suffix(".wav").unlink(missing_ok=True)
        _live_rows_end(spool_name=meta_path.with_suffix(".wav").name)
        return recording
    # Raises SpoolInUse while a live call's writer holds the spool: its row stays.
    spool = recover_spool(meta_path)
    _live_rows_end(spool_name=spool.path.name)
    return _store_spool(call=call, spool=spool)


def _live_rows_end(*, spool_name: str) -> None:
    """Its writer is gone: the call is no longer live, whatever its row says.

    Open dashboards are told, as the socket would have told them; if the
    channel layer is down they miss it, and recovery goes on.
    """
    rows = LiveSocket.objects.filter(spool_name=spool_name)
    call_ids = set(rows.values_list("call_id", flat=True))
    rows.delete()
    for call_id in call_ids:
        try:
            async_to_sync(get_channel_layer().group_send)(
                CALLS_GROUP, {"type": "call.ended", "call_id": call_id}
            )
        except Exception:
            logger.warning(
                "call %s: live pages not told it ended", call_id, exc_info=True
            )


def token_use(*, key: str, valid_for: float) -> bool:
    """Mark a one-time token used; False if it was used before (a replay).

    Call it inside the transaction of the work the token allows, so a
    request that fails leaves its token unused for Vonage's retry.
    """
    now = timezone.now()
    UsedToken.objects.filter(expires_at__lt=now).delete()
    try:
        with transaction.atomic():
            UsedToken.objects.create(
                key=key[:255], expires_at=now + timedelta(seconds=valid_for)
            )
    except IntegrityError:
        return False
    return True


def access_log_append(
    *,
    action: str,
    recording: Recording,
    user: Any,
    ip_address: str | None,
    attempts: int = 20,
) -> AccessLogEntry:
    """Append one entry to the hash chain of the access log.

    prev_hash is unique, so of two requests appending at once one fails
    and tries again on top of the other: the chain never forks.
    """
    for _ in range(attempts):
        last = AccessLogEntry.objects.order_by("-id").only("entry_hash").first()
        entry = AccessLogEntry(
            action=action,
            user_id=user.pk,
            username=user.get_username(),
            ip_address=ip_address,
            call_id=recording.call_id,
            call_uuid=recording.call.uuid or recording.call.conversation_uuid or "",
            recording_id=recording.pk,
            recording_file=recording.file.name,
            prev_hash=last.entry_hash if last else GENESIS_HASH,
        )
        entry.entry_hash = entry.compute_hash()
        try:
            with transaction.atomic():
                entry.save()
        except IntegrityError:
            continue
        return entry
    raise RuntimeError("could not append to the access log: too much contention")


def recording_play_log(
    *,
    recording: Recording,
    user: Any,
    ip_address: str | None,
    action: str,
    window_seconds: float,
) -> AccessLogEntry | None:
    """Log a play or download once per user and recording within the window.

    A browser plays one recording with many Range requests (metadata,
    buffering, every seek); they are one play, not hundreds of entries.
    """
    since = timezone.now() - timedelta(seconds=window_seconds)
    already = AccessLogEntry.objects.filter(
        action=action,
        user_id=user.pk,
        recording_id=recording.pk,
        created_at__gte=since,
    ).exists()
    if already:
        return None
    return access_log_append(
        action=action, recording=recording, user=user, ip_address=ip_address
    )


class CallOnLegalHold(Exception):
    """A call on legal hold keeps its recordings: deleting them is refused."""


def _refuse_if_held(call_id: int) -> None:
    # Read under a row lock: a hold placed a moment ago is seen, and one
    # placed from now on waits for this delete to commit.
    if Call.objects.select_for_update().filter(pk=call_id, legal_hold=True).exists():
        raise CallOnLegalHold(
            "This call is on legal hold: its recordings cannot be deleted "
            "until the hold is released."
        )


@transaction.atomic
def recording_delete(
    *, recording: Recording, user: Any, ip_address: str | None
) -> None:
    """Delete a recording (its file goes once the delete commits) and log who did.

    Raises CallOnLegalHold, deleting nothing, when its call is on legal hold.
    """
    _refuse_if_held(recording.call_id)
    access_log_append(
        action=AccessLogEntry.Action.DELETE,
        recording=recording,
        user=user,
        ip_address=ip_address,
    )
    recording.delete()


@transaction.atomic
def call_delete(*, call: Call, user: Any, ip_address: str | None) -> None:
    """Delete a call with its events and recordings, logging each recording.

    Raises CallOnLegalHold, deleting nothing, when the call is on legal hold.
    """
    _refuse_if_held(call.pk)
    for recording in call.recordings.select_related("call"):
        recording_delete(recording=recording, user=user, ip_address=ip_address)
    call.delete()


@transaction.atomic
def legal_hold_set(*, call: Call, on: bool, by: Any) -> CallEvent | None:
    """Place a call on legal hold (no purge, no delete) or release it.

    Puts who did it on the call's timeline; setting what is already set
    changes nothing and returns None.
    """
    locked = Call.objects.select_for_update().get(pk=call.pk)
    if locked.legal_hold == on:
        for name in ("legal_hold", "legal_hold_by", "legal_hold_at"):
            setattr(call, name, getattr(locked, name))
        return None
    now = timezone.now()
    username = by.get_username()
    call.legal_hold = on
    call.legal_hold_by = username if on else ""
    call.legal_hold_at = now if on else None
    Call.objects.filter(pk=call.pk).update(
        legal_hold=call.legal_hold,
        legal_hold_by=call.legal_hold_by,
        legal_hold_at=call.legal_hold_at,
        updated_at=now,
    )
    return CallEvent.objects.create(
        call=call,
        source=CallEvent.Source.STAFF,
        status="legal-hold:on" if on else "legal-hold:off",
        timestamp=now,
        payload={"by": username},
        fingerprint=f"legal-hold:{now.isoformat()}:{on}",
    )


# --- retention ---------------------------------------------------------------


class _Retention:
    """Who the access log names for recordings the retention purge deleted."""

    pk = None

    @staticmethod
    def get_username() -> str:
        return "retention purge"


@dataclass
class PurgeReport:
    """What a purge found older than its cutoff, and what it deleted."""

    cutoff: datetime
    dry_run: bool
    calls: int = 0
    recordings: int = 0
    bytes: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    held: int = 0
    deleted_calls: int = 0
    deleted_recordings: int = 0
    deleted_bytes: int = 0
    failures: list[str] = field(default_factory=list)
    more: bool = False


def purgeable_calls(cutoff: datetime) -> QuerySet[Call]:
    """Calls started before the cutoff, neither on legal hold nor in progress."""
    return Call.objects.filter(started_at__lt=cutoff, legal_hold=False).exclude(
        Exists(LiveSocket.objects.alive().filter(call=OuterRef("pk")))
    )


def purge_calls_older_than(
    cutoff: datetime, *, dry_run: bool, limit: int | None = None
) -> PurgeReport:
    """Delete calls started before the cutoff, files and rows together.

    Each recording's file is deleted through the storage API first, then its
    row (with an access log entry); a call goes once none of its recordings
    is left. A file that cannot be deleted keeps its row and its call, and
    is reported: nothing is ever orphaned. Should the database fail just
    after a file went, its row stays, and the next purge (whose storage
    delete of a missing file is a no-op) finishes the job. Calls on legal
    hold or in progress are never touched, even if held since listed.
    Any other failure keeps that call, is reported, and the purge goes on.
    With a limit, only that many of the oldest calls go (report.more says
    whether others were left for another run).
    """
    calls = purgeable_calls(cutoff)
    found = calls.aggregate(
        calls=Count("pk"), oldest=Min("started_at"), newest=Max("started_at")
    )
    audio = Recording.objects.filter(call__in=calls).aggregate(
        recordings=Count("pk"), bytes=Sum("size_bytes")
    )
    report = PurgeReport(
        cutoff=cutoff,
        dry_run=dry_run,
        calls=found["calls"],
        recordings=audio["recordings"],
        bytes=audio["bytes"] or 0,
        oldest=found["oldest"],
        newest=found["newest"],
        held=Call.objects.filter(started_at__lt=cutoff, legal_hold=True).count(),
    )
    if dry_run or not report.calls:
        return report
    ids = calls.order_by("started_at", "pk").values_list("pk", flat=True)
    if limit is not None:
        ids = ids[:limit]
        report.more = report.calls > limit
    for call_id in list(ids):
        # Counted apart: if the call's transaction rolls back, none of it went.
        done = PurgeReport(cutoff=cutoff, dry_run=False)
        try:
            _purge_call(call_id, cutoff, done)
        except Exception as error:  # one call failing must not stall the others
            logger.exception("purge: call %s failed; it is kept", call_id)
            done.failures.append(f"call {call_id}: not purged ({error}); kept")
        else:
            report.deleted_calls += done.deleted_calls
            report.deleted_recordings += done.deleted_recordings
            report.deleted_bytes += done.deleted_bytes
        report.failures += done.failures
    return report


@transaction.atomic
def _purge_call(call_id: int, cutoff: datetime, report: PurgeReport) -> None:
    call = purgeable_calls(cutoff).select_for_update().filter(pk=call_id).first()
    if call is None:  # held, live or deleted since the purge listed it
        return
    kept = 0
    for recording in call.recordings.select_related("call"):
        name = recording.file.name
        try:
            if name:
                recording.file.storage.delete(name)
        except Exception as error:
            kept += 1
            logger.exception("purge: could not delete %s; its row is kept", name)
            report.failures.append(
                f"call {call.pk}: file {name} not deleted ({error}); kept"
            )
            continue
        access_log_append(
            action=AccessLogEntry.Action.DELETE,
            recording=recording,
            user=_Retention(),
            ip_address=None,
        )
        recording.delete()
        report.deleted_recordings += 1
        report.deleted_bytes += recording.size_bytes
    if not kept:
        call.delete()
        report.deleted_calls += 1


# Calls one automatic run deletes at most: a purge after a call finishes, or
# at start, stays short; a backlog (retention just turned on) is worked off
# by the next runs, which do not wait for the interval while it lasts.
RETENTION_BATCH = 1000

_retention_lock = threading.Lock()
_retention_last_run: float | None = None


def retention_purge_if_due() -> PurgeReport | None:
    """Purge calls older than CALLRECORDER_RETENTION_DAYS, at most once an interval.

    Cheap when not due (a lock and a clock read), so it can be called after
    every call; thread-safe: of threads calling at once, one purges and the
    others return None at once. A thread of its own should close its
    database connection afterwards (django.db.connection.close()).
    Errors are logged, never raised: a purge must not break a call.
    """
    global _retention_last_run
    days = settings.CALLRECORDER_RETENTION_DAYS
    if not days:
        return None
    with _retention_lock:
        now = time.monotonic()
        interval = settings.CALLRECORDER_RETENTION_CHECK_SECONDS
        if _retention_last_run is not None and now - _retention_last_run < interval:
            return None
        _retention_last_run = now
    cutoff = timezone.now() - timedelta(days=days)
    try:
        report = purge_calls_older_than(cutoff, dry_run=False, limit=RETENTION_BATCH)
    except Exception:
        logger.exception("retention purge failed; next try in %s s", interval)
        return None
    if report.more and not report.failures:
        with _retention_lock:
            _retention_last_run = None  # the next call goes on with the backlog
    if report.calls or report.failures:
        logger.info(
            "retention (%s days): purged %s call(s), %s recording(s), %s bytes; "
            "%s failure(s)",
            days,
            report.deleted_calls,
            report.deleted_recordings,
            report.deleted_bytes,
            len(report.failures),
        )
    return report
