"""Who may open a browser socket: a page of this site, its signed-in user.

Signed in means all the way: the password and, where the user has or must
have one, the second factor. The user is checked again while the socket
lasts (signed out elsewhere? the session idle too long?).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from .. import selectors
from ..addresses import is_trusted_proxy
from ..sockets import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED


async def signed_in_user(scope) -> Any:
    """The socket's user as the session says now (signed out or demoted since?)."""
    session = scope.get("session")
    if session is None or session.session_key is None:
        return None
    fresh = {"session": session.__class__(session.session_key)}
    user = await get_user(fresh)
    return user if await _fully_signed_in(user, fresh["session"]) else None


async def _fully_signed_in(user: Any, session: Any) -> bool:
    if user is None or not user.is_authenticated:
        return False
    step = await database_sync_to_async(selectors.second_factor_step)(user, session)
    return step is None


async def user_or_refuse(
    consumer: AsyncWebsocketConsumer, *, may: Callable[[Any], bool] | None = None
):
    """The page's signed-in user (who `may`, a permissions check, when given),
    or None once the socket is closed with why."""
    user = consumer.scope.get("user")
    if not await _fully_signed_in(user, consumer.scope.get("session")):
        await accept_and_close(consumer, CLOSE_UNAUTHORIZED)
        return None
    if may is not None and not await database_sync_to_async(may)(user):
        await accept_and_close(consumer, CLOSE_FORBIDDEN)
        return None
    return user


async def accept_and_close(consumer: AsyncWebsocketConsumer, code: int) -> None:
    """Close with a code the browser can read: closing before accepting
    would only reject the handshake (every client sees 1006)."""
    await consumer.accept()
    await consumer.close(code=code)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of an http(s) URL or Origin, default ports filled in."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[parts.scheme]


def site_origin(scope) -> tuple[str, str, int | None] | None:
    """The site's own origin: PUBLIC_URL's when set, else the request's.

    The request's scheme is the socket's (wss is https), or what a trusted
    proxy says it was; its host is the Host header, and must be one of
    ALLOWED_HOSTS.
    """
    if settings.PUBLIC_URL:
        return _origin(settings.PUBLIC_URL)
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", [])
    }
    host = headers.get("host", "")
    if not host or not validate_host(
        split_domain_port(host)[0], settings.ALLOWED_HOSTS
    ):
        return None
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    client = scope.get("client") or [None]
    proto = headers.get("x-forwarded-proto", "")
    if proto in ("http", "https") and is_trusted_proxy(client[0]):
        scheme = proto
    return _origin(f"{scheme}://{host}")


class SameOriginOnly:
    """Browser sockets take only pages of this very site (scheme, host, port).

    Any other Origin, or none, is closed with 4403 before anything is sent:
    a page elsewhere must not hear a signed-in user's live calls. (Channels'
    AllowedHostsOriginValidator took any host in ALLOWED_HOSTS, so one
    tunnel's page could read another's.)
    """

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            origin = dict(scope.get("headers", [])).get(b"origin", b"")
            expected = site_origin(scope)
            if expected is None or _origin(origin.decode("latin-1")) != expected:
                await receive()  # websocket.connect
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": CLOSE_FORBIDDEN})
                return None
        return await self.application(scope, receive, send)
