"""Calls in the admin, with their recordings and events; our lines."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import unquote
from django.db.models import Count
from django.shortcuts import redirect
from django.urls import reverse

from .. import selectors
from ..addresses import client_ip
from ..models import Call, CallEvent, Line, Recording
from ..permissions import can_hold
from ..services import holds
from ..templatetags.recordings import clock
from . import columns


class RecordingInline(admin.TabularInline):
    model = Recording
    extra = 0
    fields = ["player", "size", "format", "sealed", "started"]
    readonly_fields = fields
    # Deleting goes through the recording's own page or the bulk action,
    # which write the access log; an inline delete would not.
    can_delete = False
    show_change_link = True

    @admin.display(description="audio")
    def player(self, recording: Recording) -> str:
        return columns.player(recording)

    @admin.display(description="size")
    def size(self, recording: Recording) -> str:
        return columns.size(recording.size_bytes)

    @admin.display(description="encrypted", boolean=True)
    def sealed(self, recording: Recording) -> bool:
        return recording.sealed

    @admin.display(description="started")
    def started(self, recording: Recording) -> str:
        return columns.moment(recording.started_at, seconds=True)

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
class CallAdmin(RefuseDeletingHeldCalls, columns.ModelAdmin):
    list_display = [
        "started",
        "from_number",
        "to_number",
        "direction",
        "status",
        "duration",
        "recording_count",
        "legal_hold",
    ]
    list_filter = ["status", "direction", "legal_hold", "started_at"]
    search_fields = ["from_number", "to_number", "uuid", "conversation_uuid"]
    date_hierarchy = "started_at"
    ordering = ["-started_at", "-id"]
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
        calls = (
            super().get_queryset(request).annotate(recordings_made=Count("recordings"))
        )
        return calls.filter(selectors.seen_by(request.user))

    @admin.display(description="started", ordering="started_at")
    def started(self, call: Call) -> str:
        return columns.moment(call.started_at)

    @admin.display(description="duration", ordering="duration_seconds")
    def duration(self, call: Call) -> str:
        return clock(call.duration_seconds)

    @admin.display(description="recordings", ordering="recordings_made")
    def recording_count(self, call: Call) -> int:
        return call.recordings_made

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

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(CallEvent)
class CallEventAdmin(columns.ModelAdmin):
    list_display = [
        "time",
        "status",
        "source",
        "call_numbers",
        "leg",
        "websocket_leg",
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
    ordering = ["-timestamp", "-id"]
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

    @admin.display(description="time", ordering="timestamp")
    def time(self, event: CallEvent) -> str:
        return columns.moment(event.timestamp, seconds=True)

    @admin.display(description="call", ordering="call__started_at")
    def call_numbers(self, event: CallEvent) -> str:
        return columns.call_cell(event.call)

    @admin.display(description="leg uuid", ordering="leg_uuid")
    def leg(self, event: CallEvent) -> str:
        return columns.clipped(event.leg_uuid)

    @admin.display(description="socket leg", boolean=True, ordering="is_websocket_leg")
    def websocket_leg(self, event: CallEvent) -> bool:
        return event.is_websocket_leg

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        """A call's timeline is its audit trail (who paused, who held it): only
        a purge of the whole call removes it, and the purge is logged."""
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
