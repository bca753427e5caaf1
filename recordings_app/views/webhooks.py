"""Vonage's webhooks: the answer (an NCCO) and the call events."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .. import signatures, vonage
from ..addresses import UNSIGNED_REFUSED, arrived_forwarded, unsigned_allowed_from
from ..services import access, calls
from ..sockets import AUDIO_SOCKET_PATH

logger = logging.getLogger(__name__)


class BadWebhookBody(ValueError):
    pass


def _unauthorized(reason: str) -> HttpResponse:
    logger.warning("webhook refused (401): %s", reason)
    return HttpResponse(
        f"Unauthorized: {reason}\n",
        status=401,
        content_type="text/plain",
        headers={"WWW-Authenticate": 'Bearer realm="vonage"'},
    )


def vonage_webhook(view: Callable[[HttpRequest], HttpResponse]):
    """Only Vonage gets in: with VONAGE_SIGNATURE_SECRET set, check the signed JWT.

    The token's jti is spent in the same transaction as the view's writes,
    so a replay is refused and a request that fails leaves nothing behind.
    """

    @csrf_exempt
    @require_http_methods(["GET", "POST"])
    @functools.wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        secret = settings.VONAGE_SIGNATURE_SECRET
        claims = None
        if not secret and not unsigned_allowed_from(
            peer=request.META.get("REMOTE_ADDR"), forwarded=arrived_forwarded(request)
        ):
            return _unauthorized(UNSIGNED_REFUSED)
        if secret:
            try:
                claims = signatures.verify_vonage_jwt(
                    signatures.bearer_token(request.headers.get("Authorization")),
                    secret=secret,
                    max_age=settings.VONAGE_SIGNATURE_MAX_AGE,
                )
                signatures.check_payload_hash(
                    claims,
                    signatures.payload_hashes(
                        method=request.method,
                        body=request.body,
                        query=request.GET.items(),
                    ),
                )
            except signatures.SignatureError as error:
                return _unauthorized(str(error))
        with transaction.atomic():
            if claims and not access.token_use(
                key=f"jwt:{claims['jti']}",
                valid_for=settings.VONAGE_SIGNATURE_MAX_AGE
                + signatures.CLOCK_SKEW_SECONDS,
            ):
                return _unauthorized("the token was used before: a replay")
            response = view(request)
            if response.status_code >= 400:
                transaction.set_rollback(True)
            return response

    return wrapper


def _webhook_params(request: HttpRequest) -> dict[str, Any]:
    """Vonage sends GET query strings or POST JSON; accept a form post too."""
    if request.method == "GET":
        return request.GET.dict()
    if request.content_type == "application/x-www-form-urlencoded":
        return request.POST.dict()
    try:
        body = vonage.loads_json(request.body or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise BadWebhookBody(f"the body is not valid JSON ({error})") from None
    if not isinstance(body, dict):
        raise BadWebhookBody("the body must be a JSON object")
    return body


def _public_base_url(request: HttpRequest) -> str:
    """PUBLIC_URL, else this request's own scheme and host (proxy headers included)."""
    return settings.PUBLIC_URL or request.build_absolute_uri("/").rstrip("/")


@vonage_webhook
def answer_webhook(request: HttpRequest) -> HttpResponse:
    """Vonage asks what to do with a new call: greet, then stream it to our socket."""
    try:
        answer = vonage.parse_answer(_webhook_params(request))
    except (BadWebhookBody, vonage.InvalidWebhook) as error:
        logger.warning("answer webhook refused: %s", error)
        return HttpResponseBadRequest(f"Bad answer webhook: {error}\n")
    calls.call_answer(answer=answer)
    base_url = _public_base_url(request)
    query = {
        "uuid": answer.uuid,
        "conversation_uuid": answer.conversation_uuid,
        "token": signatures.socket_token(
            call_uuid=answer.uuid, conversation_uuid=answer.conversation_uuid
        ),
    }
    ncco = vonage.build_ncco(
        greeting=settings.CALLRECORDER_GREETING,
        websocket_uri=vonage.websocket_uri(
            vonage.websocket_base_url(base_url), AUDIO_SOCKET_PATH, query
        ),
        sample_rate=settings.CALLRECORDER_SAMPLE_RATE,
        socket_headers={
            "call_uuid": answer.uuid,
            "conversation_uuid": answer.conversation_uuid,
        },
        from_number=answer.to_number,
        event_url=base_url + reverse("recordings:event_webhook"),
        vonage_signed_socket=bool(settings.VONAGE_SIGNATURE_SECRET),
    )
    return JsonResponse(ncco, safe=False)


@vonage_webhook
def event_webhook(request: HttpRequest) -> HttpResponse:
    """Store a call event; a repeated delivery is answered 200 and changes nothing."""
    try:
        event = vonage.parse_event(_webhook_params(request))
    except (BadWebhookBody, vonage.InvalidWebhook) as error:
        logger.warning("event webhook refused: %s", error)
        return HttpResponseBadRequest(f"Bad event webhook: {error}\n")
    calls.call_event_record(event=event)
    return HttpResponse(status=200)
