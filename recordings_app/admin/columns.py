"""What the changelists show, for a person reading them at a laptop or a phone.

Times to the minute (events and the log to the second), newest first;
sizes as "2.0 MB" and durations as "1:05"; a call as its two numbers; long
ids cut to their column (the whole id on hover). The player fetches
nothing until its button is pressed: a page of a hundred recordings loads
no audio, and the access log counts only the plays that happened.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib import admin
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from ..models import Call, Recording
from ..templatetags.recordings import clock


class ModelAdmin(admin.ModelAdmin):
    """The app's model admins: its stylesheet (columns that fit, the player)
    and the player's script."""

    class Media:
        css = {"all": ["recordings_app/admin.css"]}
        js = ["recordings_app/admin.js"]


def moment(value: datetime | None, *, seconds: bool = False) -> str:
    """Local time, date then clock: "2026-11-25 14:05"; on a phone the clock
    goes under the date."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}"><span class="nowrap">{}</span> '
        '<span class="nowrap">{}</span></time>',
        value.isoformat(),
        f"{local:%Y-%m-%d}",
        f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}",
    )


def call_cell(call: Call) -> str:
    """The call's numbers, to its admin page; wraps at the arrow if need be."""
    return format_html(
        '<a href="{}"><span class="nowrap">{} →</span> '
        '<span class="nowrap">{}</span></a>',
        reverse("admin:recordings_app_call_change", args=[call.pk]),
        call.from_number or "?",
        call.to_number or "?",
    )


def clipped(text: str | None) -> str:
    """A long id (a uuid, a channel name) cut to its column; all of it on hover."""
    if not text:
        return "—"
    return format_html('<span class="admin-clip" title="{}">{}</span>', text, text)


def size(size_bytes: int | None) -> str:
    """2080044 -> "2.0 MB"."""
    return "—" if size_bytes is None else filesizeformat(size_bytes)


def player(recording: Recording) -> str:
    """A play button and the recording's length; admin.js makes the <audio>
    (the recording's own URL, so the media view checks who may play and
    logs the play) when the button is first pressed."""
    if not recording.pk or not recording.file:
        return "—"
    return format_html(
        '<span class="admin-player" data-src="{}" data-duration="{}">'
        '<button type="button" class="admin-play" aria-label="Play" title="Play">'
        "</button>"
        '<span class="admin-player-time">{}</span></span>',
        recording.get_absolute_url(),
        f"{recording.duration_seconds:.3f}",
        clock(recording.duration_seconds),
    )
