"""Who may do what once, and who did what: one-time tokens and the access log.

The access log is a hash chain (each entry holds the hash of the one
before), appended to here and only here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import GENESIS_HASH, AccessLogEntry, Recording, UsedToken


def token_use(*, key: str, valid_for: float) -> bool:
    """Mark a one-time token used; False if it was used before (a replay).

    Call it inside the transaction of the work the token allows, so a
    request that fails leaves its token unused for Vonage's retry.
    """
    now = timezone.now()
    UsedToken.objects.filter(expires_at__lt=now).delete()
    try:
        with transaction.atomic():
            UsedToken.objects.create(
                key=key[:255], expires_at=now + timedelta(seconds=valid_for)
            )
    except IntegrityError:
        return False
    return True


def access_log_append(
    *,
    action: str,
    recording: Recording,
    user: Any,
    ip_address: str | None,
    attempts: int = 20,
) -> AccessLogEntry:
    """Append one entry to the hash chain of the access log.

    prev_hash is unique, so of two requests appending at once one fails
    and tries again on top of the other: the chain never forks.
    """
    for _ in range(attempts):
        last = AccessLogEntry.objects.order_by("-id").only("entry_hash").first()
        entry = AccessLogEntry(
            action=action,
            user_id=user.pk,
            username=user.get_username(),
            ip_address=ip_address,
            call_id=recording.call_id,
            call_uuid=recording.call.uuid or recording.call.conversation_uuid or "",
            recording_id=recording.pk,
            recording_file=recording.file.name,
            prev_hash=last.entry_hash if last else GENESIS_HASH,
        )
        entry.entry_hash = entry.compute_hash()
        try:
            with transaction.atomic():
                entry.save()
        except IntegrityError:
            continue
        return entry
    raise RuntimeError("could not append to the access log: too much contention")


def recording_play_log(
    *,
    recording: Recording,
    user: Any,
    ip_address: str | None,
    action: str,
    window_seconds: float,
) -> AccessLogEntry | None:
    """Log a play or download once per user and recording within the window.

    A browser plays one recording with many Range requests (metadata,
    buffering, every seek); they are one play, not hundreds of entries.
    """
    since = timezone.now() - timedelta(seconds=window_seconds)
    already = AccessLogEntry.objects.filter(
        action=action,
        user_id=user.pk,
        recording_id=recording.pk,
        created_at__gte=since,
    ).exists()
    if already:
        return None
    return access_log_append(
        action=action, recording=recording, user=user, ip_address=ip_address
    )


class BrokenChain(Exception):
    """An access log entry was removed or altered; the message says which."""


def access_log_verify() -> int:
    """Walk the chain from its start; the number of entries, or BrokenChain."""
    expected_prev = GENESIS_HASH
    count = 0
    for entry in AccessLogEntry.objects.order_by("id").iterator():
        if entry.prev_hash != expected_prev:
            raise BrokenChain(
                f"entry {entry.pk}: the entry before it was removed or altered "
                f"(chain broken after {count} good entries)"
            )
        if entry.compute_hash() != entry.entry_hash:
            raise BrokenChain(
                f"entry {entry.pk} was altered: its contents do not match its hash"
            )
        expected_prev = entry.entry_hash
        count += 1
    return count
