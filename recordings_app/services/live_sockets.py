"""Live rows: a call being recorded now, in whichever process holds its socket."""

from __future__ import annotations

from django.db.models.functions import Now

from ..live.events import publish_ended
from ..models import Call, LiveSocket


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


def live_sockets_seen(*, live_socket_ids: list[int]) -> int:
    """A process's heartbeat: its sockets are still recording (one query)."""
    rows = LiveSocket.objects.filter(pk__in=live_socket_ids)
    return rows.update(seen_at=Now())


def live_socket_close(*, live_socket_id: int, call_id: int) -> bool:
    """The socket's recording is stored: its row goes. True if the call is
    still live on another socket (Vonage reconnected), so dashboards keep it.

    Both in one trip to the database thread: every call ends here.
    """
    LiveSocket.objects.filter(pk=live_socket_id).delete()
    return LiveSocket.objects.alive().filter(call_id=call_id).exists()


def live_sockets_end(*, spool_name: str) -> None:
    """Its writer is gone (recovery): the call is no longer live, whatever its
    row says. Open dashboards are told, as the socket would have told them."""
    rows = LiveSocket.objects.filter(spool_name=spool_name)
    call_ids = set(rows.values_list("call_id", flat=True))
    rows.delete()
    for call_id in call_ids:
        publish_ended(call_id)
