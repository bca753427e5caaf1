"""API tokens: made with their secret shown once, checked by their hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from ..models import ApiToken

# "crt_<prefix>_<secret>": the prefix finds the row, the secret is the key.
_MARK = "crt_"
_LONGEST_DAYS = 36500  # a hundred years: past that, no expiry at all is meant
# last_used_at is written at most this often per token, not on every request.
_USE_RECORDED_EVERY = timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def api_token_create(
    *, user: Any, scope: str, name: str = "", expires_days: int | None = None
) -> tuple[ApiToken, str]:
    """A new token for the user, and its text: the only time it is seen.

    A SHA-256 of 256 random bits is as safe to keep as a password hash
    (nothing to guess), and quick to check on every request.
    """
    if scope not in ApiToken.Scope.values:
        raise ValueError(f"scope must be read or write, not {scope!r}")
    if expires_days is not None and not 1 <= expires_days <= _LONGEST_DAYS:
        raise ValueError(f"expires_days must be from 1 to {_LONGEST_DAYS}")
    prefix = secrets.token_hex(6)
    token = f"{_MARK}{prefix}_{secrets.token_urlsafe(32)}"
    api_token = ApiToken.objects.create(
        user=user,
        name=name,
        scope=scope,
        prefix=prefix,
        key_hash=_digest(token),
        expires_at=timezone.now() + timedelta(days=expires_days)
        if expires_days
        else None,
    )
    return api_token, token


@sensitive_variables("token")
def api_token_check(*, token: str) -> ApiToken | None:
    """The live token this text is (its user loaded), or None: unknown,
    wrong secret, expired or revoked alike, so none can be told apart."""
    mark, _, rest = token.partition("_")
    prefix, _, secret = rest.partition("_")
    if f"{mark}_" != _MARK or not prefix or not secret:
        return None
    api_token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    now = timezone.now()
    if (
        api_token is None
        or not hmac.compare_digest(api_token.key_hash, _digest(token))
        or api_token.revoked_at is not None
        or (api_token.expires_at is not None and api_token.expires_at <= now)
    ):
        return None
    if api_token.last_used_at is None or (
        now - api_token.last_used_at >= _USE_RECORDED_EVERY
    ):
        api_token.last_used_at = now
        ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
    return api_token


def api_token_revoke(*, api_token: ApiToken) -> None:
    """Refused from now on; the row stays, to say what it was and when used."""
    if api_token.revoked_at is None:
        api_token.revoked_at = timezone.now()
        ApiToken.objects.filter(pk=api_token.pk).update(revoked_at=api_token.revoked_at)
