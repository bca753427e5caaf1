"""The Vonage audio socket: frames to the spool, everything else to services.

Only a socket with a valid, unused token for its call gets past connect
(vonage_auth). The database is touched when the socket opens, for each
text event (rare: DTMF) and once at the end; a binary frame only reaches
the spool and the call's live presence.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any, ClassVar

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from .. import metrics
from ..audio.spool import FinishedSpool, SpoolWriter
from ..models import Call
from ..services import calls, recordings
from ..sockets import (
    CLOSE_BAD_REQUEST,
    CLOSE_CALL_TOO_LONG,
    CLOSE_FRAME_TOO_BIG,
    CLOSE_NOT_CONNECTED,
    CLOSE_STORAGE_FAILED,
    CLOSE_TOO_MANY_SOCKETS,
    CLOSE_UNSUPPORTED_AUDIO,
)
from ..vonage import (
    InvalidSocketMessage,
    parse_socket_message,
    sample_rate_from_content_type,
)
from .presence import LivePresence
from .tasks import (
    keep_until_done,
    purge_old_calls_if_due,
    run_in_background,
    write_quietly,
)
from .vonage_auth import SocketRefused, authenticate

logger = logging.getLogger(__name__)


async def close_counted(spool: SpoolWriter) -> FinishedSpool:
    """Close a socket's spool off the event loop, then add its frames and
    bytes to the metrics: once per socket, from the counts the spool keeps,
    so the per-frame path has no metric call. A spool that cannot be closed
    is a recording failed (left to recovery)."""
    try:
        return await sync_to_async(spool.close, thread_sensitive=False)()
    except Exception:
        metrics.RECORDINGS_FAILED.labels(via="socket").inc()
        raise
    finally:
        metrics.audio_received(frames=spool.frame_count, size=spool.bytes_received)


class _NoConnectionTrips(AsyncWebsocketConsumer):
    """Channels' consumer, less its trip to the database thread before every
    message and after the close to close stale connections: each query of
    the recording consumer goes through database_sync_to_async, which does
    that itself, and in a burst each trip waits behind every other call's
    writes. (It joins no group, so the close has nothing else to do.)"""

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        await self.disconnect(message["code"])
        raise StopConsumer()


class RecordingConsumer(_NoConnectionTrips):
    """Records one connect leg: `websocket:connected`, then 20 ms PCM frames."""

    # Sockets recording in this process, for CALLRECORDER_MAX_SOCKETS.
    active_sockets: ClassVar[int] = 0

    call: Call | None = None
    call_uuid = ""
    conversation_uuid = ""
    spool: SpoolWriter | None = None
    presence: LivePresence | None = None
    counted = False
    refused = False
    said_connected = False
    connected_wait: asyncio.Task | None = None
    finishing: asyncio.Future | None = None
    in_hand: asyncio.Future | None = None  # the text or control message being handled

    async def __call__(self, scope, receive, send) -> None:
        """Take the socket's messages one by one, in order.

        Channels' own loop also listens on the channel layer, starting a task
        per message; this socket only publishes to groups (its presence has
        a channel of its own), so a plain loop does, and a frame can never be
        taken off the queue and then dropped.
        """
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send
        try:
            while True:
                await self.handle(await receive())
        except StopConsumer:
            pass
        except asyncio.CancelledError:
            # Daphne cancels a consumer still busy application_close_timeout
            # (10 s) after its peer left, frames it had queued and all: finish
            # what is in hand, take the rest, store the recording, then go.
            # (It cancels again every second: the drain goes on regardless.)
            draining = asyncio.ensure_future(self.drain(receive))
            keep_until_done(draining)
            await asyncio.shield(draining)
            raise
        except Exception:
            # Whatever broke, settle the socket count and keep the audio.
            await self.disconnect(code=1011)
            raise

    async def handle(self, message: dict[str, Any]) -> None:
        """One message. Audio goes straight to the spool (no database, no
        thread hop). Anything else runs in a task a cancellation cannot cut
        half-way: a socket stopped while opening (the call not yet found,
        the spool not yet open) would leave its queued audio nowhere to go."""
        if message["type"] == "websocket.receive" and message.get("bytes") is not None:
            await self.receive_audio(message["bytes"])
            return
        self.in_hand = asyncio.ensure_future(self.dispatch(message))
        await asyncio.shield(self.in_hand)

    async def drain(self, receive) -> None:
        """The rest of the socket's life, after its cancellation."""
        logger.warning(
            "call %s: finishing after the server's close timeout", self.call_uuid
        )
        try:
            if self.in_hand is not None:
                await self.in_hand
            while True:
                try:
                    message = await asyncio.wait_for(receive(), timeout=0.1)
                except TimeoutError:
                    break
                await self.handle(message)
        except StopConsumer:  # the disconnect message: the recording is stored
            return
        except Exception:
            logger.exception("call %s: broke while finishing", self.call_uuid)
        await self.disconnect(code=1006)

    async def connect(self) -> None:
        self.socket_id = secrets.token_hex(8)
        self.message_count = 0
        self.max_frame_bytes = settings.CALLRECORDER_MAX_FRAME_BYTES
        # A custom close code needs an accepted socket; nothing is stored
        # until the checks below pass.
        await self.accept()
        try:
            socket_call = await authenticate(self.scope)
        except SocketRefused as refusal:
            await self.refuse(refusal.code, refusal.reason)
            return
        self.call_uuid = socket_call.call_uuid
        self.conversation_uuid = socket_call.conversation_uuid
        if RecordingConsumer.active_sockets >= settings.CALLRECORDER_MAX_SOCKETS:
            await self.refuse(
                CLOSE_TOO_MANY_SOCKETS,
                f"{RecordingConsumer.active_sockets} sockets already recording",
            )
            return
        RecordingConsumer.active_sockets += 1
        self.counted = True
        self.connected_wait = asyncio.ensure_future(self.close_unless_connected())

    async def close_unless_connected(self) -> None:
        """A socket that never says websocket:connected frees its slot."""
        timeout = settings.CALLRECORDER_CONNECTED_TIMEOUT_SECONDS
        await asyncio.sleep(timeout)
        if not self.said_connected and not self.refused:
            self.release_slot()  # now, whether or not the peer answers the close
            await self.refuse(
                CLOSE_NOT_CONNECTED, f"no websocket:connected within {timeout:g} s"
            )

    def release_slot(self) -> None:
        if self.counted:
            RecordingConsumer.active_sockets -= 1
            self.counted = False

    async def refuse(self, code: int, reason: str) -> None:
        self.refused = True
        logger.warning("audio socket closed (%s): %s", code, reason)
        await self.close(code=code, reason=reason)

    async def receive(self, text_data: str | None = None, bytes_data=None) -> None:
        """A text message (handle() takes audio before it gets here)."""
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
            self.said_connected = True
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
        self.spool = SpoolWriter(
            settings.SPOOL_DIR,
            call_uuid=self.call_uuid,
            conversation_uuid=self.conversation_uuid,
            sample_rate=sample_rate,
            flush_seconds=settings.CALLRECORDER_SPOOL_FLUSH_SECONDS,
        )
        self.max_samples = sample_rate * settings.CALLRECORDER_MAX_CALL_SECONDS
        channel_name = await LivePresence.new_channel(
            self.channel_layer, call_uuid=self.call_uuid
        )
        live = channel_name and {
            "channel_name": channel_name,
            "spool_name": self.spool.path.name,
            "sample_rate": sample_rate,
        }
        # The NCCO also echoes the ids as headers in this message; the ones
        # the token vouches for (authenticate) are the ones that count. If
        # the database fails here, the spool (no audio yet) is left to
        # recovery, as any spool whose recording could not be stored.
        self.call, live_socket = await database_sync_to_async(calls.call_socket_open)(
            call_uuid=self.call_uuid,
            conversation_uuid=self.conversation_uuid,
            connected=connected,
            fingerprint=self.event_fingerprint(),
            live=live or None,
        )
        self.presence = LivePresence(
            channel_layer=self.channel_layer,
            call=self.call,
            call_uuid=self.call_uuid,
            spool=self.spool,
        )
        self.presence.start(live_socket)

    def event_fingerprint(self) -> str:
        """Two identical DTMF presses are two events: the position on the
        socket tells them apart."""
        return f"socket:{self.socket_id}:{self.message_count}"

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
            self.presence.hear(frame)
            if self.spool.sample_count >= self.max_samples:
                await self.refuse(
                    CLOSE_CALL_TOO_LONG,
                    f"call reached {settings.CALLRECORDER_MAX_CALL_SECONDS} s",
                )

    async def store_event(self, event: str, payload: dict[str, Any]) -> None:
        # A database error costs the event, never the call: the audio goes on.
        try:
            await database_sync_to_async(calls.socket_event_record)(
                call=self.call,
                event=event,
                payload=payload,
                fingerprint=self.event_fingerprint(),
                paused=self.spool is not None and self.spool.paused,
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
        self.release_slot()
        if self.connected_wait is not None:
            self.connected_wait.cancel()
        if self.spool is None:
            return
        # No pause now: the audio is complete. The call stays with the
        # monitor (heartbeat, no level) until its presence stops: storing a
        # long call can take a while, and it is live until its recording is in.
        if self.presence is not None:
            self.presence.ending = True
        try:
            await self.store_recording(code)
        finally:
            if self.presence is not None:
                await self.presence.stop()
        run_in_background(purge_old_calls_if_due)

    async def store_recording(self, code: int) -> None:
        try:
            # Off the event loop: syncing a long call to disk takes a while,
            # and other calls' frames keep arriving meanwhile.
            finished = await close_counted(self.spool)
        except Exception:
            logger.exception(
                "call %s: spool could not be closed; kept at %s for recovery",
                self.call_uuid,
                self.spool.path,
            )
            return
        if finished.ended_paused:
            await write_quietly(
                recordings.recording_ended_paused_record,
                call_uuid=self.call_uuid,
                call=self.call,
                at_seconds=finished.duration_seconds,
            )
        try:
            # Not in the one thread every socket of this process shares for
            # its queries: hashing and uploading a long call (to S3, say)
            # would hold up every other call's start, events and heartbeat.
            finalize = database_sync_to_async(
                recordings.recording_finalize, thread_sensitive=False
            )
            recording = await finalize(call=self.call, spool=finished)
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
