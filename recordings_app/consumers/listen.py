"""Listen-in: staff hear a call in progress, a fraction of a second late."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from .. import selectors
from ..addresses import scope_client_ip
from ..live import events
from ..models import AccessLogEntry
from ..permissions import can_listen
from ..services import access
from ..sockets import CLOSE_FORBIDDEN, CLOSE_NOT_LIVE, CLOSE_UNAUTHORIZED
from .browser_auth import accept_and_close, signed_in_user, user_or_refuse

logger = logging.getLogger(__name__)


class ListenConsumer(AsyncWebsocketConsumer):
    """Who may listen in hears a call in progress, a fraction of a second late.

    Only a call the user sees (its line), with the listen_live permission.

    Sends one JSON text message with the sample rate, then binary chunks of
    16-bit PCM (silence while the recording is paused), then
    {"event": "ended"} and a normal close when the call ends.
    """

    renew_task: asyncio.Task | None = None
    listener: Any = None  # the user, once listening: the end is logged too

    async def connect(self) -> None:
        user = await user_or_refuse(self, may=can_listen)
        if user is None:
            return
        call_id = self.scope["url_route"]["kwargs"]["call_id"]
        live_socket = await selectors.live_socket_for_call(call_id=call_id, user=user)
        if live_socket is None:  # not live, or not one of the user's lines
            await accept_and_close(self, CLOSE_NOT_LIVE)
            return
        self.call_id = call_id
        self.recorder = live_socket.channel_name
        await self.accept()
        await self.log(AccessLogEntry.Action.LISTEN_START, user)
        self.listener = user
        await self.send(text_data=json.dumps({"sample_rate": live_socket.sample_rate}))
        self.renew_task = asyncio.ensure_future(self.keep_listening())

    async def keep_listening(self) -> None:
        """Ask for audio while the call and the listener's rights last."""
        while True:
            user = await signed_in_user(self.scope)
            if user is None or not await database_sync_to_async(can_listen)(user):
                code = CLOSE_UNAUTHORIZED if user is None else CLOSE_FORBIDDEN
                await self.close(code=code)
                return
            live_socket = await selectors.live_socket_for_call(
                call_id=self.call_id, user=user
            )
            if live_socket is None or live_socket.channel_name != self.recorder:
                await self.listen_ended({})  # ended, or its worker died
                return
            try:
                renew = {"type": "listen.renew", "channel": self.channel_name}
                await self.channel_layer.send(self.recorder, renew)
            except Exception:
                logger.warning("listen-in could not renew", exc_info=True)
            await asyncio.sleep(events.LISTEN_RENEW_SECONDS)

    async def disconnect(self, code: int) -> None:
        if self.renew_task is not None:
            self.renew_task.cancel()
        if self.listener is not None:
            await self.log(AccessLogEntry.Action.LISTEN_END, self.listener)

    async def log(self, action: str, user: Any) -> None:
        """Who listened in to which call, from where, when they began and ended."""
        try:
            await database_sync_to_async(access.call_action_log)(
                call_id=self.call_id,
                action=action,
                user=user,
                ip_address=scope_client_ip(self.scope),
            )
        except Exception:  # the listener is not cut off for it; it is logged
            logger.exception("call %s: listen-in not logged", self.call_id)

    async def listen_audio(self, event: dict[str, Any]) -> None:
        await self.send(bytes_data=event["audio"])

    async def listen_ended(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps({"event": "ended"}))
        await self.close()
