"""Vonage's webhooks, the call pages, and recording playback with Range support."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import IO, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.paginator import Paginator
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_safe

from . import services, vonage
from .http_range import RangeNotSatisfiable, parse_range
from .models import Call, Recording
from .routing import AUDIO_SOCKET_PATH

logger = logging.getLogger(__name__)

_STREAM_CHUNK = 64 * 1024


class BadWebhookBody(ValueError):
    pass


def _webhook_params(request: HttpRequest) -> dict[str, Any]:
    """Vonage sends GET query strings or POST JSON; accept a form post too."""
    if request.method == "GET":
        return request.GET.dict()
    if request.content_type == "application/x-www-form-urlencoded":
        return request.POST.dict()
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as error:
        raise BadWebhookBody(f"the body is not valid JSON ({error})") from None
    if not isinstance(body, dict):
        raise BadWebhookBody("the body must be a JSON object")
    return body


def _public_base_url(request: HttpRequest) -> str:
    """PUBLIC_URL, else this request's own scheme and host (proxy headers included)."""
    return settings.PUBLIC_URL or request.build_absolute_uri("/").rstrip("/")


@csrf_exempt
@require_http_methods(["GET", "POST"])
def answer_webhook(request: HttpRequest) -> HttpResponse:
    """Vonage asks what to do with a new call: greet, then stream it to our socket."""
    try:
        answer = vonage.parse_answer(_webhook_params(request))
    except (BadWebhookBody, vonage.InvalidWebhook) as error:
        logger.warning("answer webhook refused: %s", error)
        return HttpResponseBadRequest(f"Bad answer webhook: {error}\n")
    services.call_answer(answer=answer)
    base_url = _public_base_url(request)
    ids = {"uuid": answer.uuid, "conversation_uuid": answer.conversation_uuid}
    ncco = vonage.build_ncco(
        greeting=settings.CALLRECORDER_GREETING,
        websocket_uri=vonage.websocket_uri(
            vonage.websocket_base_url(base_url), AUDIO_SOCKET_PATH, ids
        ),
        sample_rate=settings.CALLRECORDER_SAMPLE_RATE,
        socket_headers={
            "call_uuid": answer.uuid,
            "conversation_uuid": answer.conversation_uuid,
        },
        from_number=answer.to_number,
        event_url=base_url + reverse("recordings:event_webhook"),
    )
    return JsonResponse(ncco, safe=False)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def event_webhook(request: HttpRequest) -> HttpResponse:
    """Store a call event; a repeated delivery is answered 200 and changes nothing."""
    try:
        event = vonage.parse_event(_webhook_params(request))
    except (BadWebhookBody, vonage.InvalidWebhook) as error:
        logger.warning("event webhook refused: %s", error)
        return HttpResponseBadRequest(f"Bad event webhook: {error}\n")
    services.call_event_record(event=event)
    return HttpResponse(status=200)


@require_GET
def call_list(request: HttpRequest) -> HttpResponse:
    calls = Call.objects.prefetch_related("recordings")
    page = Paginator(calls, settings.CALLRECORDER_CALLS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "recordings/call_list.html", {"page": page})


@require_GET
def call_detail(request: HttpRequest, pk: int) -> HttpResponse:
    call = get_object_or_404(Call, pk=pk)
    return render(
        request,
        "recordings/call_detail.html",
        {
            "call": call,
            "recordings": call.recordings.all(),
            "events": call.events.all(),
        },
    )


@require_GET
def call_by_uuid(request: HttpRequest, uuid: str) -> HttpResponse:
    """A stable link from a Vonage call uuid (as the simulator prints) to its page."""
    call = get_object_or_404(Call, uuid=uuid)
    return redirect(call)


async def _read_range(
    handle: IO[bytes], start: int, length: int
) -> AsyncIterator[bytes]:
    """Read the file in chunks off the event loop; memory stays one chunk."""
    try:
        await sync_to_async(handle.seek)(start)
        remaining = length
        while remaining > 0:
            chunk = await sync_to_async(handle.read)(min(_STREAM_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        await sync_to_async(handle.close)()


async def _serve_recording(
    request: HttpRequest, pk: int, *, attachment: bool
) -> HttpResponse:
    recording = await Recording.objects.filter(pk=pk).afirst()
    if recording is None or not recording.file:
        return HttpResponse(
            "No such recording.\n", status=404, content_type="text/plain"
        )
    size = recording.size_bytes
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private",
        "Content-Disposition": content_disposition_header(
            attachment, f"call-{recording.call_id}-{recording.pk}.wav"
        ),
    }
    try:
        byte_range = parse_range(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        return HttpResponse(
            status=416, headers={**headers, "Content-Range": f"bytes */{size}"}
        )
    start, end = byte_range or (0, size - 1)
    headers["Content-Length"] = str(end - start + 1)
    status = 200
    if byte_range:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    if request.method == "HEAD":
        return HttpResponse(status=status, content_type="audio/wav", headers=headers)
    handle = await sync_to_async(recording.file.storage.open)(recording.file.name, "rb")
    return StreamingHttpResponse(
        _read_range(handle, start, end - start + 1),
        status=status,
        content_type="audio/wav",
        headers=headers,
    )


@require_safe
async def recording_media(request: HttpRequest, pk: int) -> HttpResponse:
    """The recording for the page's <audio> player; seekable (HTTP Range)."""
    return await _serve_recording(request, pk, attachment=False)


@require_safe
async def recording_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The same bytes, as a file to save."""
    return await _serve_recording(request, pk, attachment=True)
