"""Legal hold and deletes: what is held is never deleted, every delete is logged."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from ..models import AccessLogEntry, Call, CallEvent, Recording
from . import webhooks
from .access import access_log_append


class CallOnLegalHold(Exception):
    """A call on legal hold keeps its recordings: deleting them is refused."""


def _refuse_if_held(call_id: int) -> None:
    # Read under a row lock: a hold placed a moment ago is seen, and one
    # placed from now on waits for this delete to commit.
    if Call.objects.select_for_update().filter(pk=call_id, legal_hold=True).exists():
        raise CallOnLegalHold(
            "This call is on legal hold: its recordings cannot be deleted "
            "until the hold is released."
        )


@transaction.atomic
def recording_delete(
    *, recording: Recording, user: Any, ip_address: str | None
) -> None:
    """Delete a recording (its file goes once the delete commits) and log who did.

    Raises CallOnLegalHold, deleting nothing, when its call is on legal hold.
    """
    _refuse_if_held(recording.call_id)
    access_log_append(
        action=AccessLogEntry.Action.DELETE,
        recording=recording,
        user=user,
        ip_address=ip_address,
    )
    webhooks.webhook_event_queue(
        event="recording.deleted",
        call=recording.call,
        recording=recording,
        extra={"deleted_by": user.get_username()},
    )
    recording.delete()


@transaction.atomic
def call_delete(*, call: Call, user: Any, ip_address: str | None) -> None:
    """Delete a call with its events and recordings, logging each recording.

    Raises CallOnLegalHold, deleting nothing, when the call is on legal hold.
    """
    _refuse_if_held(call.pk)
    for recording in call.recordings.select_related("call"):
        recording_delete(recording=recording, user=user, ip_address=ip_address)
    access_log_append(
        action=AccessLogEntry.Action.PURGE, call=call, user=user, ip_address=ip_address
    )
    call.delete()


@transaction.atomic
def legal_hold_set(
    *, call: Call, on: bool, by: Any, ip_address: str | None = None
) -> CallEvent | None:
    """Place a call on legal hold (no purge, no delete) or release it.

    Puts who did it on the call's timeline; setting what is already set
    changes nothing and returns None.
    """
    locked = Call.objects.select_for_update().get(pk=call.pk)
    if locked.legal_hold == on:
        for name in ("legal_hold", "legal_hold_by", "legal_hold_at"):
            setattr(call, name, getattr(locked, name))
        return None
    now = timezone.now()
    username = by.get_username()
    call.legal_hold = on
    call.legal_hold_by = username if on else ""
    call.legal_hold_at = now if on else None
    Call.objects.filter(pk=call.pk).update(
        legal_hold=call.legal_hold,
        legal_hold_by=call.legal_hold_by,
        legal_hold_at=call.legal_hold_at,
        updated_at=now,
    )
    access_log_append(
        action=AccessLogEntry.Action.HOLD_PLACE
        if on
        else AccessLogEntry.Action.HOLD_RELEASE,
        call=call,
        user=by,
        ip_address=ip_address,
    )
    webhooks.webhook_event_queue(
        event="legal_hold.changed", call=call, extra={"changed_by": username}
    )
    return CallEvent.objects.create(
        call=call,
        source=CallEvent.Source.STAFF,
        status="legal-hold:on" if on else "legal-hold:off",
        timestamp=now,
        payload={"by": username},
        fingerprint=f"legal-hold:{now.isoformat()}:{on}",
    )
