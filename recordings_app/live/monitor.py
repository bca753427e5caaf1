"""One per process: what the other processes need to know of its calls.

Their audio levels, for dashboards that watch, and a heartbeat that keeps
its calls listed as live (LiveSocket.objects.alive).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from ..audio.peaks import frame_level
from ..models import LiveSocket
from ..services.live_sockets import live_sockets_seen
from . import events

logger = logging.getLogger(__name__)


class LiveCall(Protocol):
    """What the monitor needs of a recording socket."""

    call_id: int
    live_socket_id: int | None
    last_frame: bytes
    paused: bool
    ending: bool  # hung up, its recording being stored: no level to show


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
                await asyncio.sleep(events.LEVEL_INTERVAL_SECONDS)
                if self.calls and self.watched():
                    await self.send_levels(channel_layer)
        finally:
            reader.cancel()
            heartbeat.cancel()
            with contextlib.suppress(Exception):
                await channel_layer.group_discard(events.RECORDERS_GROUP, channel)
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
                events.CALLS_GROUP, {"type": "calls.levels", "levels": levels}
            )
        except Exception:  # Redis away: the meters stall, the calls go on
            logger.warning("audio levels not published", exc_info=True)

    async def heartbeat(self) -> None:
        """Keep this process's calls listed as live, in a task of its own so a
        slow database never holds up the levels."""
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
                await channel_layer.group_add(events.RECORDERS_GROUP, channel)
                # Dashboards opened before this process had a call said so
                # to nobody: ask them now rather than wait for their renewal.
                await channel_layer.group_send(
                    events.CALLS_GROUP, {"type": "watch.query"}
                )
                joined_at = time.monotonic()
                while True:
                    if time.monotonic() - joined_at > events.GROUP_RENEW_SECONDS:
                        await channel_layer.group_add(events.RECORDERS_GROUP, channel)
                        joined_at = time.monotonic()
                    try:
                        message = await asyncio.wait_for(
                            channel_layer.receive(channel), events.GROUP_RENEW_SECONDS
                        )
                    except TimeoutError:
                        continue
                    if message.get("type") == "watch.renew":
                        seconds = min(
                            float(message.get("seconds", 0)), events.WATCH_SECONDS
                        )
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
