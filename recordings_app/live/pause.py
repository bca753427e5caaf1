"""Asking a call's recording socket, wherever it runs, to pause or resume."""

from __future__ import annotations

import asyncio
import time

from .events import CLOCK_SLACK_SECONDS


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
