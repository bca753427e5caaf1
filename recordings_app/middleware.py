"""What every request passes: proxies' headers settled, an idle session
ended, a half-finished sign-in kept to the sign-in pages."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from asgiref.sync import iscoroutinefunction
from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.decorators import async_only_middleware, sync_and_async_middleware

from . import selectors
from .addresses import is_trusted_proxy, meta_forwarding
from .page_middleware import match_skipping_page_middleware


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


@async_only_middleware
def webhooks_skip_page_middleware(get_response):
    """Second in MIDDLEWARE: a view marked skips_page_middleware (Vonage's
    webhooks, signed and cookie-less) is called here, without the sessions,
    CSRF, sign-in and page headers below. Those run in a thread of the
    request's own (WhiteNoise and django-axes are sync only), a thread
    started and joined per request; a burst of calls is thousands of
    webhooks. Async only, so that the middleware above it stay async too."""

    async def middleware(request: HttpRequest):
        match = match_skipping_page_middleware(request.path_info)
        if match is None:
            return await get_response(request)
        request.resolver_match = match
        return await match.func(request, *match.args, **match.kwargs)

    return middleware


# A page's own requests (fetch() with this header) are not someone using it.
BACKGROUND_HEADER = "X-Requested-With"
_SESSION_ACTIVE_AT = "active_at"


def idle_sessions_end(get_response):
    """A session ends after CALLRECORDER_SESSION_IDLE_MINUTES without use.

    Each use pushes the session's expiry (SESSION_COOKIE_AGE, the idle time)
    forward, at most once a minute so pages do not write the session on
    every request; requests a page makes on its own do not count.
    """

    def middleware(request: HttpRequest):
        response = get_response(request)
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and BACKGROUND_HEADER not in request.headers
            and SESSION_KEY in request.session  # not an API token's request
        ):
            now, session = int(time.time()), request.session
            # Saved anyway (signing in), or not pushed for a minute.
            if session.modified or now - session.get(_SESSION_ACTIVE_AT, 0) >= 60:
                session[_SESSION_ACTIVE_AT] = now
        return response

    return middleware


# The API's error body (recordings_app.api.errors) for a session half signed in.
_SECOND_FACTOR_OWED = {
    "status": 401,
    "code": "second_factor_owed",
    "detail": "This session has not given its second factor: finish signing in.",
}


def _sign_in_paths() -> tuple[str, ...]:
    return tuple(
        reverse(name)
        for name in ("login", "logout", "verify_code", "set_up_app", "admin:logout")
    )


def second_factor_first(get_response):
    """A user who gave the right password but still owes a second factor
    (a code, or setting up an app when CALLRECORDER_REQUIRE_MFA says they
    must) reaches only the pages that finish signing in; the admin too."""

    def middleware(request: HttpRequest):
        step = selectors.second_factor_step(request.user, request.session)
        if step is not None and not request.path.startswith(_sign_in_paths()):
            target = "verify_code" if step == selectors.VERIFY_CODE else "set_up_app"
            if request.path.startswith(reverse("api:root")):
                return JsonResponse(_SECOND_FACTOR_OWED, status=401)
            if BACKGROUND_HEADER in request.headers:
                return HttpResponse("Finish signing in first.", status=401)
            query = urlencode({"next": request.get_full_path()})
            return redirect(f"{reverse(target)}?{query}")
        return get_response(request)

    return middleware
