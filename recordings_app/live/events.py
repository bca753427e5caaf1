"""What live pages hear about calls in progress: groups, messages, timings.

A leaf: the recording socket, the browser sockets, the services and the
views all agree on these names. The per-frame audio path never sends
anything: levels go out from one task per process, a few times a second,
and only while a dashboard says it is watching.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

# Dashboards (list and call pages) listen here: started, levels, paused, ended.
CALLS_GROUP = "calls"
# Every process recording calls listens here for "someone is watching".
RECORDERS_GROUP = "recorders"
# A dashboard says it watches every WATCH_RENEW_SECONDS; a process sends
# levels until WATCH_SECONDS after the last word, so a closed tab costs little.
WATCH_RENEW_SECONDS = 5.0
WATCH_SECONDS = 15.0
LEVEL_INTERVAL_SECONDS = 0.25
# channels-redis forgets group members after a day: members renew this often.
GROUP_RENEW_SECONDS = 600.0
# Workers' clocks may differ by this much (a pause request's expiry).
CLOCK_SLACK_SECONDS = 2.0
# A listener renews every LISTEN_RENEW_SECONDS and is dropped LISTEN_SECONDS
# after its last renewal; audio goes to it in chunks of LISTEN_CHUNK_SECONDS.
LISTEN_RENEW_SECONDS = 3.0
LISTEN_SECONDS = 10.0
LISTEN_CHUNK_SECONDS = 0.2


def call_message(event_type: str, *, call_id: int, **fields: Any) -> dict[str, Any]:
    """A message for the dashboards' group: call.started, call.paused, call.ended."""
    return {"type": event_type, "call_id": call_id, **fields}


def call_summary(
    call: Any, *, live_since: Any, paused: bool = False, paused_by: str = ""
) -> dict:
    """The few facts a dashboard row shows; sent once, when the socket opens."""
    return {
        "id": call.pk,
        "from": call.from_number,
        "to": call.to_number,
        "url": call.get_absolute_url(),
        "live_since": live_since.isoformat(),
        "paused": paused,
        "paused_by": paused_by,
    }


def publish_ended(call_id: int) -> None:
    """Tell open dashboards a call ended, from sync code (recovery).

    Best effort: if the channel layer is down they miss it, and the caller
    goes on; their next snapshot puts them right.
    """
    try:
        async_to_sync(get_channel_layer().group_send)(
            CALLS_GROUP, call_message("call.ended", call_id=call_id)
        )
    except Exception:
        logger.warning("call %s: live pages not told it ended", call_id, exc_info=True)


async def watch_renew(channel_layer) -> None:
    """Tell every recording process that a dashboard is open."""
    await channel_layer.group_send(
        RECORDERS_GROUP, {"type": "watch.renew", "seconds": WATCH_SECONDS}
    )
