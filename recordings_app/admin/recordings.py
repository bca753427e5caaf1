"""Recordings in the admin, and the sockets recording now."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import FloatField
from django.db.models.functions import Cast, NullIf

from .. import selectors
from ..addresses import client_ip
from ..audio.figures import RecordingFigures
from ..models import LiveSocket, Recording
from ..services import holds
from . import columns
from .calls import RefuseDeletingHeldCalls


@admin.register(Recording)
class RecordingAdmin(RefuseDeletingHeldCalls, columns.ModelAdmin):
    list_display = [
        "started",
        "call_numbers",
        "player",
        "size",
        "format",
        "sealed",
        "frame_count",
    ]
    list_filter = ["format", "sample_rate", "started_at"]
    search_fields = [
        "call__from_number",
        "call__to_number",
        "call__uuid",
        "call__conversation_uuid",
    ]
    list_select_related = ["call"]
    date_hierarchy = "started_at"
    ordering = ["-started_at", "-id"]
    readonly_fields = [
        "call",
        "player",
        "file",
        *(
            name
            for name in RecordingFigures.names()
            if name not in ("peaks", "wrapped_key")
        ),
        "created_at",
    ]
    # Peaks: a thousand numbers, the call's page draws them. The wrapped
    # data key is of use to nobody reading a page.
    exclude = ["peaks", "wrapped_key"]
    actions = ["delete_selected"]
    held = "call__legal_hold"

    def get_queryset(self, request):
        recordings = (
            super()
            .get_queryset(request)
            .annotate(
                seconds=Cast("sample_count", FloatField()) / NullIf("sample_rate", 0)
            )
        )
        return recordings.filter(selectors.seen_by(request.user, via="call__"))

    @admin.display(description="started", ordering="started_at")
    def started(self, recording: Recording) -> str:
        return columns.moment(recording.started_at)

    @admin.display(description="call", ordering="call__started_at")
    def call_numbers(self, recording: Recording) -> str:
        return columns.call_cell(recording.call)

    @admin.display(description="audio", ordering="seconds")
    def player(self, recording: Recording) -> str:
        return columns.player(recording)

    @admin.display(description="size", ordering="size_bytes")
    def size(self, recording: Recording) -> str:
        return columns.size(recording.size_bytes)

    @admin.display(description="encrypted", boolean=True, ordering="key_id")
    def sealed(self, recording: Recording) -> bool:
        return recording.sealed

    def has_add_permission(self, request) -> bool:
        return False

    def delete_model(self, request, obj: Recording) -> None:
        holds.recording_delete(
            recording=obj, user=request.user, ip_address=client_ip(request)
        )

    def delete_queryset(self, request, queryset) -> None:
        for recording in queryset.select_related("call"):
            self.delete_model(request, recording)


@admin.register(LiveSocket)
class LiveSocketAdmin(columns.ModelAdmin):
    """Calls being recorded now. A row whose process stopped renewing it (a
    worker killed, a machine lost) is "not alive": its call shows as ended
    everywhere; the row goes when that machine recovers its spool, or here."""

    list_display = [
        "started",
        "call_numbers",
        "paused",
        "paused_by",
        "seen",
        "is_alive",
        "channel",
    ]
    list_filter = ["paused"]
    search_fields = ["call__uuid", "call__from_number", "call__to_number"]
    list_select_related = ["call"]
    ordering = ["-started_at", "-id"]
    readonly_fields = [
        "call",
        "channel_name",
        "spool_name",
        "sample_rate",
        "started_at",
        "paused",
        "paused_by",
        "seen_at",
    ]

    def get_queryset(self, request):
        sockets = super().get_queryset(request).with_alive()
        return sockets.filter(selectors.seen_by(request.user, via="call__"))

    @admin.display(description="started", ordering="started_at")
    def started(self, live_socket: LiveSocket) -> str:
        return columns.moment(live_socket.started_at, seconds=True)

    @admin.display(description="call", ordering="call__started_at")
    def call_numbers(self, live_socket: LiveSocket) -> str:
        return columns.call_cell(live_socket.call)

    @admin.display(description="last seen", ordering="seen_at")
    def seen(self, live_socket: LiveSocket) -> str:
        return columns.moment(live_socket.seen_at, seconds=True)

    @admin.display(boolean=True, description="alive", ordering="alive")
    def is_alive(self, live_socket: LiveSocket) -> bool:
        return live_socket.alive

    @admin.display(description="channel", ordering="channel_name")
    def channel(self, live_socket: LiveSocket) -> str:
        return columns.clipped(live_socket.channel_name)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
