from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from . import services
from .models import AccessLogEntry, Call, CallEvent, Recording
from .views import client_ip


def audio_player(recording: Recording) -> str:
    if not recording.pk or not recording.file:
        return "—"
    return format_html(
        '<audio controls preload="none" src="{}"></audio>',
        recording.get_absolute_url(),
    )


class RecordingInline(admin.TabularInline):
    model = Recording
    extra = 0
    fields = ["player", "duration", "sample_rate", "size_bytes", "started_at"]
    readonly_fields = fields
    # Deleting goes through the recording's own page or the bulk action,
    # which write the access log; an inline delete would not.
    can_delete = False
    show_change_link = True

    @admin.display(description="audio")
    def player(self, recording: Recording) -> str:
        return audio_player(recording)

    @admin.display(description="duration (s)")
    def duration(self, recording: Recording) -> str:
        return f"{recording.duration_seconds:.1f}"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class CallEventInline(admin.TabularInline):
    model = CallEvent
    extra = 0
    fields = [
        "timestamp",
        "status",
        "source",
        "leg_uuid",
        "is_websocket_leg",
        "payload",
    ]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Call)
class CallAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "from_number",
        "to_number",
        "direction",
        "status",
        "duration_seconds",
        "recording_count",
    ]
    list_filter = ["status", "direction", "started_at"]
    search_fields = ["from_number", "to_number", "uuid", "conversation_uuid"]
    date_hierarchy = "started_at"
    readonly_fields = [
        "conversation_uuid",
        "uuid",
        "from_number",
        "to_number",
        "direction",
        "status",
        "started_at",
        "ended_at",
        "duration_seconds",
        "created_at",
        "updated_at",
    ]
    inlines = [RecordingInline, CallEventInline]

    def delete_model(self, request, obj: Call) -> None:
        services.call_delete(call=obj, user=request.user, ip_address=client_ip(request))

    def delete_queryset(self, request, queryset) -> None:
        for call in queryset:
            self.delete_model(request, call)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("recordings")

    @admin.display(description="recordings")
    def recording_count(self, call: Call) -> int:
        return len(call.recordings.all())

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Recording)
class RecordingAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "call",
        "player",
        "duration",
        "sample_rate",
        "size_bytes",
        "frame_count",
    ]
    list_filter = ["sample_rate", "started_at"]
    search_fields = [
        "call__from_number",
        "call__to_number",
        "call__uuid",
        "call__conversation_uuid",
    ]
    list_select_related = ["call"]
    date_hierarchy = "started_at"
    readonly_fields = [
        "call",
        "player",
        "file",
        "sample_rate",
        "sample_count",
        "frame_count",
        "size_bytes",
        "odd_byte_carries",
        "started_at",
        "ended_at",
        "created_at",
    ]

    @admin.display(description="audio")
    def player(self, recording: Recording) -> str:
        return audio_player(recording)

    @admin.display(description="duration (s)")
    def duration(self, recording: Recording) -> str:
        return f"{recording.duration_seconds:.1f}"

    def has_add_permission(self, request) -> bool:
        return False

    def delete_model(self, request, obj: Recording) -> None:
        services.recording_delete(
            recording=obj, user=request.user, ip_address=client_ip(request)
        )

    def delete_queryset(self, request, queryset) -> None:
        for recording in queryset.select_related("call"):
            self.delete_model(request, recording)


@admin.register(CallEvent)
class CallEventAdmin(admin.ModelAdmin):
    list_display = [
        "timestamp",
        "status",
        "source",
        "call",
        "leg_uuid",
        "is_websocket_leg",
    ]
    list_filter = ["source", "status", "is_websocket_leg", "timestamp"]
    search_fields = [
        "leg_uuid",
        "call__uuid",
        "call__conversation_uuid",
        "call__from_number",
        "call__to_number",
    ]
    list_select_related = ["call"]
    date_hierarchy = "timestamp"
    readonly_fields = [
        "call",
        "source",
        "leg_uuid",
        "is_websocket_leg",
        "status",
        "timestamp",
        "received_at",
        "payload",
        "fingerprint",
    ]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(AccessLogEntry)
class AccessLogAdmin(admin.ModelAdmin):
    """Read-only: the log is append-only, for staff to review."""

    list_display = [
        "created_at",
        "action",
        "username",
        "ip_address",
        "call_link",
        "recording_id",
    ]
    list_filter = ["action", "created_at", "username"]
    search_fields = ["username", "call_uuid", "ip_address", "recording_file"]
    date_hierarchy = "created_at"

    @admin.display(description="call")
    def call_link(self, entry: AccessLogEntry) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("recordings:call_detail", args=[entry.call_id]),
            entry.call_uuid or entry.call_id,
        )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
