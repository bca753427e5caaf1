"""Who may open a browser socket: the page's signed-in user, checked again later."""

from __future__ import annotations

from typing import Any

from channels.auth import get_user
from channels.generic.websocket import AsyncWebsocketConsumer

from ..sockets import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED


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
