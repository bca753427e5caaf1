"""Where a request came from: its peer, the proxies we trust, the client's address.

Forwarding headers (X-Forwarded-*, Forwarded) say what a proxy saw; anyone
can send them, so they count only from a peer in TRUSTED_PROXIES.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_ipv46_address
from django.http import HttpRequest
from django.utils.ipv6 import clean_ipv6_address

# As Django's META names them, and as raw (lower-case) header names.
FORWARDING_META = ("HTTP_FORWARDED",)
FORWARDING_META_PREFIX = "HTTP_X_FORWARDED_"


def _clean_ip(value: str) -> str | None:
    """An IP address exactly as the access log stores it, or None if it is not one."""
    try:
        validate_ipv46_address(value)
    except ValidationError:
        return None
    return clean_ipv6_address(value) if ":" in value else value


def _address(value: str | None):
    try:
        return ipaddress.ip_address((value or "").strip("[]"))
    except ValueError:
        return None


def is_trusted_proxy(peer: str | None) -> bool:
    """The peer is one of our own proxies (TRUSTED_PROXIES: addresses, CIDRs)."""
    address = _address(peer)
    return address is not None and any(
        address in ipaddress.ip_network(network, strict=False)
        for network in settings.TRUSTED_PROXIES
    )


def is_loopback(peer: str | None) -> bool:
    address = _address(peer)
    return address is not None and address.is_loopback


def names_forwarding(header_names: Iterable[str]) -> bool:
    """Any of these (raw, case-insensitive) header names is a forwarding header."""
    return any(
        name.lower() == "forwarded" or name.lower().startswith("x-forwarded-")
        for name in header_names
    )


def meta_forwarding(meta: dict) -> list[str]:
    """The forwarding headers of a request, by their META keys."""
    return [
        key
        for key in meta
        if key in FORWARDING_META or key.startswith(FORWARDING_META_PREFIX)
    ]


def arrived_forwarded(request: HttpRequest) -> bool:
    """The request came through a proxy or tunnel: a tunnel's agent connects
    from loopback too, but says what it forwards."""
    forwarded = getattr(request, "arrived_forwarded", None)
    if forwarded is None:  # the middleware did not run (a test's request)
        forwarded = bool(meta_forwarding(request.META))
    return forwarded


def client_ip(request: HttpRequest) -> str | None:
    """The address a request came from; behind our proxy, the one it saw."""
    return _client_address(
        request.META.get("REMOTE_ADDR") or "",
        request.headers.get("X-Forwarded-For", ""),
    )


def scope_client_ip(scope: dict) -> str | None:
    """The same for a WebSocket's ASGI scope (listen-in, in the access log)."""
    headers = dict(scope.get("headers") or [])
    return _client_address(
        (scope.get("client") or [""])[0] or "",
        headers.get(b"x-forwarded-for", b"").decode("latin-1"),
    )


def _client_address(peer: str, forwarded: str) -> str | None:
    """The last X-Forwarded-For entry is the one our own proxy added (only a
    trusted proxy's is read); anything that is not a plain IP address there
    is ignored."""
    if forwarded and is_trusted_proxy(peer):
        address = _clean_ip(forwarded.split(",")[-1].strip())
        if address:
            return address
    return _clean_ip(peer)


UNSIGNED_REFUSED = (
    "VONAGE_SIGNATURE_SECRET is not set, so only requests straight from this "
    "machine are taken (loopback, no proxy or tunnel); set VONAGE_SIGNATURE_SECRET "
    "to your Vonage signature secret"
)


def unsigned_allowed_from(*, peer: str | None, forwarded: bool) -> bool:
    """May an unsigned webhook or socket from this peer be taken?"""
    if settings.UNSAFE_ALLOW_UNSIGNED_WEBHOOKS:
        return True
    return is_loopback(peer) and not forwarded
