from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import unquote
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html

from .. import selectors
from ..addresses import client_ip
from ..audio.figures import RecordingFigures
from ..models import AccessLogEntry, Call, CallEvent, Line, LiveSocket, Recording
from ..permissions import can_hold
from ..services import holds


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

    @admin.display(description="encrypted", boolean=True)
    def sealed(self, recording: Recording) -> bool:
        return recording.sealed

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


class RefuseDeletingHeldCalls:
    """Deleting in the admin refuses, with a clear message, calls on legal hold.

    `held` names the lookup from this admin's model to Call.legal_hold.
    holds.recording_delete refuses too; this is what the user sees.
    """

    held: str

    def _refuse(self, request, what: str) -> None:
        self.message_user(
            request,
            f"Not deleted: {what} on legal hold. Release the hold first.",
            messages.ERROR,
        )

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if (
            obj is not None
            and self.model.objects.filter(pk=obj.pk, **{self.held: True}).exists()
        ):
            self._refuse(request, "this call is")
            opts = self.model._meta
            return redirect(
                reverse(
                    f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]
                )
            )
        return super().delete_view(request, object_id, extra_context)

    @admin.action(
        permissions=["delete"], description="Delete selected %(verbose_name_plural)s"
    )
    def delete_selected(self, request, queryset):
        held = queryset.filter(**{self.held: True}).count()
        if held:
            self._refuse(request, f"{held} of the selected belong to a call")
            return None
        return django_delete_selected(self, request, queryset)


@admin.register(Call)
class CallAdmin(RefuseDeletingHeldCalls, admin.ModelAdmin):
    list_display = [
        "started_at",
        "from_number",
        "to_number",
        "direction",
        "status",
        "duration_seconds",
        "recording_count",
        "legal_hold",
    ]
    list_filter = ["status", "direction", "legal_hold", "started_at"]
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
        "legal_hold",
        "legal_hold_by",
        "legal_hold_at",
    ]
    inlines = [RecordingInline, CallEventInline]
    actions = ["delete_selected", "place_legal_hold", "release_legal_hold"]
    held = "legal_hold"

    def get_queryset(self, request):
        """Only the calls of the user's teams' lines, unless they see all."""
        calls = super().get_queryset(request).prefetch_related("recordings")
        return calls.filter(selectors.seen_by(request.user))

    def has_set_legal_hold_permission(self, request) -> bool:
        return can_hold(request.user)

    def _set_hold(self, request, queryset, *, on: bool) -> int:
        """How many of the calls changed (one already so is left as it was)."""
        return sum(
            bool(
                holds.legal_hold_set(
                    call=call, on=on, by=request.user, ip_address=client_ip(request)
                )
            )
            for call in queryset
        )

    @admin.action(permissions=["set_legal_hold"], description="Place on legal hold")
    def place_legal_hold(self, request, queryset) -> None:
        changed = self._set_hold(request, queryset, on=True)
        self.message_user(request, f"{changed} call(s) placed on legal hold.")

    @admin.action(permissions=["set_legal_hold"], description="Release legal hold")
    def release_legal_hold(self, request, queryset) -> None:
        changed = self._set_hold(request, queryset, on=False)
        self.message_user(request, f"Legal hold released on {changed} call(s).")

    def delete_model(self, request, obj: Call) -> None:
        holds.call_delete(call=obj, user=request.user, ip_address=client_ip(request))

    def delete_queryset(self, request, queryset) -> None:
        for call in queryset:
            self.delete_model(request, call)

    @admin.display(description="recordings")
    def recording_count(self, call: Call) -> int:
        return len(call.recordings.all())

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Recording)
class RecordingAdmin(RefuseDeletingHeldCalls, admin.ModelAdmin):
    list_display = [
        "started_at",
        "call",
        "player",
        "duration",
        "format",
        "sealed",
        "size_bytes",
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
        recordings = super().get_queryset(request)
        return recordings.filter(selectors.seen_by(request.user, via="call__"))

    @admin.display(description="audio")
    def player(self, recording: Recording) -> str:
        return audio_player(recording)

    @admin.display(description="encrypted", boolean=True)
    def sealed(self, recording: Recording) -> bool:
        return recording.sealed

    @admin.display(description="duration (s)")
    def duration(self, recording: Recording) -> str:
        return f"{recording.duration_seconds:.1f}"

    def has_add_permission(self, request) -> bool:
        return False

    def delete_model(self, request, obj: Recording) -> None:
        holds.recording_delete(
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

    def get_queryset(self, request):
        events = super().get_queryset(request)
        return events.filter(selectors.seen_by(request.user, via="call__"))

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        """A call's timeline is its audit trail (who paused, who held it): only
        a purge of the whole call removes it, and the purge is logged."""
        return False


@admin.register(LiveSocket)
class LiveSocketAdmin(admin.ModelAdmin):
    """Calls being recorded now. A row whose process stopped renewing it (a
    worker killed, a machine lost) is "not alive": its call shows as ended
    everywhere; the row goes when that machine recovers its spool, or here."""

    list_display = [
        "call",
        "started_at",
        "paused",
        "paused_by",
        "seen_at",
        "is_alive",
        "channel_name",
    ]
    list_filter = ["paused"]
    search_fields = ["call__uuid", "call__from_number", "call__to_number"]
    list_select_related = ["call"]
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

    @admin.display(boolean=True, description="alive", ordering="alive")
    def is_alive(self, live_socket: LiveSocket) -> bool:
        return live_socket.alive

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
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
        "detail",
    ]
    list_filter = ["action", "created_at", "username"]
    search_fields = ["username", "call_uuid", "ip_address", "recording_file"]
    date_hierarchy = "created_at"

    @admin.display(description="call")
    def call_link(self, entry: AccessLogEntry) -> str:
        if entry.call_id is None:
            return "—"
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


@admin.register(Line)
class LineAdmin(admin.ModelAdmin):
    """Our phone numbers and the teams (groups) whose members see their calls."""

    list_display = ["number", "name", "team_names"]
    search_fields = ["number", "name", "groups__name"]
    list_filter = ["groups"]
    filter_horizontal = ["groups"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="teams")
    def team_names(self, line: Line) -> str:
        return ", ".join(group.name for group in line.groups.all()) or "—"
