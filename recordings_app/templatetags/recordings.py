from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def clock(seconds: float | int | None) -> str:
    """65.2 -> "1:05"; 3725 -> "1:02:05"; None -> "—"."""
    if seconds is None:
        return "—"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


@register.filter
def offset(seconds: float | None) -> str:
    """Where an event falls in a recording: 3.4 -> "0:03"; -2 -> "−0:02" (before)."""
    if seconds is None:
        return "—"
    if seconds <= -0.5:
        return f"−{clock(-seconds)}"
    return clock(max(seconds, 0))


@register.filter
def seconds_since(moment: datetime | str | None) -> float:
    """A live call's elapsed time when the page is made; the page ticks on."""
    if not isinstance(moment, datetime):  # a row template for the page's script
        return 0.0
    return round(max((timezone.now() - moment).total_seconds(), 0.0), 1)
