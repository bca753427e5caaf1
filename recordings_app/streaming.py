"""A recording sent over HTTP: Range, sealed files opened, streamed off the loop.

Used by the pages' player and downloads (views.media) and by the API: each
takes the user the request acts for, who goes into the access log. A
sealed file is decrypted here, a chunk at a time, so only the app's own
streaming can deliver it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import IO, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.utils.http import content_disposition_header

from .addresses import client_ip
from .audio.codecs import (
    CONTENT_TYPES,
    EXTENSIONS,
    WAV,
    UnreadableAudio,
    pcm_blocks,
    wav_header,
)
from .audio.sealing import MissingKey, SealError, WrongKey
from .http_range import RangeNotSatisfiable, parse_range
from .models import AccessLogEntry, Recording
from .services import access, stored_audio

logger = logging.getLogger(__name__)

_STREAM_CHUNK = 64 * 1024
_UNOPENABLE = (SealError, UnreadableAudio)


async def _rest(first: bytes, pieces: Iterator[bytes], handle: IO[bytes]):
    """Yield the first piece (read before the response began), then the rest.

    Each read is off the event loop; memory stays one piece. A piece that
    fails to decrypt ends the stream short (the client sees an incomplete
    file) rather than sending anything but the recording.
    """
    try:
        yield first
        while piece := await sync_to_async(next)(pieces, b""):
            yield piece
    except _UNOPENABLE:
        logger.exception("recording stream stopped: the stored file is damaged")
    finally:
        await sync_to_async(handle.close)()


def _range_pieces(handle: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    handle.seek(start)
    remaining = length
    while remaining > 0:
        piece = handle.read(min(_STREAM_CHUNK, remaining))
        if not piece:
            return
        remaining -= len(piece)
        yield piece


def _handoff(recording: Recording, disposition: str) -> HttpResponse | None:
    """In production a front server or the storage may deliver unsealed files."""
    if recording.sealed:
        return None
    if settings.RECORDINGS_DELIVERY == "x-accel-redirect":
        return HttpResponse(
            content_type=CONTENT_TYPES[recording.format],
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


_WHY_UNAVAILABLE = {
    MissingKey: "its encryption key is not in this server's configuration",
    WrongKey: "the configured key is not the one it was sealed with",
}


async def _unavailable(
    recording: Recording, error: Exception, handle: IO[bytes] | None
) -> HttpResponse:
    """A clear refusal, never noise; the details (key ids) go to the log only."""
    if handle is not None:
        await sync_to_async(handle.close)()
    logger.error("recording %s cannot be opened: %s", recording.pk, error)
    why = _WHY_UNAVAILABLE.get(type(error), "the stored file is damaged")
    return HttpResponse(
        f"Recording {recording.pk} cannot be opened: {why}. Ask an administrator "
        "(the server's log says more).\n",
        status=503,
        content_type="text/plain",
    )


async def _log(
    request: HttpRequest,
    recording: Recording,
    action: str,
    user: Any,
    detail: dict[str, Any] | None = None,
) -> None:
    await sync_to_async(access.recording_play_log)(
        recording=recording,
        user=user,
        ip_address=client_ip(request),
        action=action,
        window_seconds=settings.ACCESS_LOG_PLAY_WINDOW_SECONDS,
        detail=detail,
    )


def _filename(recording: Recording, extension: str) -> str:
    return f"call-{recording.call_id}-{recording.pk}.{extension}"


async def stored_file_response(
    request: HttpRequest,
    recording: Recording,
    *,
    user: Any,
    action: str,
    attachment: bool,
    detail: dict[str, Any] | None = None,
) -> HttpResponse:
    """The stored file (opened if sealed), whole or the byte range asked for."""
    size = recording.size_bytes
    try:
        byte_range = parse_range(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        return HttpResponse(status=416, headers={"Content-Range": f"bytes */{size}"})
    content_type = CONTENT_TYPES[recording.format]
    disposition = content_disposition_header(
        attachment, _filename(recording, EXTENSIONS[recording.format])
    )
    handoff = await sync_to_async(_handoff)(recording, disposition)
    if handoff is not None:
        if request.method == "GET":
            await _log(request, recording, action, user, detail)
        return handoff
    start, end, status, headers = _span_headers(byte_range, size, disposition)
    if request.method == "HEAD":
        return HttpResponse(status=status, content_type=content_type, headers=headers)
    handle = None
    try:
        handle = await sync_to_async(stored_audio.recording_open)(recording)
        pieces = _range_pieces(handle, start, end - start + 1)
        first = await sync_to_async(next)(pieces, b"")
    except _UNOPENABLE as error:
        return await _unavailable(recording, error, handle)
    # Logged here: a HEAD or a refusal hands out no audio.
    await _log(request, recording, action, user, detail)
    return StreamingHttpResponse(
        _rest(first, pieces, handle),
        status=status,
        content_type=content_type,
        headers=headers,
    )


def _span_headers(
    byte_range: tuple[int, int] | None, size: int, disposition: str
) -> tuple[int, int, int, dict[str, str]]:
    """The first and last byte sent, the status (200, or 206 for a Range) and
    the headers that say so."""
    start, end = byte_range or (0, size - 1)
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private",
        "Content-Disposition": disposition,
        "Content-Length": str(end - start + 1),
    }
    if byte_range is None:
        return start, end, 200, headers
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return start, end, 206, headers


def _span(pieces: Iterator[bytes], *, skip: int, length: int) -> Iterator[bytes]:
    """length bytes of the pieces, after their first `skip` bytes; never an
    empty piece (which would end the response early)."""
    for piece in pieces:
        cut = min(skip, len(piece))
        piece, skip = piece[cut : cut + length], skip - cut
        if piece:
            yield piece
            length -= len(piece)
        if length <= 0:
            return


async def wav_response(
    request: HttpRequest,
    recording: Recording,
    *,
    user: Any,
    detail: dict[str, Any] | None = None,
) -> HttpResponse:
    """A WAV of the recorded PCM, decoded from FLAC or Opus as it is sent;
    an HTTP Range seeks in the stored audio, whatever its format."""
    if recording.format == WAV:
        return await stored_file_response(
            request,
            recording,
            user=user,
            action=AccessLogEntry.Action.DOWNLOAD,
            attachment=True,
            detail=detail,
        )
    header = wav_header(
        sample_rate=recording.sample_rate, sample_count=recording.sample_count
    )
    size = len(header) + recording.sample_count * 2
    try:
        byte_range = parse_range(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        return HttpResponse(status=416, headers={"Content-Range": f"bytes */{size}"})
    disposition = content_disposition_header(True, _filename(recording, "wav"))
    start, end, status, headers = _span_headers(byte_range, size, disposition)
    if request.method == "HEAD":
        return HttpResponse(status=status, content_type="audio/wav", headers=headers)
    prefix = header[start : end + 1]
    pcm_start = max(0, start - len(header))
    handle = None
    try:
        handle = await sync_to_async(stored_audio.recording_open)(recording)
        pieces = _span(
            pcm_blocks(
                handle, sample_count=recording.sample_count, start=pcm_start // 2
            ),
            skip=pcm_start % 2,
            length=end - start + 1 - len(prefix),
        )
        first = prefix + await sync_to_async(next)(pieces, b"")
    except _UNOPENABLE as error:
        return await _unavailable(recording, error, handle)
    await _log(request, recording, AccessLogEntry.Action.DOWNLOAD, user, detail)
    return StreamingHttpResponse(
        _rest(first, pieces, handle),
        status=status,
        content_type="audio/wav",
        headers=headers,
    )
