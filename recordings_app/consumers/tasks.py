"""Work a socket does not wait for, or must survive without."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import connection

from ..services import archive, retention

logger = logging.getLogger(__name__)

background_tasks: set[asyncio.Future] = set()


def keep_until_done(task: asyncio.Future) -> None:
    """Hold a task nobody awaits: the event loop keeps only weak references."""
    background_tasks.add(task)
    task.add_done_callback(background_tasks.discard)


def run_in_background(function: Callable[[], Any]) -> None:
    """Run a slow sync function in a thread, after the socket is done with."""
    keep_until_done(
        asyncio.ensure_future(sync_to_async(function, thread_sensitive=False)())
    )


async def write_quietly(function: Callable[..., Any], *, call_uuid: str, **kwargs):
    """A database write the call must survive without (it is logged)."""
    try:
        return await database_sync_to_async(function)(**kwargs)
    except Exception:
        logger.exception("call %s: %s failed", call_uuid, function.__name__)
        return None


def purge_old_calls_if_due() -> None:
    """Automatic retention and archiving, where calls end (cheap unless due).

    In a thread of its own, not the one all sockets share for their queries:
    a purge or a conversion may take seconds.
    """
    try:
        retention.retention_purge_if_due()
        archive.archive_if_due()
    finally:
        connection.close()  # this worker thread's own
