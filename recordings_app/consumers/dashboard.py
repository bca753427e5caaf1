"""The live dashboard's socket: calls starting, their levels, pauses, ends."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .. import selectors
from ..live import events
from ..models import LiveSocket
from ..sockets import CLOSE_UNAUTHORIZED
from .browser_auth import signed_in_user, user_or_refuse

logger = logging.getLogger(__name__)


class CallsConsumer(AsyncJsonWebsocketConsumer):
    """A signed-in page's live view: calls starting, their levels, pauses, ends.

    Only of the calls its user sees (their teams' lines, or every call):
    the dashboards' group carries every call, so this socket passes on
    only what concerns the calls it has shown. While one is open,
    recording processes send audio levels (see live.monitor); the page
    renews that wish every few seconds.
    """

    renew_task: asyncio.Task | None = None
    numbers: list[str] | None = []  # the user's lines; None: every call
    shown: set[int]

    async def connect(self) -> None:
        user = await user_or_refuse(self)
        if user is None:
            return
        self.user = user
        self.shown = set()
        await self.channel_layer.group_add(events.CALLS_GROUP, self.channel_name)
        await self.accept()
        # The page was drawn a moment ago: calls may have started or ended
        # since, before this socket joined the group.
        await self.send_snapshot()
        self.renew_task = asyncio.ensure_future(self.keep_watching())

    async def send_snapshot(self) -> None:
        """The calls in progress the user sees; their rights are read afresh."""
        self.numbers = await database_sync_to_async(selectors.line_numbers)(self.user)
        calls = await database_sync_to_async(selectors.calls_in_progress)(self.numbers)
        self.shown = {call["id"] for call in calls}
        await self.send_json({"event": "snapshot", "calls": calls})

    def sees(self, call_id: Any) -> bool:
        return self.numbers is None or call_id in self.shown

    async def keep_watching(self) -> None:
        """Say this page watches; stop if its user signed out meanwhile.

        Every heartbeat it also gets the calls in progress afresh: a call
        whose process died never sends "ended", and must not stay live.
        """
        snapshot_due = time.monotonic() + LiveSocket.HEARTBEAT_SECONDS
        while True:
            user = await signed_in_user(self.scope)
            if user is None:
                await self.close(code=CLOSE_UNAUTHORIZED)
                return
            self.user = user  # the next snapshot goes by their rights now
            try:
                await events.watch_renew(self.channel_layer)
                # Group members expire (a day, in Redis): a wall screen stays.
                await self.channel_layer.group_add(
                    events.CALLS_GROUP, self.channel_name
                )
                if time.monotonic() >= snapshot_due:
                    snapshot_due = time.monotonic() + LiveSocket.HEARTBEAT_SECONDS
                    # Through this socket's own queue, not from this task: a
                    # call that starts while the query runs must reach the
                    # page after the snapshot that could not include it.
                    refresh = {"type": "calls.refresh"}
                    await self.channel_layer.send(self.channel_name, refresh)
            except Exception:
                logger.warning("dashboard could not renew its watch", exc_info=True)
            await asyncio.sleep(events.WATCH_RENEW_SECONDS)

    async def disconnect(self, code: int) -> None:
        if self.renew_task is not None:
            self.renew_task.cancel()
        await self.channel_layer.group_discard(events.CALLS_GROUP, self.channel_name)

    async def watch_query(self, event: dict[str, Any]) -> None:
        """A process just took its first call: tell it this page watches."""
        await events.watch_renew(self.channel_layer)

    async def calls_refresh(self, event: dict[str, Any]) -> None:
        try:
            await self.send_snapshot()
        except Exception:  # the database is away: keep the page, try next time
            logger.warning("dashboard snapshot failed", exc_info=True)

    async def call_started(self, event: dict[str, Any]) -> None:
        call = event["call"]
        numbers = self.numbers
        if numbers is not None and not {call["from"], call["to"]} & set(numbers):
            return  # another team's call
        self.shown.add(call["id"])
        await self.send_json({"event": "started", "call": call})

    async def call_ended(self, event: dict[str, Any]) -> None:
        if not self.sees(event["call_id"]):
            return
        self.shown.discard(event["call_id"])
        await self.send_json({"event": "ended", "call_id": event["call_id"]})

    async def call_paused(self, event: dict[str, Any]) -> None:
        if not self.sees(event["call_id"]):
            return
        await self.send_json(
            {
                "event": "paused",
                "call_id": event["call_id"],
                "paused": event["paused"],
                "by": event["by"],
            }
        )

    async def calls_levels(self, event: dict[str, Any]) -> None:
        levels = {
            call_id: level
            for call_id, level in event["levels"].items()
            if self.sees(int(call_id))
        }
        if levels:
            await self.send_json({"event": "levels", "levels": levels})
