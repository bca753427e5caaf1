"""Every read that is more than a lookup by key: lists, calls in progress, purges.

Reads on behalf of a user take the user: they see only the calls of their
teams' lines, unless they may see every call (permissions.sees_all_calls).
Writes are in recordings_app.services; nothing here changes a row.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from .live.events import call_summary
from .models import Call, Line, LiveSocket, Recording, WebhookDelivery
from .permissions import sees_all_calls

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


def line_numbers(user: Any) -> list[str] | None:
    """The numbers of the lines the user's teams have; None: every line.

    Kept on the user object, as Django keeps its permissions: one query per
    request, however many reads ask.
    """
    if not user.is_authenticated:
        return []
    if sees_all_calls(user):
        return None
    if not hasattr(user, "_line_numbers"):
        lines = Line.objects.filter(groups__user=user)
        user._line_numbers = list(lines.values_list("number", flat=True))
    return user._line_numbers


def on_lines(numbers: list[str] | None, *, via: str = "") -> Q:
    """Calls to or from these lines (None: every call); via: the lookup from
    another model to its call ("call__")."""
    if numbers is None:
        return Q()
    return Q(**{f"{via}to_number__in": numbers}) | Q(
        **{f"{via}from_number__in": numbers}
    )


def seen_by(user: Any, *, via: str = "") -> Q:
    """A filter for the calls (or their rows, via "call__") the user sees."""
    return on_lines(line_numbers(user), via=via)


def visible_calls(user: Any) -> QuerySet[Call]:
    """The calls this user may see: their teams' lines', or every one."""
    return Call.objects.filter(seen_by(user))


def sees_call(user: Any, *, call_id: int) -> bool:
    return visible_calls(user).filter(pk=call_id).exists()


def _live_sockets_on(
    numbers: list[str] | None, *, even_if_stale: bool = False
) -> QuerySet[LiveSocket]:
    """Sockets recording now, of calls on these lines (None: every call)."""
    sockets = LiveSocket.objects.all() if even_if_stale else LiveSocket.objects.alive()
    return sockets.filter(on_lines(numbers, via="call__"))


def live_calls_for_list(user: Any) -> list[LiveSocket]:
    """One live row per call in progress the user sees (its newest socket).

    Oldest first. A reconnect's socket may open while the first is still
    being stored.
    """
    oldest_first = (
        _live_sockets_on(line_numbers(user))
        .select_related("call")
        .order_by("started_at")
    )
    return list({live.call_id: live for live in oldest_first}.values())


def finished_calls(
    *,
    user: Any,
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
    calls = (
        visible_calls(user)
        .prefetch_related("recordings")
        .exclude(pk__in=exclude_call_ids)
    )
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


def calls_with_recordings(user: Any) -> QuerySet[Call]:
    """The calls the user sees, recordings prefetched (a duration sums them)."""
    return visible_calls(user).prefetch_related("recordings")


def live_socket_of(call: Call) -> LiveSocket | None:
    """The socket recording this call now, if it is in progress."""
    return call.live_sockets.alive().order_by("-id").first()


async def live_socket_for_call(
    *, call_id: int, user: Any, even_if_stale: bool = False
) -> LiveSocket | None:
    """The newest socket recording this call now, if any and the user sees it.

    even_if_stale: for a pause, which asks the socket itself and hears
    whether it is there. A late heartbeat must never stop staff pausing a
    call that is still being recorded.
    """
    numbers = await sync_to_async(line_numbers)(user)
    sockets = _live_sockets_on(numbers, even_if_stale=even_if_stale)
    return await sockets.filter(call_id=call_id).order_by("-id").afirst()


def calls_in_progress(numbers: list[str] | None) -> list[dict]:
    """Every call being recorded now on these lines (None: all), in any
    process: a dashboard's first picture."""
    live_sockets = _live_sockets_on(numbers).select_related("call")
    return [
        call_summary(
            live_socket.call,
            live_since=live_socket.started_at,
            paused=live_socket.paused,
            paused_by=live_socket.paused_by,
        )
        for live_socket in live_sockets
    ]


def being_recorded() -> tuple[int, set[str]]:
    """How many calls are being recorded now, in every process, and the
    spool files their sockets write (not waiting for recovery)."""
    live = LiveSocket.objects.alive()
    calls = live.values("call_id").distinct().count()
    return calls, set(live.values_list("spool_name", flat=True))


def webhook_deliveries_waiting() -> dict[str, int]:
    """Webhook deliveries not yet sent and those given up on, for /metrics."""
    counts = dict(
        WebhookDelivery.objects.filter(state__in=["pending", "failed"])
        .values_list("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    return {"pending": counts.get("pending", 0), "failed": counts.get("failed", 0)}


def recording_of_visible_call(*, recording_id: int, user: Any) -> Recording | None:
    """A recording with its call (the access log names both), if the user
    sees that call; None otherwise, as for one that does not exist."""
    return (
        Recording.objects.select_related("call")
        .filter(seen_by(user, via="call__"), pk=recording_id)
        .first()
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


# What signing in still asks of a user who gave the right password.
VERIFY_CODE = "verify"  # a code from their authenticator app (or a recovery code)
SET_UP_APP = "set-up"  # a second factor they must have and have not set up


def second_factor_required(user: Any) -> bool:
    """Staff and superusers must have a second factor (CALLRECORDER_REQUIRE_MFA)."""
    return settings.CALLRECORDER_REQUIRE_MFA and (user.is_staff or user.is_superuser)


def has_authenticator(user: Any) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def second_factor_step(user: Any, session: Any) -> str | None:
    """VERIFY_CODE, SET_UP_APP, or None once the sign-in is complete.

    One query: the device this session was verified with, or whether the
    user has an authenticator at all. Pages, sockets and the admin all ask
    this, so a half-finished sign-in reaches nothing.
    """
    if not user.is_authenticated:
        return None
    verified_with = session.get(DEVICE_ID_SESSION_KEY)
    if verified_with:
        device = Device.from_persistent_id(verified_with)
        if device is not None and device.user_id == user.pk and device.confirmed:
            return None
    if has_authenticator(user):
        return VERIFY_CODE
    if second_factor_required(user):
        return SET_UP_APP
    return None


def authenticator_being_set_up(user: Any) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=False).first()


def recovery_codes_left(user: Any) -> int:
    return StaticToken.objects.filter(device__user=user).count()
