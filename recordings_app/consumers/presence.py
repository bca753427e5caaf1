"""A recording socket's live side: dashboards, pause and listen-in.

Best effort throughout: if the channel layer or the database fails, the
call is recorded all the same, only not shown live. Messages for live pages
go through an outbox drained by a task of its own, so the audio path never
waits on Redis (a stalled Redis costs live pages, not audio).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from ..audio.spool import SpoolWriter
from ..live import events
from ..live.monitor import monitor
from ..models import Call, LiveSocket
from ..services import live_sockets, recordings
from .tasks import write_quietly

logger = logging.getLogger(__name__)

OUTBOX_SIZE = 100  # 20 s of listen-in chunks for one listener
OUTBOX_DRAIN_SECONDS = 5.0


class LivePresence:
    """One call's presence while it is recorded, in whichever process holds it.

    Reachable on the channel layer by any process (its channel name is on
    its LiveSocket row); the process's LiveMonitor reads its last frame for
    the level meter and renews its row.
    """

    def __init__(
        self, *, channel_layer, call: Call, call_uuid: str, spool: SpoolWriter
    ) -> None:
        self.channel_layer = channel_layer
        self.call = call
        self.call_uuid = call_uuid  # for the log
        self.spool = spool
        self.channel_name = ""
        self.live_socket_id: int | None = None
        self.last_frame = b""
        self.listeners: dict[str, float] = {}  # channel -> monotonic expiry
        self.listen_buffer = bytearray()
        self.listen_chunk_bytes = (
            int(spool.sample_rate * events.LISTEN_CHUNK_SECONDS) * 2
        )
        self.outbox: asyncio.Queue | None = None
        self.outbox_task: asyncio.Task | None = None
        self.control_task: asyncio.Task | None = None
        self.ending = False  # the call is over: its audio is being stored

    @property
    def call_id(self) -> int:
        return self.call.pk

    @property
    def paused(self) -> bool:
        return self.spool.paused

    @staticmethod
    async def new_channel(channel_layer, *, call_uuid: str) -> str:
        """The channel pause and listen-in requests will come on; "" if none."""
        if channel_layer is None:
            return ""
        try:
            return await channel_layer.new_channel()
        except Exception:
            logger.exception("call %s: not shown live", call_uuid)
            return ""

    def start(self, live_socket: LiveSocket | None) -> None:
        """Show the call on dashboards and take pause and listen-in requests.

        live_socket: the call's live row (None: not shown live), made in
        the same transaction as the socket's call (calls.call_socket_open).
        """
        if live_socket is None:
            return
        self.channel_name = live_socket.channel_name
        self.live_socket_id = live_socket.pk
        self.outbox = asyncio.Queue(maxsize=OUTBOX_SIZE)
        self.outbox_task = asyncio.ensure_future(self.deliver())
        self.control_task = asyncio.ensure_future(self.take_control_messages())
        monitor().add(self)
        self.publish(
            "call.started",
            call=events.call_summary(self.call, live_since=live_socket.started_at),
        )

    def hear(self, frame: bytes) -> None:
        """Every frame: kept for the level meter, buffered for listeners."""
        self.last_frame = frame
        if self.listeners:
            self.listen_buffer += bytes(len(frame)) if self.spool.paused else frame
            if len(self.listen_buffer) >= self.listen_chunk_bytes:
                self.send_to_listeners()

    async def stop(self) -> None:
        """The recording is stored (or kept for recovery): the call is not live."""
        if self.live_socket_id is None:
            return
        monitor().discard(self)
        if self.control_task is not None:
            self.control_task.cancel()
        if self.listeners and self.listen_buffer:
            self.send_to_listeners()  # the last fraction of a second
        for channel in list(self.listeners):
            self.post(channel, {"type": "listen.ended"})
        self.listeners.clear()
        still_live = await write_quietly(
            live_sockets.live_socket_close,
            call_uuid=self.call_uuid,
            live_socket_id=self.live_socket_id,
            call_id=self.call_id,
        )
        self.live_socket_id = None
        if not still_live:
            self.publish("call.ended")
        try:  # what is queued goes out, unless Redis has stalled
            await asyncio.wait_for(self.outbox.join(), OUTBOX_DRAIN_SECONDS)
        except TimeoutError:
            logger.warning("call %s: live pages not told of the end", self.call_uuid)
        self.outbox_task.cancel()

    def publish(self, event_type: str, **fields: Any) -> None:
        """Tell live pages what happened to this call."""
        self.post(None, events.call_message(event_type, call_id=self.call_id, **fields))

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
                    await self.channel_layer.group_send(events.CALLS_GROUP, message)
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
            await write_quietly(
                recordings.recording_pause_record,
                call_uuid=self.call_uuid,
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
            self.listeners[channel] = time.monotonic() + events.LISTEN_SECONDS

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
