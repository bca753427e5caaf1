"""The HTTP entry point: Django's ASGI handler, without a thread per webhook.

For every request Django's handler sends request_started and, once the
response is out, request_finished, each through sync_to_async in a
ThreadSensitiveContext of the request's own: a thread started, used twice
and joined per request, to reset the query log and close that thread's
stale database connections. A view marked skips_page_middleware (Vonage's
webhooks) is async and writes through the process's database thread, which
keeps its own connections fresh; the thread is all cost, and a burst of
calls is thousands of webhooks. Such a request is served here without it;
every other request takes Django's own path, signals and all.
"""

from __future__ import annotations

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import set_script_prefix

from .page_middleware import match_skipping_page_middleware


class HttpHandler(ASGIHandler):
    """Django's ASGIHandler; a request for a view that skips the pages'
    middleware is served on the event loop alone."""

    async def handle(self, scope, receive, send) -> None:
        script_prefix = get_script_prefix(scope)
        path_info = scope["path"].removeprefix(script_prefix)
        if match_skipping_page_middleware(path_info) is None:
            await super().handle(scope, receive, send)
            return
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            set_script_prefix(script_prefix)
            request, response = self.create_request(scope, body_file)
            if request is not None:
                # The async middleware turn a view's error into a 500 page.
                response = await self.run_get_response(request)
            await self.send_response(response, send)
            if request is not None:
                request.close()
        finally:
            body_file.close()
