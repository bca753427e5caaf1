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
    """Where an event falls in a recording, to the tenth the player shows:
    1.52 -> "0:01.5"; -2 -> "−0:02.0" (before the recording began).

    Tenths are cut, not rounded, so a key pressed at 1.97 s reads 0:01.9,
    as the player does while it plays that moment, not 0:02.
    """
    if seconds is None:
        return "—"
    if seconds <= -0.1:
        return f"−{_tenths(-seconds)}"
    return _tenths(max(seconds, 0.0))


def _tenths(seconds: float) -> str:
    whole, tenth = divmod(int(seconds * 10 + 1e-6), 10)
    return f"{clock(whole)}.{tenth}"


@register.filter
def seconds_since(moment: datetime | str | None) -> float:
    """A live call's elapsed time when the page is made; the page ticks on."""
    if not isinstance(moment, datetime):  # a row template for the page's script
        return 0.0
    return round(max((timezone.now() - moment).total_seconds(), 0.0), 1)
