"""The Vonage audio socket: thin routing from the socket to the spool and services."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any, ClassVar
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from . import services, signatures
from .audio import SpoolWriter
from .models import Call
from .vonage import (
    CLOSE_BAD_REQUEST,
    CLOSE_CALL_TOO_LONG,
    CLOSE_FRAME_TOO_BIG,
    CLOSE_STORAGE_FAILED,
    CLOSE_TOKEN_REUSED,
    CLOSE_TOO_MANY_SOCKETS,
    CLOSE_UNAUTHORIZED,
    CLOSE_UNSUPPORTED_AUDIO,
    CLOSE_WRONG_CALL,
    InvalidSocketMessage,
    InvalidWebhook,
    clean_id,
    parse_socket_message,
    sample_rate_from_content_type,
)

logger = logging.getLogger(__name__)

CALLS_GROUP = "calls"


class SocketRefused(Exception):
    """Why a socket may not record: a close code and a reason for the log."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class RecordingConsumer(AsyncWebsocketConsumer):
    """Records one connect leg: `websocket:connected`, then 20 ms PCM frames.

    Only a socket with a valid, unused token for its call gets that far.
    The database is touched when the socket opens, for each text event
    (rare: DTMF) and once at the end; a binary frame only reaches the spool.
    """

    # Sockets recording in this process, for CALLRECORDER_MAX_SOCKETS.
    active_sockets: ClassVar[int] = 0

    call: Call | None = None
    call_uuid = ""
    spool: SpoolWriter | None = None
    counted = False
    refused = False
    finishing: asyncio.Future | None = None

    async def __call__(self, scope, receive, send) -> None:
        """Take the socket's messages one by one, in order.

        Channels' own loop also listens on the channel layer, starting a task
        per message; this socket only publishes to groups, so a plain loop
        does, and a frame can never be taken off the queue and then dropped.
        """
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        except asyncio.CancelledError:
            # Daphne cancels a consumer still busy application_close_timeout
            # (10 s) after its peer left, frames it had queued and all: write
            # those out and finish the recording before letting go.
            await asyncio.shield(self.drain(receive))
            raise
        except Exception:
            # Whatever broke, settle the socket count and keep the audio.
            await self.disconnect(code=1011)
            raise

    async def drain(self, receive) -> None:
        """Write every frame still queued for this socket, then finish."""
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout=0.1)
            except TimeoutError:
                break
            if message["type"] == "websocket.disconnect":
                break
            if message.get("bytes") is not None and self.spool is not None:
                self.spool.write(message["bytes"])
        logger.warning(
            "call %s: finishing after the server's close timeout", self.call_uuid
        )
        await self.disconnect(code=1006)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Audio frames skip Channels' per-message close_old_connections()
        # thread hop: they never touch the database.
        if message["type"] == "websocket.receive" and message.get("bytes") is not None:
            await self.receive_audio(message["bytes"])
        else:
            await super().dispatch(message)

    async def connect(self) -> None:
        self.socket_id = secrets.token_hex(8)
        self.message_count = 0
        self.max_frame_bytes = settings.CALLRECORDER_MAX_FRAME_BYTES
        # A custom close code needs an accepted socket; nothing is stored
        # until the checks below pass.
        await self.accept()
        try:
            await self.authenticate()
        except SocketRefused as refusal:
            await self.refuse(refusal.code, refusal.reason)
            return
        if RecordingConsumer.active_sockets >= settings.CALLRECORDER_MAX_SOCKETS:
            await self.refuse(
                CLOSE_TOO_MANY_SOCKETS,
                f"{RecordingConsumer.active_sockets} sockets already recording",
            )
            return
        RecordingConsumer.active_sockets += 1
        self.counted = True

    async def authenticate(self) -> None:
        """The URI's token must be ours, fresh, unused and made for this call."""
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        try:
            self.call_uuid = clean_id(query.get("uuid", [""])[0], "uuid")
            self.conversation_uuid = clean_id(
                query.get("conversation_uuid", [""])[0],
                "conversation_uuid",
                required=False,
            )
        except InvalidWebhook as error:
            raise SocketRefused(CLOSE_BAD_REQUEST, str(error)) from None
        token = query.get("token", [""])[0]
        try:
            token_uuid = signatures.socket_token_call_uuid(
                token, max_age=settings.CALLRECORDER_SOCKET_TOKEN_MAX_AGE
            )
            if settings.VONAGE_SIGNATURE_SECRET:
                claims = signatures.verify_vonage_jwt(
                    signatures.bearer_token(self.header("authorization")),
                    secret=settings.VONAGE_SIGNATURE_SECRET,
                    max_age=settings.VONAGE_SIGNATURE_MAX_AGE,
                )
        except signatures.SignatureError as error:
            raise SocketRefused(CLOSE_UNAUTHORIZED, str(error)) from None
        if token_uuid != self.call_uuid:
            raise SocketRefused(CLOSE_WRONG_CALL, "the token was made for another call")
        # Each one-time token is remembered as long as it could pass its age
        # check. A Vonage JWT shares its key with the webhooks': one token,
        # one use, wherever it is presented.
        uses = [(f"socket:{token}", settings.CALLRECORDER_SOCKET_TOKEN_MAX_AGE)]
        if settings.VONAGE_SIGNATURE_SECRET:
            uses.append((f"jwt:{claims['jti']}", settings.VONAGE_SIGNATURE_MAX_AGE))
        for key, max_age in uses:
            if not await database_sync_to_async(services.token_use)(
                key=key, valid_for=max_age + signatures.CLOCK_SKEW_SECONDS
            ):
                raise SocketRefused(CLOSE_TOKEN_REUSED, "the token was used before")

    def header(self, name: str) -> str | None:
        for key, value in self.scope.get("headers", []):
            if key.decode("latin-1").lower() == name:
                return value.decode("latin-1")
        return None

    async def refuse(self, code: int, reason: str) -> None:
        self.refused = True
        logger.warning("audio socket closed (%s): %s", code, reason)
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
            # The NCCO echoes the ids as headers; the URI's uuid is the one
            # the token vouches for.
            self.conversation_uuid = self.conversation_uuid or clean_id(
                connected.get("conversation_uuid"), "conversation_uuid", required=False
            )
        except InvalidWebhook as error:
            await self.refuse(CLOSE_BAD_REQUEST, str(error))
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
        self.max_samples = sample_rate * settings.CALLRECORDER_MAX_CALL_SECONDS
        await self.store_event("websocket:connected", connected)
        await self.publish("call.started")

    async def receive_audio(self, frame: bytes) -> None:
        if self.refused:
            return
        if self.spool is None:
            await self.refuse(CLOSE_BAD_REQUEST, "audio before websocket:connected")
        elif len(frame) > self.max_frame_bytes:
            await self.refuse(
                CLOSE_FRAME_TOO_BIG,
                f"a {len(frame)}-byte frame (limit {self.max_frame_bytes})",
            )
        else:
            try:
                self.spool.write(frame)
            except OSError as error:  # disk full, I/O error: keep what is on disk
                await self.refuse(CLOSE_STORAGE_FAILED, f"spool write failed: {error}")
                return
            if self.spool.sample_count >= self.max_samples:
                await self.refuse(
                    CLOSE_CALL_TOO_LONG,
                    f"call reached {settings.CALLRECORDER_MAX_CALL_SECONDS} s",
                )

    async def store_event(self, event: str, payload: dict[str, Any]) -> None:
        # Two identical DTMF presses are two events: the position on the
        # socket tells them apart. A database error costs the event, never
        # the call: the audio goes on.
        try:
            await database_sync_to_async(services.socket_event_record)(
                call=self.call,
                event=event,
                payload=payload,
                fingerprint=f"socket:{self.socket_id}:{self.message_count}",
            )
        except Exception:
            logger.exception("call %s: %s event not stored", self.call_uuid, event)

    async def disconnect(self, code: int) -> None:
        # Finished once, in a task of its own: if Daphne cancels the consumer
        # half-way, drain() waits for the same work instead of repeating it.
        if self.finishing is None:
            self.finishing = asyncio.ensure_future(self.finish(code))
        await asyncio.shield(self.finishing)

    async def finish(self, code: int) -> None:
        """Close the spool and store the recording; never raises."""
        if self.counted:
            RecordingConsumer.active_sockets -= 1
            self.counted = False
        if self.spool is None:
            return
        try:
            # Off the event loop: syncing a long call to disk takes a while,
            # and other calls' frames keep arriving meanwhile.
            finished = await sync_to_async(self.spool.close, thread_sensitive=False)()
        except Exception:
            logger.exception(
                "call %s: spool could not be closed; kept at %s for recovery",
                self.call_uuid,
                self.spool.path,
            )
            return
        try:
            recording = await database_sync_to_async(services.recording_finalize)(
                call=self.call, spool=finished
            )
        except Exception:
            # The spool stays on disk with its metadata; nothing is lost.
            logger.exception(
                "call %s: recording not stored; spool kept at %s",
                self.call_uuid,
                finished.path,
            )
            return
        logger.info(
            "call %s: socket closed (%s), %d frames, %.1f s recorded%s",
            self.call_uuid,
            code,
            finished.frame_count,
            finished.duration_seconds,
            "" if recording else ", no audio",
        )
        await self.publish("call.ended")

    async def publish(self, event_type: str) -> None:
        """Tell live pages (via the channel layer) that a call started or ended."""
        if self.channel_layer is None:
            return
        try:
            await self.channel_layer.group_send(
                CALLS_GROUP, {"type": event_type, "call_id": self.call.pk}
            )
        except Exception:  # Redis down: live pages miss it, the call goes on
            logger.exception("call %s: %s not published", self.call_uuid, event_type)
