"""The Vonage audio socket: thin routing from the socket to the spool and services."""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import services
from .audio import SpoolWriter
from .models import Call
from .vonage import (
    CLOSE_BAD_REQUEST,
    CLOSE_UNSUPPORTED_AUDIO,
    InvalidSocketMessage,
    InvalidWebhook,
    clean_id,
    parse_socket_message,
    sample_rate_from_content_type,
)

logger = logging.getLogger(__name__)

CALLS_GROUP = "calls"


class RecordingConsumer(AsyncWebsocketConsumer):
    """Records one connect leg: `websocket:connected`, then 20 ms PCM frames.

    The database is touched when the call is identified, for each text
    event (rare: DTMF) and once at the end; a binary frame only reaches the
    spool writer.
    """

    call: Call | None = None
    spool: SpoolWriter | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Audio frames skip Channels' per-message close_old_connections()
        # thread hop: they never touch the database.
        if message["type"] == "websocket.receive" and message.get("bytes") is not None:
            await self.receive_audio(message["bytes"])
        else:
            await super().dispatch(message)

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.socket_id = secrets.token_hex(8)
        self.message_count = 0
        self.refused = False
        await self.accept()
        try:
            self.call_uuid = clean_id(
                query.get("uuid", [""])[0], "uuid", required=False
            )
            self.conversation_uuid = clean_id(
                query.get("conversation_uuid", [""])[0],
                "conversation_uuid",
                required=False,
            )
        except InvalidWebhook as error:
            await self.refuse(CLOSE_BAD_REQUEST, str(error))

    async def refuse(self, code: int, reason: str) -> None:
        self.refused = True
        logger.warning("audio socket refused (%s): %s", code, reason)
        await self.close(code=code, reason=reason)

    async def receive(self, text_data: str | None = None, bytes_data=None) -> None:
        if bytes_data is not None:
            await self.receive_audio(bytes_data)
            return
        if text_data is None or self.refused:
            return
        self.message_count += 1
        try:
            message = parse_socket_message(text_data)
        except InvalidSocketMessage as error:
            if self.call is None:
                await self.refuse(CLOSE_BAD_REQUEST, str(error))
                return
            # Mid-call, a garbled text message is kept, and the audio goes on.
            await self.store_event("websocket:invalid", {"text": text_data[:2000]})
            return
        if message.is_connected and self.spool is None:
            await self.start(message.payload)
        elif self.call is None:
            await self.refuse(
                CLOSE_BAD_REQUEST, "first message must be websocket:connected"
            )
        else:
            await self.store_event(message.event, message.payload)

    async def start(self, connected: dict[str, Any]) -> None:
        """Tie the socket to its call and open the spool at the announced rate."""
        try:
            sample_rate = sample_rate_from_content_type(connected.get("content-type"))
        except InvalidSocketMessage as error:
            await self.refuse(CLOSE_UNSUPPORTED_AUDIO, str(error))
            return
        try:
            # The NCCO puts the ids in the URI and echoes them as headers.
            self.call_uuid = self.call_uuid or clean_id(
                connected.get("call_uuid"), "call_uuid", required=False
            )
            self.conversation_uuid = self.conversation_uuid or clean_id(
                connected.get("conversation_uuid"), "conversation_uuid", required=False
            )
        except InvalidWebhook as error:
            await self.refuse(CLOSE_BAD_REQUEST, str(error))
            return
        if not self.call_uuid and not self.conversation_uuid:
            await self.refuse(CLOSE_BAD_REQUEST, "no call uuid in the URI or headers")
            return
        self.call = await database_sync_to_async(services.call_for_socket)(
            call_uuid=self.call_uuid, conversation_uuid=self.conversation_uuid
        )
        self.spool = SpoolWriter(
            settings.SPOOL_DIR,
            call_uuid=self.call_uuid,
            conversation_uuid=self.conversation_uuid,
            sample_rate=sample_rate,
            flush_seconds=settings.CALLRECORDER_SPOOL_FLUSH_SECONDS,
        )
        await self.store_event("websocket:connected", connected)
        await self.publish("call.started")

    async def receive_audio(self, frame: bytes) -> None:
        if self.spool is not None:
            self.spool.write(frame)
        elif not self.refused:
            await self.refuse(CLOSE_BAD_REQUEST, "audio before websocket:connected")

    async def store_event(self, event: str, payload: dict[str, Any]) -> None:
        # Two identical DTMF presses are two events: the position on the
        # socket tells them apart.
        await database_sync_to_async(services.socket_event_record)(
            call=self.call,
            event=event,
            payload=payload,
            fingerprint=f"socket:{self.socket_id}:{self.message_count}",
        )

    async def disconnect(self, code: int) -> None:
        if self.spool is None:
            return
        finished = self.spool.close()
        try:
            recording = await database_sync_to_async(services.recording_finalize)(
                call=self.call, spool=finished
            )
        except Exception:
            # The spool stays on disk with its metadata; nothing is lost.
            logger.exception(
                "call %s: recording not stored; spool kept at %s",
                self.call_uuid or self.conversation_uuid,
                finished.path,
            )
            return
        logger.info(
            "call %s: socket closed (%s), %d frames, %.1f s recorded%s",
            self.call_uuid or self.conversation_uuid,
            code,
            finished.frame_count,
            finished.duration_seconds,
            "" if recording else ", no audio",
        )
        await self.publish("call.ended")

    async def publish(self, event_type: str) -> None:
        """Tell live pages (via the channel layer) that a call started or ended."""
        if self.channel_layer is not None:
            await self.channel_layer.group_send(
                CALLS_GROUP, {"type": event_type, "call_id": self.call.pk}
            )
