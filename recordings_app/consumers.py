"""The Vonage audio socket: thin routing from the socket to the spool and services."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from typing import Any, ClassVar
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
)
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

from . import live, services, signatures
from .audio import SpoolWriter
from .live import CALLS_GROUP, CLOSE_FORBIDDEN, CLOSE_NOT_LIVE
from .models import Call, LiveSocket
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
    in_hand: asyncio.Future | None = None  # the text or control message being handled
    # Live: reachable on the channel layer by any process while recording.
    live_socket_id: int | None = None
    control_task: asyncio.Task | None = None
    last_frame = b""
    listeners: dict[str, float]  # listen-in channel -> monotonic expiry
    listen_buffer: bytearray
    # Messages for live pages, sent by a task of their own: the audio path
    # never waits on Redis (a stalled Redis costs live pages, not audio).
    outbox: asyncio.Queue | None = None
    outbox_task: asyncio.Task | None = None
    ending = False  # the call is over: its audio is being stored

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
        self.listeners = {}
        self.listen_buffer = bytearray()
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
        self.listen_chunk_bytes = int(sample_rate * live.LISTEN_CHUNK_SECONDS) * 2
        await self.store_event("websocket:connected", connected)
        await self.go_live()

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
            self.last_frame = frame
            if self.listeners:
                self.listen_buffer += bytes(len(frame)) if self.paused else frame
                if len(self.listen_buffer) >= self.listen_chunk_bytes:
                    self.send_to_listeners()
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
        # No pause now: the audio is complete. The call stays with the
        # monitor (heartbeat, no level) until leave_live: storing a long
        # call can take a while, and it is live until its recording is in.
        self.ending = True
        try:
            await self.store_recording(code)
        finally:
            await self.leave_live()
        run_in_background(purge_old_calls_if_due)

    async def store_recording(self, code: int) -> None:
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
        if finished.ended_paused:
            await self.run_quietly(
                services.recording_ended_paused_record,
                call=self.call,
                at_seconds=finished.duration_seconds,
            )
        try:
            # Not in the one thread every socket of this process shares for
            # its queries: hashing and uploading a long call (to S3, say)
            # would hold up every other call's start, events and heartbeat.
            finalize = database_sync_to_async(
                services.recording_finalize, thread_sensitive=False
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

    # --- live: dashboard, pause, listen-in ------------------------------

    @property
    def call_id(self) -> int:
        return self.call.pk

    @property
    def paused(self) -> bool:
        return self.spool is not None and self.spool.paused

    async def go_live(self) -> None:
        """Show the call on dashboards and take pause and listen-in requests.

        Best effort: if the channel layer or the database fails here, the
        call is recorded all the same, only not shown live.
        """
        if self.channel_layer is None:
            return
        try:
            self.channel_name = await self.channel_layer.new_channel()
            live_socket = await database_sync_to_async(services.live_socket_open)(
                call=self.call,
                channel_name=self.channel_name,
                spool_name=self.spool.path.name,
                sample_rate=self.spool.sample_rate,
            )
        except Exception:
            logger.exception("call %s: not shown live", self.call_uuid)
            return
        self.live_socket_id = live_socket.pk
        self.outbox = asyncio.Queue(maxsize=OUTBOX_SIZE)
        self.outbox_task = asyncio.ensure_future(self.deliver())
        self.control_task = asyncio.ensure_future(self.take_control_messages())
        live.monitor().add(self)
        self.publish(
            "call.started",
            call=live.call_summary(self.call, live_since=live_socket.started_at),
        )

    async def leave_live(self) -> None:
        if self.live_socket_id is None:
            return
        live.monitor().discard(self)
        if self.control_task is not None:
            self.control_task.cancel()
        if self.listeners and self.listen_buffer:
            self.send_to_listeners()  # the last fraction of a second
        for channel in list(self.listeners):
            self.post(channel, {"type": "listen.ended"})
        self.listeners.clear()
        await self.run_quietly(
            services.live_socket_close, live_socket_id=self.live_socket_id
        )
        self.live_socket_id = None
        if not await self.call_still_live():
            self.publish("call.ended")
        try:  # what is queued goes out, unless Redis has stalled
            await asyncio.wait_for(self.outbox.join(), OUTBOX_DRAIN_SECONDS)
        except TimeoutError:
            logger.warning("call %s: live pages not told of the end", self.call_uuid)
        self.outbox_task.cancel()

    async def call_still_live(self) -> bool:
        """Another socket records the same call (Vonage reconnected)."""
        try:
            sockets = LiveSocket.objects.alive().filter(call_id=self.call.pk)
            return await sockets.aexists()
        except Exception:
            return False

    def post(self, channel: str | None, message: dict[str, Any]) -> None:
        """Queue a message for a live page (channel None: every dashboard)."""
        if self.outbox is None:
            return
        # Full when Redis has stalled: live pages miss this, the recording not.
        with contextlib.suppress(asyncio.QueueFull):
            self.outbox.put_nowait((channel, message))

    async def deliver(self) -> None:
        """Send what post() queued, in order."""
        while True:
            channel, message = await self.outbox.get()
            try:
                if channel is None:
                    await self.channel_layer.group_send(CALLS_GROUP, message)
                else:
                    await self.channel_layer.send(channel, message)
            except Exception:
                if channel in self.listeners:  # a full or lost listener: gone
                    del self.listeners[channel]
                elif channel is None:
                    logger.exception(
                        "call %s: %s not published", self.call_uuid, message["type"]
                    )
            finally:
                self.outbox.task_done()

    async def take_control_messages(self) -> None:
        """Pause, resume and listen-in requests, from any process; not per frame."""
        handlers = {
            "recording.pause": self.on_pause,
            "listen.renew": self.on_listen_renew,
        }
        while True:
            try:
                message = await self.channel_layer.receive(self.channel_name)
                handler = handlers.get(message.get("type"))
                if handler is not None:
                    await handler(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("call %s: control message failed", self.call_uuid)
                await asyncio.sleep(1)

    async def on_pause(self, message: dict[str, Any]) -> None:
        """Pause or resume, answer who asked, then put it on the timeline."""
        if time.time() > float(message.get("expires_at") or "inf"):
            return  # the page gave up waiting and said so: too late to apply
        reply_to = message.get("reply_to")
        if self.ending:
            if reply_to:
                await self.channel_layer.send(
                    reply_to, {"type": "pause.done", "ended": True}
                )
            return
        paused = bool(message.get("paused"))
        by = str(message.get("by", ""))[:150]
        changed = self.spool.paused != paused
        self.spool.paused = paused
        at_seconds = self.spool.seconds
        if reply_to:  # the audio is silenced now: say so before the bookkeeping
            await self.channel_layer.send(
                reply_to, {"type": "pause.done", "paused": paused}
            )
        if changed:
            await self.run_quietly(
                services.recording_pause_record,
                live_socket_id=self.live_socket_id,
                paused=paused,
                by=by,
                at_seconds=at_seconds,
            )
            self.publish("call.paused", paused=paused, by=by)

    async def on_listen_renew(self, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        if isinstance(channel, str) and channel:
            if not self.listeners:
                self.listen_buffer.clear()
            self.listeners[channel] = time.monotonic() + live.LISTEN_SECONDS

    def send_to_listeners(self) -> None:
        """A chunk of audio to each staff member listening in (every 200 ms)."""
        whole_samples = len(self.listen_buffer) // 2 * 2  # an odd byte waits
        chunk = bytes(self.listen_buffer[:whole_samples])
        del self.listen_buffer[:whole_samples]
        now = time.monotonic()
        for channel, until in list(self.listeners.items()):
            if until < now:
                del self.listeners[channel]
            else:
                self.post(channel, {"type": "listen.audio", "audio": chunk})

    async def run_quietly(self, function, **kwargs) -> Any:
        """A database write the call must survive without (it is logged)."""
        try:
            return await database_sync_to_async(function)(**kwargs)
        except Exception:
            logger.exception("call %s: %s failed", self.call_uuid, function.__name__)
            return None

    def publish(self, event_type: str, **fields: Any) -> None:
        """Tell live pages what happened to this call."""
        self.post(None, {"type": event_type, "call_id": self.call.pk, **fields})


OUTBOX_SIZE = 100  # 20 s of listen-in chunks for one listener
OUTBOX_DRAIN_SECONDS = 5.0
background_tasks: set[asyncio.Future] = set()


def keep_until_done(task: asyncio.Future) -> None:
    """Hold a task nobody awaits: the event loop keeps only weak references."""
    background_tasks.add(task)
    task.add_done_callback(background_tasks.discard)


def run_in_background(function) -> None:
    """Run a slow sync function in a thread, after the socket is done with."""
    keep_until_done(
        asyncio.ensure_future(sync_to_async(function, thread_sensitive=False)())
    )


def purge_old_calls_if_due() -> None:
    """Automatic retention, where calls end (a cheap check unless it is due).

    In a thread of its own, not the one all sockets share for their queries:
    a purge may take seconds.
    """
    try:
        services.retention_purge_if_due()
    finally:
        connection.close()  # this worker thread's own


async def signed_in_user(scope) -> Any:
    """The socket's user as the session says now (signed out or demoted since?)."""
    session = scope.get("session")
    if session is None or session.session_key is None:
        return None
    fresh = {"session": session.__class__(session.session_key)}
    user = await get_user(fresh)
    return user if user.is_authenticated else None


async def user_or_refuse(consumer: AsyncWebsocketConsumer, *, staff: bool = False):
    """The page's signed-in user, or None once the socket is closed with why."""
    user = consumer.scope.get("user")
    if user is None or not user.is_authenticated:
        await accept_and_close(consumer, CLOSE_UNAUTHORIZED)
        return None
    if staff and not user.is_staff:
        await accept_and_close(consumer, CLOSE_FORBIDDEN)
        return None
    return user


async def accept_and_close(consumer: AsyncWebsocketConsumer, code: int) -> None:
    """Close with a code the browser can read: closing before accepting
    would only reject the handshake (every client sees 1006)."""
    await consumer.accept()
    await consumer.close(code=code)


class CallsConsumer(AsyncJsonWebsocketConsumer):
    """A signed-in page's live view: calls starting, their levels, pauses, ends.

    While one is open, recording processes send audio levels (see live.py);
    the page renews that wish every few seconds.
    """

    renew_task: asyncio.Task | None = None

    async def connect(self) -> None:
        if await user_or_refuse(self) is None:
            return
        await self.channel_layer.group_add(CALLS_GROUP, self.channel_name)
        await self.accept()
        # The page was drawn a moment ago: calls may have started or ended
        # since, before this socket joined the group.
        await self.send_snapshot()
        self.renew_task = asyncio.ensure_future(self.keep_watching())

    async def send_snapshot(self) -> None:
        calls = await database_sync_to_async(live.calls_in_progress)()
        await self.send_json({"event": "snapshot", "calls": calls})

    async def keep_watching(self) -> None:
        """Say this page watches; stop if its user signed out meanwhile.

        Every heartbeat it also gets the calls in progress afresh: a call
        whose process died never sends "ended", and must not stay live.
        """
        snapshot_due = time.monotonic() + LiveSocket.HEARTBEAT_SECONDS
        while True:
            if await signed_in_user(self.scope) is None:
                await self.close(code=CLOSE_UNAUTHORIZED)
                return
            try:
                await live.watch_renew(self.channel_layer)
                # Group members expire (a day, in Redis): a wall screen stays.
                await self.channel_layer.group_add(CALLS_GROUP, self.channel_name)
                if time.monotonic() >= snapshot_due:
                    snapshot_due = time.monotonic() + LiveSocket.HEARTBEAT_SECONDS
                    # Through this socket's own queue, not from this task: a
                    # call that starts while the query runs must reach the
                    # page after the snapshot that could not include it.
                    refresh = {"type": "calls.refresh"}
                    await self.channel_layer.send(self.channel_name, refresh)
            except Exception:
                logger.warning("dashboard could not renew its watch", exc_info=True)
            await asyncio.sleep(live.WATCH_RENEW_SECONDS)

    async def disconnect(self, code: int) -> None:
        if self.renew_task is not None:
            self.renew_task.cancel()
        await self.channel_layer.group_discard(CALLS_GROUP, self.channel_name)

    async def watch_query(self, event: dict[str, Any]) -> None:
        """A process just took its first call: tell it this page watches."""
        await live.watch_renew(self.channel_layer)

    async def calls_refresh(self, event: dict[str, Any]) -> None:
        try:
            await self.send_snapshot()
        except Exception:  # the database is away: keep the page, try next time
            logger.warning("dashboard snapshot failed", exc_info=True)

    async def call_started(self, event: dict[str, Any]) -> None:
        await self.send_json({"event": "started", "call": event["call"]})

    async def call_ended(self, event: dict[str, Any]) -> None:
        await self.send_json({"event": "ended", "call_id": event["call_id"]})

    async def call_paused(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {
                "event": "paused",
                "call_id": event["call_id"],
                "paused": event["paused"],
                "by": event["by"],
            }
        )

    async def calls_levels(self, event: dict[str, Any]) -> None:
        await self.send_json({"event": "levels", "levels": event["levels"]})


class ListenConsumer(AsyncWebsocketConsumer):
    """Staff hear a call in progress: its audio, a fraction of a second late.

    Sends one JSON text message with the sample rate, then binary chunks of
    16-bit PCM (silence while the recording is paused), then
    {"event": "ended"} and a normal close when the call ends.
    """

    renew_task: asyncio.Task | None = None

    async def connect(self) -> None:
        if await user_or_refuse(self, staff=True) is None:
            return
        call_id = self.scope["url_route"]["kwargs"]["call_id"]
        live_socket = await services.live_socket_for_call(call_id=call_id)
        if live_socket is None:
            await accept_and_close(self, CLOSE_NOT_LIVE)
            return
        self.call_id = call_id
        self.recorder = live_socket.channel_name
        await self.accept()
        await self.send(text_data=json.dumps({"sample_rate": live_socket.sample_rate}))
        self.renew_task = asyncio.ensure_future(self.keep_listening())

    async def keep_listening(self) -> None:
        """Ask for audio while the call and the staff member's rights last."""
        while True:
            user = await signed_in_user(self.scope)
            if user is None or not user.is_staff:
                code = CLOSE_UNAUTHORIZED if user is None else CLOSE_FORBIDDEN
                await self.close(code=code)
                return
            live_socket = await services.live_socket_for_call(call_id=self.call_id)
            if live_socket is None or live_socket.channel_name != self.recorder:
                await self.listen_ended({})  # ended, or its worker died
                return
            try:
                renew = {"type": "listen.renew", "channel": self.channel_name}
                await self.channel_layer.send(self.recorder, renew)
            except Exception:
                logger.warning("listen-in could not renew", exc_info=True)
            await asyncio.sleep(live.LISTEN_RENEW_SECONDS)

    async def disconnect(self, code: int) -> None:
        if self.renew_task is not None:
            self.renew_task.cancel()

    async def listen_audio(self, event: dict[str, Any]) -> None:
        await self.send(bytes_data=event["audio"])

    async def listen_ended(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps({"event": "ended"}))
        await self.close()
