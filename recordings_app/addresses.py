"""The address a request came from, exactly as the access log stores it."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_ipv46_address
from django.http import HttpRequest
from django.utils.ipv6 import clean_ipv6_address


def _clean_ip(value: str) -> str | None:
    """An IP address exactly as the access log stores it, or None if it is not one."""
    try:
        validate_ipv46_address(value)
    except ValidationError:
        return None
    return clean_ipv6_address(value) if ":" in value else value


def client_ip(request: HttpRequest) -> str | None:
    """The address a request came from; behind our proxy, the one it saw.

    The last X-Forwarded-For entry is the one our own proxy added; anything
    that is not a plain IP address there is ignored.
    """
    forwarded = request.headers.get("X-Forwarded-For", "")
    if settings.TRUST_PROXY_HEADERS and forwarded:
        address = _clean_ip(forwarded.split(",")[-1].strip())
        if address:
            return address
    return _clean_ip(request.META.get("REMOTE_ADDR") or "")
