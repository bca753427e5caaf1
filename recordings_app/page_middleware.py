"""Marking a view that skips the pages' middleware (see middleware.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.conf import settings
from django.urls import Resolver404, ResolverMatch, get_resolver

_MARK = "skips_page_middleware"


def skips_page_middleware(view: Callable) -> Callable:
    """Mark an async view that needs none of the pages' middleware (no cookie,
    no session, no sign-in): under ASGI it is called straight after the
    proxy headers are settled. As csrf_exempt, a mark on the view."""
    setattr(view, _MARK, True)
    return view


def page_middleware_skipped(view: Callable) -> bool:
    return getattr(view, _MARK, False)


def match_skipping_page_middleware(path_info: str) -> ResolverMatch | None:
    """The URL match of a path whose view skips the pages' middleware, else
    None. Remembered per path: resolving walks every pattern before the
    webhooks', and Vonage's webhooks come by the thousand."""
    return _match_skipping(settings.ROOT_URLCONF, path_info)


@functools.lru_cache(maxsize=256)
def _match_skipping(urlconf: str, path_info: str) -> ResolverMatch | None:
    try:
        match = get_resolver(urlconf).resolve(path_info)
    except Resolver404:
        return None
    return match if page_middleware_skipped(match.func) else None
