from __future__ import annotations

from django import template

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
