"""Who may do what once, and who did what: one-time tokens and the access log.

The access log is a keyed hash chain (each entry holds the HMAC of the one
before), appended to here and only here; services.audit checkpoints and
verifies it.
"""

from __future__ import annotations

import functools
import time
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ..models import GENESIS_HASH, AccessLogEntry, Call, Recording, UsedToken
from . import audit

# Expired tokens are pruned at most this often per process: deleting them in
# every webhook's transaction cost a statement per request.
TOKEN_PRUNE_SECONDS = 60.0
_tokens_pruned_at = -TOKEN_PRUNE_SECONDS


def tokens_use_each(*, valid_for: dict[str, float]) -> set[str]:
    """Mark one-time tokens used (key -> seconds it must be remembered);
    return those that were not used before (the others are replays).

    Call it inside the transaction of the work the tokens allow, so a
    request that fails leaves them unused for Vonage's retry. One INSERT ...
    ON CONFLICT DO NOTHING (PostgreSQL and SQLite alike), not a savepoint
    and an insert each: a burst of webhooks costs one round trip.
    """
    global _tokens_pruned_at
    now = timezone.now()
    if time.monotonic() - _tokens_pruned_at >= TOKEN_PRUNE_SECONDS:
        _tokens_pruned_at = time.monotonic()
        UsedToken.objects.filter(expires_at__lt=now).delete()
    if not valid_for:
        return set()
    keys = [key[:255] for key in valid_for]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(UsedToken._meta.db_table)} ({quote('key')}, "
        f"{quote('expires_at')}) VALUES {', '.join(['(%s, %s)'] * len(keys))} "
        f"ON CONFLICT ({quote('key')}) DO NOTHING RETURNING {quote('key')}"
    )
    params = []
    for key, seconds in zip(keys, valid_for.values(), strict=True):
        params += [key, now + timedelta(seconds=seconds)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {key for (key,) in cursor.fetchall()}


def tokens_use(*, valid_for: dict[str, float]) -> bool:
    """Mark one-time tokens used, all or none: False if any of them was used
    before (a replay); then none is marked."""
    marked = tokens_use_each(valid_for=valid_for)
    if len(marked) == len({key[:255] for key in valid_for}):
        return True
    UsedToken.objects.filter(key__in=marked).delete()
    return False


def token_use(*, key: str, valid_for: float) -> bool:
    """Mark one one-time token used; False if it was used before (a replay)."""
    return tokens_use(valid_for={key: valid_for})


class System:
    """Who the access log names for what the app did by itself (a purge, a run)."""

    pk = None

    def __init__(self, name: str) -> None:
        self.name = name

    def get_username(self) -> str:
        return self.name


def access_log_append(
    *,
    action: str,
    user: Any,
    ip_address: str | None,
    call: Call | None = None,
    recording: Recording | None = None,
    detail: dict[str, Any] | None = None,
    attempts: int = 20,
) -> AccessLogEntry:
    """Append one entry to the keyed chain of the access log.

    prev_hash is unique, so of two requests appending at once one fails
    and tries again on top of the other: the chain never forks. Once the
    entry commits, the chain's head is checkpointed outside the database
    (services.audit).
    """
    if recording is not None:
        call = recording.call
    for _ in range(attempts):
        last = AccessLogEntry.objects.order_by("-id").only("entry_hash").first()
        entry = AccessLogEntry(
            action=action,
            user_id=user.pk,
            username=user.get_username(),
            ip_address=ip_address,
            call_id=call.pk if call else None,
            call_uuid=(call.uuid or call.conversation_uuid or "") if call else "",
            recording_id=recording.pk if recording else None,
            recording_file=recording.file.name if recording else "",
            detail=detail or {},
            prev_hash=last.entry_hash if last else GENESIS_HASH,
        )
        entry.entry_hash = entry.compute_hash()
        try:
            with transaction.atomic():
                entry.save()
        except IntegrityError:
            continue
        transaction.on_commit(
            functools.partial(audit.checkpoints.appended, entry.pk, entry.entry_hash)
        )
        return entry
    raise RuntimeError("could not append to the access log: too much contention")


def _logged_lately(window_seconds: float, **match: Any) -> bool:
    since = timezone.now() - timedelta(seconds=window_seconds)
    return AccessLogEntry.objects.filter(created_at__gte=since, **match).exists()


def recording_play_log(
    *,
    recording: Recording,
    user: Any,
    ip_address: str | None,
    action: str,
    window_seconds: float,
    detail: dict[str, Any] | None = None,
) -> AccessLogEntry | None:
    """Log a play or download once per user, recording, address and detail
    (an API token's prefix) within the window.

    A browser plays one recording with many Range requests (metadata,
    buffering, every seek); they are one play, not hundreds of entries. The
    same user from another address, or with another token, is another entry.
    """
    if _logged_lately(
        window_seconds,
        action=action,
        user_id=user.pk,
        recording_id=recording.pk,
        ip_address=ip_address,
        detail=detail or {},
    ):
        return None
    return access_log_append(
        action=action,
        recording=recording,
        user=user,
        ip_address=ip_address,
        detail=detail,
    )


def call_view_log(
    *, call: Call, user: Any, ip_address: str | None, window_seconds: float
) -> AccessLogEntry | None:
    """Log who opened a call's page, once per user and call within the window."""
    view = AccessLogEntry.Action.VIEW
    if _logged_lately(window_seconds, action=view, user_id=user.pk, call_id=call.pk):
        return None
    return access_log_append(action=view, call=call, user=user, ip_address=ip_address)


def call_action_log(
    *, call_id: int, action: str, user: Any, ip_address: str | None
) -> AccessLogEntry | None:
    """Log what someone did to a call by its id (listen-in, pause); None if gone."""
    call = Call.objects.filter(pk=call_id).first()
    if call is None:
        return None
    return access_log_append(action=action, call=call, user=user, ip_address=ip_address)
