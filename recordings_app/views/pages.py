"""The call pages: the list (live calls first), a call, pause, hold, delete."""

from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
)

from .. import selectors
from ..addresses import client_ip
from ..forms import CallFilterForm
from ..live import pause
from ..models import AccessLogEntry
from ..permissions import can_delete, can_hold, can_listen, can_pause, can_play
from ..services import access, holds
from ..sockets import CALLS_SOCKET_PATH, LISTEN_SOCKET_PATH
from ..timeline import call_timeline

logger = logging.getLogger(__name__)


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on a page without a <link rel="icon">
    (the admin's): the icon our pages link to, not a 404 on every load."""
    return HttpResponsePermanentRedirect(static("recordings_app/favicon.svg"))


@require_GET
@login_required
def call_list(request: HttpRequest) -> HttpResponse:
    """Calls in progress (live), then finished ones: search, filter by date, status."""
    form = CallFilterForm(request.GET)
    user = request.user
    live_sockets = selectors.live_calls_for_list(user)
    calls = selectors.finished_calls(
        user=user,
        exclude_call_ids=[live.call_id for live in live_sockets],
        **form.filters(),
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
            "can_play": can_play(user),
            # A new user sees nothing until given a line or every call.
            "has_no_lines": selectors.line_numbers(user) == [],
        },
        # A filter that makes no sense is said so on the page, with a 400.
        status=200 if form.is_valid() else 400,
    )


@require_GET
@login_required
def call_row(request: HttpRequest, pk: int) -> HttpResponse:
    """One finished call's row, for the live list to add without a reload."""
    call = get_object_or_404(selectors.calls_with_recordings(request.user), pk=pk)
    context = {"call": call, "can_play": can_play(request.user)}
    return render(request, "recordings/_call_row.html", context)


@require_GET
@login_required
def call_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A call: each recording's waveform and player, its events on the same axis."""
    user = request.user
    call = get_object_or_404(selectors.calls_with_recordings(user), pk=pk)
    recordings = list(call.recordings.all())
    panels, timeline = call_timeline(recordings, list(call.events.all()))
    access.call_view_log(
        call=call,
        user=user,
        ip_address=client_ip(request),
        window_seconds=settings.ACCESS_LOG_PLAY_WINDOW_SECONDS,
    )
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
            "can_play": can_play(user),
            "can_delete": can_delete(user),
            "can_hold": can_hold(user),
            "can_pause": can_pause(user),
            "can_listen": can_listen(user),
            "live_socket": selectors.live_socket_of(call),
            "calls_socket_path": CALLS_SOCKET_PATH,
            "listen_socket_path": LISTEN_SOCKET_PATH.format(call_id=call.pk),
        },
    )


@require_POST
@login_required
async def call_pause(request: HttpRequest, pk: int) -> HttpResponse:
    """Pause or resume recording a live call (card details, say).

    The page only says "paused" once the socket recording the call, in
    whichever process, has confirmed it.
    """
    user = await request.auser()
    if not await sync_to_async(selectors.sees_call)(user, call_id=pk):
        raise Http404("No such call.")
    if not can_pause(user):
        raise PermissionDenied("You may not pause recording (pause_recording).")
    pausing = request.POST.get("action") == "pause"
    call_url = reverse("recordings:call_detail", args=[pk])
    live_socket = await selectors.live_socket_for_call(
        call_id=pk, user=user, even_if_stale=True
    )
    if live_socket is None:
        messages.error(request, "This call is not in progress any more.")
        return redirect(call_url)
    try:
        paused = await pause.ask_to_pause(
            get_channel_layer(),
            live_socket.channel_name,
            paused=pausing,
            by=user.get_username(),
        )
    except pause.PauseNotConfirmed as error:
        logger.error("call %s: pause=%s not confirmed: %s", pk, pausing, error)
        messages.error(
            request,
            f"The server recording this call did not confirm ({error}): assume "
            f"recording was NOT {'paused' if pausing else 'resumed'}. The badge "
            "below changes if it happens after all; otherwise try again.",
        )
        return redirect(call_url)
    except pause.CallEnded:
        messages.error(request, "The call has ended: there is nothing to pause.")
        return redirect(call_url)
    await sync_to_async(access.call_action_log)(
        call_id=pk,
        action=AccessLogEntry.Action.PAUSE if paused else AccessLogEntry.Action.RESUME,
        user=user,
        ip_address=client_ip(request),
    )
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
    call = get_object_or_404(selectors.visible_calls(request.user), uuid=uuid)
    return redirect(call)


@require_http_methods(["GET", "POST"])
@login_required
def recording_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a recording; a GET (a page without script) asks to confirm."""
    recording = selectors.recording_of_visible_call(recording_id=pk, user=request.user)
    if recording is None:
        raise Http404("No such recording.")
    if not can_delete(request.user):
        raise PermissionDenied("You may not delete recordings (delete_recording).")
    call = recording.call
    if request.method == "GET":
        template = "recordings/recording_confirm_delete.html"
        return render(request, template, {"recording": recording})
    try:
        holds.recording_delete(
            recording=recording, user=request.user, ip_address=client_ip(request)
        )
    except holds.CallOnLegalHold as refusal:
        messages.error(request, f"Not deleted. {refusal}")
        return redirect(call)
    messages.success(request, "The recording was deleted.")
    return redirect(call)


@require_POST
@login_required
def call_legal_hold(request: HttpRequest, pk: int) -> HttpResponse:
    """Place a call on legal hold (kept whatever the retention) or release it."""
    call = get_object_or_404(selectors.visible_calls(request.user), pk=pk)
    if not can_hold(request.user):
        raise PermissionDenied(
            "You may not place or release a legal hold (set_legal_hold)."
        )
    on = request.POST.get("action") == "on"
    holds.legal_hold_set(
        call=call, on=on, by=request.user, ip_address=client_ip(request)
    )
    messages.success(
        request,
        "This call is on legal hold: no purge or delete will remove it."
        if on
        else "Legal hold released: retention applies to this call again.",
    )
    return redirect(call)
