"""The access log in the admin: read-only, newest first."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from ..models import AccessLogEntry
from . import columns


@admin.register(AccessLogEntry)
class AccessLogAdmin(columns.ModelAdmin):
    """Read-only: the log is append-only, for staff to review."""

    list_display = [
        "time",
        "action",
        "username",
        "ip_address",
        "call_link",
        "recording",
        "details",
    ]
    list_filter = ["action", "created_at", "username"]
    search_fields = ["username", "call_uuid", "ip_address", "recording_file"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]

    @admin.display(description="time", ordering="created_at")
    def time(self, entry: AccessLogEntry) -> str:
        return columns.moment(entry.created_at, seconds=True)

    @admin.display(description="call")
    def call_link(self, entry: AccessLogEntry) -> str:
        if entry.call_id is None:
            return "—"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("recordings:call_detail", args=[entry.call_id]),
            columns.clipped(entry.call_uuid or str(entry.call_id)),
        )

    @admin.display(description="recording", ordering="recording_id")
    def recording(self, entry: AccessLogEntry) -> str:
        return "—" if entry.recording_id is None else str(entry.recording_id)

    @admin.display(description="detail")
    def details(self, entry: AccessLogEntry) -> str:
        detail = entry.detail
        if isinstance(detail, dict):
            detail = ", ".join(f"{key}: {value}" for key, value in detail.items())
        return columns.clipped(str(detail or ""))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
