"""Marking a view that skips the pages' middleware (see middleware.py)."""

from __future__ import annotations

from collections.abc import Callable

_MARK = "skips_page_middleware"


def skips_page_middleware(view: Callable) -> Callable:
    """Mark an async view that needs none of the pages' middleware (no cookie,
    no session, no sign-in): under ASGI it is called straight after the
    proxy headers are settled. As csrf_exempt, a mark on the view."""
    setattr(view, _MARK, True)
    return view


def page_middleware_skipped(view: Callable) -> bool:
    return getattr(view, _MARK, False)
