"""Retention: calls past their time purged, by hand or automatically.

Calls on legal hold or in progress are never purged (selectors.purgeable_calls).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from ..models import AccessLogEntry, Call, Recording, WebhookDelivery
from ..selectors import purgeable_calls
from . import webhooks
from .access import System, access_log_append

logger = logging.getLogger(__name__)


# Who the access log names for what the retention purge deleted.
RETENTION = System("retention purge")


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
            user=RETENTION,
            ip_address=None,
        )
        webhooks.webhook_event_queue(
            event="recording.deleted",
            call=call,
            recording=recording,
            extra={"deleted_by": RETENTION.get_username()},
        )
        recording.delete()
        report.deleted_recordings += 1
        report.deleted_bytes += recording.size_bytes
    if not kept:
        access_log_append(
            action=AccessLogEntry.Action.PURGE,
            call=call,
            user=RETENTION,
            ip_address=None,
            detail={"cutoff": cutoff.isoformat()},
        )
        # Its webhooks sent: their payloads hold its numbers. (The deletions
        # just queued are still to go.)
        WebhookDelivery.objects.filter(call_id=call.pk).exclude(
            state=WebhookDelivery.State.PENDING
        ).delete()
        call.delete()
        report.deleted_calls += 1


# Calls one automatic run deletes at most: a purge after a call finishes, or
# at start, stays short; a backlog (retention just turned on) is worked off
# by the next runs, which do not wait for the interval while it lasts.
RETENTION_BATCH = 1000


class RetentionSchedule:
    """When this process last purged automatically: at most once an interval.

    Thread-safe: of threads asking at once, one is told to purge.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_run: float | None = None

    def claim(self, interval: float) -> bool:
        """True, and the clock starts again, if a purge is due now."""
        with self._lock:
            now = time.monotonic()
            if self._last_run is not None and now - self._last_run < interval:
                return False
            self._last_run = now
            return True

    def reset(self) -> None:
        """The next call purges at once (a backlog is left)."""
        with self._lock:
            self._last_run = None


schedule = RetentionSchedule()


def retention_purge_if_due() -> PurgeReport | None:
    """Purge calls older than CALLRECORDER_RETENTION_DAYS, at most once an interval.

    Cheap when not due (a lock and a clock read), so it can be called after
    every call; of threads calling at once, one purges and the others
    return None at once. A thread of its own should close its database
    connection afterwards (django.db.connection.close()).
    Errors are logged, never raised: a purge must not break a call.
    """
    days = settings.CALLRECORDER_RETENTION_DAYS
    if not days:
        return None
    interval = settings.CALLRECORDER_RETENTION_CHECK_SECONDS
    if not schedule.claim(interval):
        return None
    cutoff = timezone.now() - timedelta(days=days)
    try:
        report = purge_calls_older_than(cutoff, dry_run=False, limit=RETENTION_BATCH)
    except Exception:
        logger.exception("retention purge failed; next try in %s s", interval)
        return None
    if report.more and not report.failures:
        schedule.reset()  # the next call goes on with the backlog
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
