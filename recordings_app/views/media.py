"""Recording playback and download: HTTP Range, streamed off the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import IO

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_safe

from .. import selectors
from ..addresses import client_ip
from ..http_range import RangeNotSatisfiable, parse_range
from ..models import AccessLogEntry, Recording
from ..permissions import can_play
from ..services import access

_STREAM_CHUNK = 64 * 1024


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
    user = await request.auser()
    recording = await sync_to_async(selectors.recording_of_visible_call)(
        recording_id=pk, user=user
    )
    if recording is None or not recording.file:  # or another team's call
        return HttpResponse(
            "No such recording.\n", status=404, content_type="text/plain"
        )
    if not await sync_to_async(can_play)(user):
        return HttpResponse(
            "You may not play recordings (play_recording).\n",
            status=403,
            content_type="text/plain",
        )
    size = recording.size_bytes
    try:
        byte_range = parse_range(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        return HttpResponse(status=416, headers={"Content-Range": f"bytes */{size}"})
    if request.method == "GET":  # a HEAD or a refused range hands out no audio
        await sync_to_async(access.recording_play_log)(
            recording=recording,
            user=user,
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
