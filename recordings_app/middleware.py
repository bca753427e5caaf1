"""Forwarding headers count only from our own proxies (TRUSTED_PROXIES)."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest
from django.utils.decorators import sync_and_async_middleware

from .addresses import is_trusted_proxy, meta_forwarding


def _settle_forwarding(request: HttpRequest) -> None:
    forwarding = meta_forwarding(request.META)
    request.arrived_forwarded = bool(forwarding)
    if forwarding and not is_trusted_proxy(request.META.get("REMOTE_ADDR")):
        for key in forwarding:
            del request.META[key]


@sync_and_async_middleware
def trusted_proxy_headers(get_response):
    """First in MIDDLEWARE: from any other peer, X-Forwarded-* and Forwarded
    are dropped before Django reads them (SECURE_PROXY_SSL_HEADER,
    USE_X_FORWARDED_HOST), so a client cannot claim https, another host or
    another address. The request remembers whether it arrived forwarded."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest):
            _settle_forwarding(request)
            return await get_response(request)

    else:

        def middleware(request: HttpRequest):
            _settle_forwarding(request)
            return get_response(request)

    return middleware
