"""Who may do what: one permission per action, none of them granted by is_staff.

Seeing a call at all also needs its line (selectors.visible_calls), unless
the user may see every line's calls. Superusers hold every permission.
"""

from __future__ import annotations

from typing import Any

VIEW_ALL_CALLS = "recordings_app.view_all_calls"
PLAY = "recordings_app.play_recording"
LISTEN = "recordings_app.listen_live"
PAUSE = "recordings_app.pause_recording"
DELETE = "recordings_app.delete_recording"
LEGAL_HOLD = "recordings_app.set_legal_hold"
SEE_ACCESS_LOG = "recordings_app.view_accesslogentry"


def can_play(user: Any) -> bool:
    """Play and download recordings (of calls the user sees)."""
    return user.has_perm(PLAY)


def can_listen(user: Any) -> bool:
    return user.has_perm(LISTEN)


def can_pause(user: Any) -> bool:
    return user.has_perm(PAUSE)


def can_delete(user: Any) -> bool:
    return user.has_perm(DELETE)


def can_hold(user: Any) -> bool:
    """Place or release a legal hold."""
    return user.has_perm(LEGAL_HOLD)


def sees_all_calls(user: Any) -> bool:
    return user.has_perm(VIEW_ALL_CALLS)
