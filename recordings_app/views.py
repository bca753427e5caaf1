"""Vonage's webhooks, the call pages, and recording playback with Range support."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.core.validators import validate_ipv46_address
from django.db import transaction
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.ipv6 import clean_ipv6_address
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
    require_safe,
)

from . import live, services, signatures, vonage
from .forms import CallFilterForm
from .http_range import RangeNotSatisfiable, parse_range
from .models import AccessLogEntry, Call, CallEvent, LiveSocket, Recording
from .routing import AUDIO_SOCKET_PATH, CALLS_SOCKET_PATH, LISTEN_SOCKET_PATH

logger = logging.getLogger(__name__)

_STREAM_CHUNK = 64 * 1024


class BadWebhookBody(ValueError):
    pass


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
            if claims and not services.token_use(
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
        body = json.loads(request.body or b"null")
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
    services.call_answer(answer=answer)
    base_url = _public_base_url(request)
    query = {
        "uuid": answer.uuid,
        "conversation_uuid": answer.conversation_uuid,
        "token": signatures.socket_token(answer.uuid),
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
    services.call_event_record(event=event)
    return HttpResponse(status=200)


@require_GET
@login_required
def call_list(request: HttpRequest) -> HttpResponse:
    """Calls in progress (live), then finished ones: search, filter by date, status."""
    form = CallFilterForm(request.GET)
    # Calls in progress are few: leaving out their ids (none, mostly) keeps
    # the count and the page plain scans of the call table's own indexes. A
    # join to the live sockets made PostgreSQL sort all 100,000 calls for a
    # deep page (bench/list_page.py).
    # One row per call, its newest socket, though a reconnect's socket may
    # open while the first is still being stored.
    oldest_first = (
        LiveSocket.objects.alive().select_related("call").order_by("started_at")
    )
    live_sockets = list({live.call_id: live for live in oldest_first}.values())
    calls = form.filter(
        Call.objects.prefetch_related("recordings").exclude(
            pk__in=[live.call_id for live in live_sockets]
        )
    )
    page = Paginator(calls, settings.CALLRECORDER_CALLS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    # A call that ends joins the top of the list only where it belongs there.
    unfiltered_newest = not any(
        request.GET.get(name) for name in ("q", "since", "until", "status")
    ) and request.GET.get("sort", "newest") in ("", "newest")
    return render(
        request,
        "recordings/call_list.html",
        {
            "page": page,
            "form": form,
            "live_sockets": live_sockets,
            "calls_socket_path": CALLS_SOCKET_PATH,
            "add_finished_calls": unfiltered_newest and page.number == 1,
        },
    )


@require_GET
@login_required
def call_row(request: HttpRequest, pk: int) -> HttpResponse:
    """One finished call's row, for the live list to add without a reload."""
    call = get_object_or_404(Call.objects.prefetch_related("recordings"), pk=pk)
    return render(request, "recordings/_call_row.html", {"call": call})


# Events worth a marker on the waveform; the table lists every event.
_MARKED = {
    "ringing": "Ringing",
    "answered": "Answered",
    "completed": "Call completed",
    "websocket:dtmf": "Key pressed",
    "recording:paused": "Recording paused",
    "recording:resumed": "Recording resumed",
    "recording:ended-paused": "Call ended while paused",
}


@dataclass
class TimelineEntry:
    """One event on the call's timeline, placed on a recording's time axis."""

    event: CallEvent
    recording_number: int | None = None  # 1-based; None when there is no audio
    seconds: float | None = None  # into that recording; < 0 before it began

    @property
    def marked(self) -> bool:
        return self.recording_number is not None and (
            self.event.status in _MARKED and not self.event.is_websocket_leg
        )

    @property
    def label(self) -> str:
        label = _MARKED.get(self.event.status, self.event.status)
        if digit := self.event.dtmf_digit:
            return f"{label}: {digit}"
        if by := self.event.payload.get("by"):
            return f"{label} by {by}"
        return label

    @property
    def kind(self) -> str:
        """A CSS class for the marker: dtmf, paused, resumed or call."""
        status = self.event.status
        if status == "websocket:dtmf":
            return "dtmf"
        if status.startswith("recording:"):
            return "resumed" if status == "recording:resumed" else "paused"
        return "call"


@dataclass
class RecordingPanel:
    """A recording with the timeline markers drawn on its waveform."""

    recording: Recording
    number: int
    markers: list[TimelineMarker] = field(default_factory=list)


@dataclass(frozen=True)
class TimelineMarker:
    entry: TimelineEntry
    seconds: float  # clamped into the recording
    percent: float


def call_timeline(
    recordings: Sequence[Recording], events: Sequence[CallEvent]
) -> tuple[list[RecordingPanel], list[TimelineEntry]]:
    """Put each event on the time axis of the recording it happened in.

    An event belongs to the last recording that had started by then (the
    first, for events before any audio): its offset is event.timestamp minus
    that recording's start, so the waveform and the table share one axis.
    """
    panels = [
        RecordingPanel(recording=recording, number=number)
        for number, recording in enumerate(recordings, start=1)
    ]
    entries = []
    for event in events:
        entry = TimelineEntry(event=event)
        if panels:
            panel = panels[0]
            for candidate in panels:
                if candidate.recording.started_at <= event.timestamp:
                    panel = candidate
            recording = panel.recording
            entry.recording_number = panel.number
            entry.seconds = (event.timestamp - recording.started_at).total_seconds()
            if entry.marked:
                length = recording.duration_seconds
                seconds = min(max(entry.seconds, 0.0), length)
                panel.markers.append(
                    TimelineMarker(
                        entry=entry,
                        seconds=round(seconds, 2),
                        percent=round(100 * seconds / length, 3) if length else 0.0,
                    )
                )
        entries.append(entry)
    return panels, entries


@require_GET
@login_required
def call_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A call: each recording's waveform and player, its events on the same axis."""
    # Prefetched: the call's duration sums the same recordings.
    call = get_object_or_404(Call.objects.prefetch_related("recordings"), pk=pk)
    recordings = list(call.recordings.all())
    panels, timeline = call_timeline(recordings, list(call.events.all()))
    return render(
        request,
        "recordings/call_detail.html",
        {
            "call": call,
            "recordings": recordings,
            "panels": panels,
            "timeline": timeline,
            "several_recordings": len(recordings) > 1,
            "speeds": ["0.75", "1", "1.25", "1.5", "2"],
            "can_delete": can_delete(request.user),
            "can_hold": can_hold(request.user),
            "live_socket": call.live_sockets.alive().order_by("-id").first(),
            "calls_socket_path": CALLS_SOCKET_PATH,
            "listen_socket_path": LISTEN_SOCKET_PATH.format(call_id=call.pk),
        },
    )


@require_POST
@login_required
async def call_pause(request: HttpRequest, pk: int) -> HttpResponse:
    """Staff pause or resume recording a live call (card details, say).

    The page only says "paused" once the socket recording the call, in
    whichever process, has confirmed it.
    """
    user = await request.auser()
    if not user.is_staff:
        raise PermissionDenied("Only staff may pause recording.")
    pause = request.POST.get("action") == "pause"
    call_url = reverse("recordings:call_detail", args=[pk])
    live_socket = await services.live_socket_for_call(call_id=pk, even_if_stale=True)
    if live_socket is None:
        messages.error(request, "This call is not in progress any more.")
        return redirect(call_url)
    try:
        paused = await live.ask_to_pause(
            get_channel_layer(),
            live_socket.channel_name,
            paused=pause,
            by=user.get_username(),
        )
    except live.PauseNotConfirmed as error:
        logger.error("call %s: pause=%s not confirmed: %s", pk, pause, error)
        messages.error(
            request,
            f"The server recording this call did not confirm ({error}): assume "
            f"recording was NOT {'paused' if pause else 'resumed'}. The badge "
            "below changes if it happens after all; otherwise try again.",
        )
        return redirect(call_url)
    except live.CallEnded:
        messages.error(request, "The call has ended: there is nothing to pause.")
        return redirect(call_url)
    messages.success(
        request,
        "Recording paused: silence is kept in its place."
        if paused
        else "Recording resumed.",
    )
    return redirect(call_url)


@require_GET
@login_required
def call_by_uuid(request: HttpRequest, uuid: str) -> HttpResponse:
    """A stable link from a Vonage call uuid (as the simulator prints) to its page."""
    call = get_object_or_404(Call, uuid=uuid)
    return redirect(call)


def can_delete(user: Any) -> bool:
    return user.is_staff and user.has_perm("recordings_app.delete_recording")


def can_hold(user: Any) -> bool:
    """Place or release a legal hold: staff who may change calls, as in the admin."""
    return user.is_staff and user.has_perm("recordings_app.change_call")


@require_http_methods(["GET", "POST"])
@login_required
def recording_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Staff delete a recording; a GET (a page without script) asks to confirm."""
    if not can_delete(request.user):
        raise PermissionDenied("Only staff may delete recordings.")
    recording = get_object_or_404(Recording.objects.select_related("call"), pk=pk)
    call = recording.call
    if request.method == "GET":
        template = "recordings/recording_confirm_delete.html"
        return render(request, template, {"recording": recording})
    try:
        services.recording_delete(
            recording=recording, user=request.user, ip_address=client_ip(request)
        )
    except services.CallOnLegalHold as refusal:
        messages.error(request, f"Not deleted. {refusal}")
        return redirect(call)
    messages.success(request, "The recording was deleted.")
    return redirect(call)


@require_POST
@login_required
def call_legal_hold(request: HttpRequest, pk: int) -> HttpResponse:
    """Staff place a call on legal hold (kept whatever the retention) or release it."""
    if not can_hold(request.user):
        raise PermissionDenied(
            "Only staff who may change calls may place or release a legal hold."
        )
    call = get_object_or_404(Call, pk=pk)
    on = request.POST.get("action") == "on"
    services.legal_hold_set(call=call, on=on, by=request.user)
    messages.success(
        request,
        "This call is on legal hold: no purge or delete will remove it."
        if on
        else "Legal hold released: retention applies to this call again.",
    )
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


def _handoff(recording: Recording, disposition: str) -> HttpResponse | None:
    """In production a front server or the storage may deliver the bytes."""
    if settings.RECORDINGS_DELIVERY == "x-accel-redirect":
        return HttpResponse(
            content_type="audio/wav",
            headers={
                "X-Accel-Redirect": settings.RECORDINGS_X_ACCEL_PREFIX
                + recording.file.name,
                "Content-Disposition": disposition,
                "Cache-Control": "private",
            },
        )
    if settings.RECORDINGS_DELIVERY == "storage-url":
        return HttpResponseRedirect(recording.file.url)
    return None


async def _serve_recording(
    request: HttpRequest, pk: int, *, action: AccessLogEntry.Action
) -> HttpResponse:
    recording = await Recording.objects.select_related("call").filter(pk=pk).afirst()
    if recording is None or not recording.file:
        return HttpResponse(
            "No such recording.\n", status=404, content_type="text/plain"
        )
    size = recording.size_bytes
    try:
        byte_range = parse_range(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        return HttpResponse(status=416, headers={"Content-Range": f"bytes */{size}"})
    if request.method == "GET":  # a HEAD or a refused range hands out no audio
        await sync_to_async(services.recording_play_log)(
            recording=recording,
            user=await request.auser(),
            ip_address=client_ip(request),
            action=action,
            window_seconds=settings.ACCESS_LOG_PLAY_WINDOW_SECONDS,
        )
    disposition = content_disposition_header(
        action == AccessLogEntry.Action.DOWNLOAD,
        f"call-{recording.call_id}-{recording.pk}.wav",
    )
    handoff = await sync_to_async(_handoff)(recording, disposition)
    if handoff is not None:
        return handoff
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private",
        "Content-Disposition": disposition,
    }
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
@login_required
async def recording_media(request: HttpRequest, pk: int) -> HttpResponse:
    """The recording for the page's <audio> player; seekable (HTTP Range)."""
    return await _serve_recording(request, pk, action=AccessLogEntry.Action.PLAY)


@require_safe
@login_required
async def recording_download(request: HttpRequest, pk: int) -> HttpResponse:
    """The same bytes, as a file to save."""
    return await _serve_recording(request, pk, action=AccessLogEntry.Action.DOWNLOAD)
