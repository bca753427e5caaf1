"""The API's endpoints: the list page's filters, a call with its timeline,
calls in progress, a recording and its audio, delete, legal hold.

Each acts for the request's user (token or session): it sees the calls of
its teams' lines, and a call it cannot see is a 404, as on the pages.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db.models import Value, prefetch_related_objects
from django.db.models.functions import Coalesce
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import selectors
from ..addresses import client_ip
from ..forms import CallFilterForm
from ..models import ApiToken
from ..permissions import can_delete, can_hold, can_play
from ..services import access, holds
from ..streaming import wav_response
from . import serializers
from .cursors import ORDERINGS, KeysetCursor

_FILTERS = [
    OpenApiParameter("q", str, description="Part of a number, or a call's uuid"),
    OpenApiParameter("since", OpenApiTypes.DATE, description="Started on or after"),
    OpenApiParameter("until", OpenApiTypes.DATE, description="Started on or before"),
    OpenApiParameter("status", str, description="Vonage's status, e.g. completed"),
    OpenApiParameter("sort", str, enum=list(ORDERINGS), default="newest"),
]


def _call_or_404(request, pk: int):
    """The call, if the user sees it: another team's call is no call at all."""
    call = selectors.calls_with_recordings(request.user).filter(pk=pk).first()
    if call is None:
        raise exceptions.NotFound("No such call.")
    return call


def _error(status: int, code: str, detail: str, plain) -> Response:
    """The JSON body for a refusal the shared streaming wrote as text."""
    headers = {k: v for k, v in plain.items() if k == "Content-Range"}
    return Response(
        {"status": status, "code": code, "detail": detail},
        status=status,
        headers=headers,
    )


def _refuse_unless(allowed: bool, why: str) -> None:
    if not allowed:
        raise exceptions.PermissionDenied(why)


class CallCursor(KeysetCursor):
    page_size = settings.CALLRECORDER_API_PAGE_SIZE


@extend_schema(parameters=_FILTERS)
class CallList(generics.ListAPIView):
    """Calls the user sees, newest first: search, dates, status and sort as
    on the list page, in cursor pages."""

    serializer_class = serializers.CallSerializer
    pagination_class = CallCursor
    sort = "newest"

    def get_queryset(self):
        form = CallFilterForm(self.request.query_params)
        if not form.is_valid():
            raise exceptions.ValidationError(form.errors.get_json_data())
        filters = form.cleaned_data
        self.sort = filters.get("sort") or "newest"
        calls = selectors.finished_calls(
            user=self.request.user, exclude_call_ids=[], **filters
        )
        return calls.annotate(length=Coalesce("duration_seconds", Value(-1)))


class CallDetail(generics.RetrieveAPIView):
    """A call with its events (as the timeline says them) and recordings."""

    serializer_class = serializers.CallDetailSerializer

    def get_object(self):
        call = _call_or_404(self.request, self.kwargs["pk"])
        prefetch_related_objects([call], "events")
        if self.request.method == "GET":  # a HEAD shows nothing
            access.call_view_log(
                call=call,
                user=self.request.user,
                ip_address=client_ip(self.request),
                window_seconds=settings.ACCESS_LOG_PLAY_WINDOW_SECONDS,
            )
        return call


class LiveCalls(generics.ListAPIView):
    """Calls being recorded now, oldest first (not paged: they are few)."""

    serializer_class = serializers.LiveCallSerializer
    pagination_class = None

    def get_queryset(self):
        live = selectors.live_calls_for_list(self.request.user)
        prefetch_related_objects(live, "call__recordings")
        return live


class RecordingDetail(generics.RetrieveDestroyAPIView):
    """A recording's figures; DELETE (scope write, delete_recording) deletes
    its audio for good, unless its call is on legal hold (409)."""

    serializer_class = serializers.RecordingSerializer

    def get_object(self):
        recording = selectors.recording_of_visible_call(
            recording_id=self.kwargs["pk"], user=self.request.user
        )
        if recording is None:
            raise exceptions.NotFound("No such recording.")
        return recording

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="On hold")})
    def delete(self, request, *args, **kwargs):
        recording = self.get_object()
        _refuse_unless(
            can_delete(request.user),
            "You may not delete recordings (delete_recording).",
        )
        try:
            holds.recording_delete(
                recording=recording, user=request.user, ip_address=client_ip(request)
            )
        except holds.CallOnLegalHold as refusal:
            return Response(
                {"status": 409, "code": "legal_hold", "detail": str(refusal)},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


class RecordingAudio(APIView):
    """The recording as WAV (decoded if stored as FLAC or Opus), for
    play_recording; seekable with HTTP Range when stored as WAV. Each read
    goes into the access log."""

    @extend_schema(
        responses={
            (200, "audio/wav"): OpenApiTypes.BINARY,
            (206, "audio/wav"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="No such recording"),
        }
    )
    def get(self, request, pk: int):
        recording = selectors.recording_of_visible_call(
            recording_id=pk, user=request.user
        )
        if recording is None or not recording.file:
            raise exceptions.NotFound("No such recording.")
        _refuse_unless(
            can_play(request.user), "You may not play recordings (play_recording)."
        )
        token = request.auth if isinstance(request.auth, ApiToken) else None
        response = async_to_sync(wav_response)(
            request._request,
            recording,
            user=request.user,
            detail={"token": token.prefix} if token else None,
        )
        if response.status_code == 416:
            return _error(416, "range_not_satisfiable", "No such byte range.", response)
        if response.status_code == 503:
            why = response.content.decode().strip()
            return _error(503, "unavailable", why, response)
        return response


class LegalHold(APIView):
    """Place (POST) or release (DELETE) a call's legal hold: scope write and
    set_legal_hold. Either says where the hold now stands."""

    def _set(self, request, pk: int, *, on: bool) -> Response:
        call = _call_or_404(request, pk)
        _refuse_unless(
            can_hold(request.user),
            "You may not place or release a legal hold (set_legal_hold).",
        )
        holds.legal_hold_set(
            call=call, on=on, by=request.user, ip_address=client_ip(request)
        )
        return Response(serializers.LegalHoldSerializer(call).data)

    @extend_schema(request=None, responses=serializers.LegalHoldSerializer)
    def post(self, request, pk: int) -> Response:
        return self._set(request, pk, on=True)

    @extend_schema(request=None, responses=serializers.LegalHoldSerializer)
    def delete(self, request, pk: int) -> Response:
        return self._set(request, pk, on=False)


class Root(APIView):
    """Where everything is: the endpoints, the schema and its docs."""

    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request) -> Response:
        links = {
            name: request.build_absolute_uri(reverse(f"api:{name}"))
            for name in ("calls", "live_calls", "schema", "docs")
        }
        return Response(links)
