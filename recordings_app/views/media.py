"""Recording playback and downloads for the pages (recordings_app.streaming sends them).

Three views of one recording: the player's (the stored format, seekable),
"Download WAV" (always a WAV of the recorded PCM, decoded if need be) and
"Download original" (the stored file).
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from .. import selectors
from ..models import AccessLogEntry, Recording
from ..permissions import can_play
from ..streaming import stored_file_response, wav_response


async def _allowed_recording(
    request: HttpRequest, pk: int
) -> tuple[Recording | None, HttpResponse | None]:
    user = await request.auser()
    recording = await sync_to_async(selectors.recording_of_visible_call)(
        recording_id=pk, user=user
    )
    if recording is None or not recording.file:  # or another team's call
        return None, HttpResponse(
            "No such recording.\n", status=404, content_type="text/plain"
        )
    if not await sync_to_async(can_play)(user):
        return None, HttpResponse(
            "You may not play recordings (play_recording).\n",
            status=403,
            content_type="text/plain",
        )
    return recording, None


@require_safe
@login_required
async def recording_media(request: HttpRequest, pk: int) -> HttpResponse:
    """The recording for the page's <audio> player; seekable (HTTP Range)."""
    recording, refusal = await _allowed_recording(request, pk)
    return refusal or await stored_file_response(
        request,
        recording,
        user=await request.auser(),
        action=AccessLogEntry.Action.PLAY,
        attachment=False,
    )


@require_safe
@login_required
async def recording_download(request: HttpRequest, pk: int) -> HttpResponse:
    """Download WAV: the recorded PCM as a WAV file, whatever is stored."""
    recording, refusal = await _allowed_recording(request, pk)
    return refusal or await wav_response(request, recording, user=await request.auser())


@require_safe
@login_required
async def recording_original(request: HttpRequest, pk: int) -> HttpResponse:
    """Download original: the stored file (FLAC, Opus or WAV), opened if sealed."""
    recording, refusal = await _allowed_recording(request, pk)
    return refusal or await stored_file_response(
        request,
        recording,
        user=await request.auser(),
        action=AccessLogEntry.Action.DOWNLOAD,
        attachment=True,
    )
