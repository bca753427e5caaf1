"""What live pages hear about calls in progress, through the channel layer.

Group and message names live here, so the recording socket, the browser
sockets and the views agree on them. The per-frame audio path never sends
anything: levels go out from one task per process, a few times a second,
and only while a dashboard says it is watching.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from .audio import frame_level

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
# Browser sockets: 4401 (not signed in) as for the audio socket, and these.
CLOSE_FORBIDDEN = 4403  # listen-in is for staff
CLOSE_NOT_LIVE = 4404  # no call in progress by that id


class LiveCall(Protocol):
    """What the monitor needs of a recording socket."""

    call_id: int
    live_socket_id: int | None
    last_frame: bytes
    paused: bool
    ending: bool  # hung up, its recording being stored: no level to show


class PauseNotConfirmed(Exception):
    """The process recording the call did not confirm a pause or resume in time."""


class CallEnded(Exception):
    """The call ended before the pause or resume could take effect."""


async def ask_to_pause(
    channel_layer, recorder: str, *, paused: bool, by: str, timeout: float = 3.0
) -> bool:
    """Ask the call's recording socket, wherever it runs, to pause or resume.

    Waits for its answer: a page must never say "paused" while the audio is
    still being recorded. Returns the state the socket confirmed. The
    request expires with the wait, so one that arrives late (a stalled
    worker) is dropped rather than applied after the page said it failed.
    """
    reply_to = await channel_layer.new_channel()
    request = {
        "type": "recording.pause",
        "paused": paused,
        "by": by,
        "reply_to": reply_to,
        "expires_at": time.time() + timeout + CLOCK_SLACK_SECONDS,
    }

    async def ask() -> dict:
        await channel_layer.send(recorder, request)
        return await channel_layer.receive(reply_to)

    try:
        answer = await asyncio.wait_for(ask(), timeout)
    except TimeoutError:
        raise PauseNotConfirmed(f"no answer within {timeout:g} s") from None
    if answer.get("ended"):
        raise CallEnded("the call ended")
    return bool(answer.get("paused"))


def calls_in_progress() -> list[dict]:
    """Every call being recorded now, in any process (a page's first picture)."""
    from .models import LiveSocket

    return [
        call_summary(
            live_socket.call,
            live_since=live_socket.started_at,
            paused=live_socket.paused,
            paused_by=live_socket.paused_by,
        )
        for live_socket in LiveSocket.objects.alive().select_related("call")
    ]


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


async def watch_renew(channel_layer) -> None:
    """Tell every recording process that a dashboard is open."""
    await channel_layer.group_send(
        RECORDERS_GROUP, {"type": "watch.renew", "seconds": WATCH_SECONDS}
    )


class LiveMonitor:
    """One per process: what the other processes need to know of its calls.

    Their audio levels, for dashboards that watch: one group message per
    process per interval, whatever the number of calls, so an open
    dashboard costs the recording path next to nothing. And a heartbeat,
    one query per process every LiveSocket.HEARTBEAT_SECONDS: the calls of
    a process that died stop showing as live (LiveSocket.objects.alive).
    """

    def __init__(self) -> None:
        self.calls: set[LiveCall] = set()
        self.watched_until = 0.0
        self.task: asyncio.Task | None = None

    def add(self, call: LiveCall) -> None:
        self.calls.add(call)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self.run())

    def discard(self, call: LiveCall) -> None:
        self.calls.discard(call)

    def watched(self) -> bool:
        return time.monotonic() < self.watched_until

    async def run(self) -> None:
        channel_layer = get_channel_layer()
        if channel_layer is None:
            return
        channel = await channel_layer.new_channel()
        reader = asyncio.ensure_future(self.listen(channel_layer, channel))
        heartbeat = asyncio.ensure_future(self.heartbeat())
        try:
            while self.calls:
                await asyncio.sleep(LEVEL_INTERVAL_SECONDS)
                if self.calls and self.watched():
                    await self.send_levels(channel_layer)
        finally:
            reader.cancel()
            heartbeat.cancel()
            with contextlib.suppress(Exception):
                await channel_layer.group_discard(RECORDERS_GROUP, channel)
            # A call came while this one was winding down (not when the
            # loop itself is shutting down: that would leave a task behind).
            if self.calls and not asyncio.current_task().cancelling():
                self.task = asyncio.ensure_future(self.run())

    async def send_levels(self, channel_layer) -> None:
        levels = {
            str(call.call_id): 0.0 if call.paused else frame_level(call.last_frame)
            for call in list(self.calls)
            if not call.ending
        }
        try:
            await channel_layer.group_send(
                CALLS_GROUP, {"type": "calls.levels", "levels": levels}
            )
        except Exception:  # Redis away: the meters stall, the calls go on
            logger.warning("audio levels not published", exc_info=True)

    async def heartbeat(self) -> None:
        """Keep this process's calls listed as live, in a task of its own so a
        slow database never holds up the levels."""
        from .models import LiveSocket
        from .services import live_sockets_seen

        while True:
            await asyncio.sleep(LiveSocket.HEARTBEAT_SECONDS)
            ids = [call.live_socket_id for call in list(self.calls)]
            try:
                await database_sync_to_async(live_sockets_seen)(
                    live_socket_ids=[pk for pk in ids if pk is not None]
                )
            except Exception:  # three in a row, and the calls show as ended
                logger.warning("live calls' heartbeat not stored", exc_info=True)

    async def listen(self, channel_layer, channel: str) -> None:
        """Hear "someone is watching" from any dashboard, in any process."""
        while True:
            try:
                await channel_layer.group_add(RECORDERS_GROUP, channel)
                # Dashboards opened before this process had a call said so
                # to nobody: ask them now rather than wait for their renewal.
                await channel_layer.group_send(CALLS_GROUP, {"type": "watch.query"})
                joined_at = time.monotonic()
                while True:
                    if time.monotonic() - joined_at > GROUP_RENEW_SECONDS:
                        await channel_layer.group_add(RECORDERS_GROUP, channel)
                        joined_at = time.monotonic()
                    try:
                        message = await asyncio.wait_for(
                            channel_layer.receive(channel), GROUP_RENEW_SECONDS
                        )
                    except TimeoutError:
                        continue
                    if message.get("type") == "watch.renew":
                        seconds = min(float(message.get("seconds", 0)), WATCH_SECONDS)
                        self.watched_until = time.monotonic() + seconds
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("live monitor lost the channel layer", exc_info=True)
                await asyncio.sleep(1)


monitors: dict[asyncio.AbstractEventLoop, LiveMonitor] = {}


def monitor() -> LiveMonitor:
    """This process's monitor (one per event loop: tests run several loops)."""
    loop = asyncio.get_running_loop()
    if loop not in monitors:
        for old_loop in [old for old in monitors if old.is_closed()]:
            del monitors[old_loop]
        monitors[loop] = LiveMonitor()
    return monitors[loop]
