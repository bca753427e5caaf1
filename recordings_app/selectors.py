"""Every read that is more than a lookup by key: lists, calls in progress, purges.

Writes are in recordings_app.services; nothing here changes a row.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from .live.events import call_summary
from .models import Call, LiveSocket, Recording

# The list page's sorts: a label for the form, an order for the query.
SORTS = {
    "newest": ("Newest first", ["-started_at", "-id"]),
    "oldest": ("Oldest first", ["started_at", "id"]),
    "longest": ("Longest first", [F("duration_seconds").desc(nulls_last=True), "-id"]),
    "caller": ("By caller", ["from_number", "-started_at"]),
}


def _day_start(day: date) -> datetime:
    """Midnight at the start of the day, in the site's time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


def live_calls_for_list() -> list[LiveSocket]:
    """One live row per call in progress (its newest socket), oldest first.

    A reconnect's socket may open while the first is still being stored.
    """
    oldest_first = (
        LiveSocket.objects.alive().select_related("call").order_by("started_at")
    )
    return list({live.call_id: live for live in oldest_first}.values())


def finished_calls(
    *,
    exclude_call_ids: list[int],
    q: str = "",
    since: date | None = None,
    until: date | None = None,
    status: str = "",
    sort: str = "",
) -> QuerySet[Call]:
    """The list page's calls, searched, filtered and sorted, recordings prefetched.

    Calls in progress are few: leaving out their ids (none, mostly) keeps
    the count and the page plain scans of the call table's own indexes. A
    join to the live sockets made PostgreSQL sort all 100,000 calls for a
    deep page (bench/list_page.py).
    """
    calls = Call.objects.prefetch_related("recordings").exclude(pk__in=exclude_call_ids)
    if q:
        calls = calls.filter(
            Q(from_number__contains=q)
            | Q(to_number__contains=q)
            | Q(uuid__istartswith=q)
            | Q(conversation_uuid__icontains=q)
        )
    # A range on started_at itself, not started_at__date: a cast of the
    # column cannot use its index (a full scan of 100,000 calls).
    if since:
        calls = calls.filter(started_at__gte=_day_start(since))
    if until:
        calls = calls.filter(started_at__lt=_day_start(until + timedelta(days=1)))
    if status:
        calls = calls.filter(status=status)
    _, order = SORTS[sort or "newest"]
    return calls.order_by(*order)


def calls_with_recordings() -> QuerySet[Call]:
    """Calls with their recordings prefetched (a call's duration sums them)."""
    return Call.objects.prefetch_related("recordings")


def live_socket_of(call: Call) -> LiveSocket | None:
    """The socket recording this call now, if it is in progress."""
    return call.live_sockets.alive().order_by("-id").first()


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


async def call_still_live(*, call_id: int) -> bool:
    """Another socket records the same call (Vonage reconnected)."""
    return await LiveSocket.objects.alive().filter(call_id=call_id).aexists()


def calls_in_progress() -> list[dict]:
    """Every call being recorded now, in any process (a page's first picture)."""
    return [
        call_summary(
            live_socket.call,
            live_since=live_socket.started_at,
            paused=live_socket.paused,
            paused_by=live_socket.paused_by,
        )
        for live_socket in LiveSocket.objects.alive().select_related("call")
    ]


async def recording_to_serve(*, recording_id: int) -> Recording | None:
    """A recording with its call (the access log names both), or None."""
    return (
        await Recording.objects.select_related("call").filter(pk=recording_id).afirst()
    )


def recordings_needing_peaks(*, recompute_all: bool = False) -> QuerySet[Recording]:
    """Recordings stored before waveforms were kept (or all of them)."""
    recordings = Recording.objects.order_by("pk").only("pk", "file")
    return recordings if recompute_all else recordings.filter(peaks=[])


def purgeable_calls(cutoff: datetime) -> QuerySet[Call]:
    """Calls started before the cutoff, neither on legal hold nor in progress."""
    return Call.objects.filter(started_at__lt=cutoff, legal_hold=False).exclude(
        Exists(LiveSocket.objects.alive().filter(call=OuterRef("pk")))
    )
