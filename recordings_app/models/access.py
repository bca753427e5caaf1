"""Who may do what once, and who did what: one-time tokens and the access log."""

from __future__ import annotations

import json

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac


class UsedToken(models.Model):
    """A one-time token already seen: a webhook JWT's jti or a socket token.

    Rows are only needed while the token could still pass its age check.
    """

    key = models.CharField(max_length=255, unique=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.key


GENESIS_HASH = "0" * 64


class AccessLogQuerySet(models.QuerySet):
    """The access log is append-only: no bulk update or delete through the ORM."""

    def update(self, **kwargs):
        raise PermissionError("the access log is append-only")

    def delete(self):
        raise PermissionError("the access log is append-only")


def audit_key() -> str:
    """The access log's HMAC key: CALLRECORDER_AUDIT_KEY, else one derived from
    SECRET_KEY (salted_hmac salts it, so the two are never the same key)."""
    return settings.CALLRECORDER_AUDIT_KEY or settings.SECRET_KEY


def audit_mac(value: str) -> str:
    """HMAC-SHA256 of value under the audit key (Django's salted_hmac)."""
    return salted_hmac(
        "callrecorder.access-log", value, secret=audit_key(), algorithm="sha256"
    ).hexdigest()


class AccessLogEntry(models.Model):
    """Who did what to which call or recording, when, from where.

    Each entry holds the HMAC of the one before, keyed by the audit key:
    removing or altering an entry breaks the chain, and nobody without the
    key can recompute it (manage.py verify_access_log; the chain's head is
    also checkpointed outside the database, services.audit). Users, calls
    and recordings are copied in as plain values, so deleting them changes
    nothing here.
    """

    class Action(models.TextChoices):
        PLAY = "play"
        DOWNLOAD = "download"
        DELETE = "delete"
        VIEW = "view", "view call page"
        LISTEN_START = "listen-start", "listen-in start"
        LISTEN_END = "listen-end", "listen-in end"
        PAUSE = "pause", "pause recording"
        RESUME = "resume", "resume recording"
        HOLD_PLACE = "hold-place", "legal hold placed"
        HOLD_RELEASE = "hold-release", "legal hold released"
        PURGE = "purge", "call purged"
        ARCHIVE = "archive", "archive run"
        ROTATE_KEYS = "rotate-keys", "key rotation run"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    user_id = models.BigIntegerField(null=True)
    username = models.CharField(max_length=150)
    ip_address = models.GenericIPAddressField(null=True)
    call_id = models.BigIntegerField(null=True, db_index=True)
    call_uuid = models.CharField(max_length=80, blank=True)
    recording_id = models.BigIntegerField(null=True, db_index=True)
    recording_file = models.CharField(max_length=255, blank=True)
    detail = models.JSONField(
        default=dict, blank=True, help_text="What a run did (counts, formats)."
    )
    # unique: two entries can never follow the same one, so the chain has
    # no forks even when two requests append at once.
    prev_hash = models.CharField(max_length=64, unique=True)
    entry_hash = models.CharField(max_length=64, unique=True)

    objects = AccessLogQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name = "access log entry"
        verbose_name_plural = "access log"

    def __str__(self) -> str:
        target = (
            f"recording {self.recording_id}"
            if self.recording_id
            else f"call {self.call_id}"
            if self.call_id
            else ""
        )
        return f"{self.username} {self.action} {target}".strip()

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("the access log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("the access log is append-only")

    def compute_hash(self) -> str:
        """HMAC over the previous hash and every recorded field."""
        return audit_mac(f"{self.prev_hash}|{canonical_fields(self)}")


def canonical_fields(entry) -> str:
    """An entry's recorded fields as one canonical JSON text (also migrations')."""
    fields = {
        "created_at": entry.created_at.isoformat(),
        "action": entry.action,
        "user_id": entry.user_id,
        "username": entry.username,
        "ip_address": entry.ip_address,
        "call_id": entry.call_id,
        "call_uuid": entry.call_uuid,
        "recording_id": entry.recording_id,
        "recording_file": entry.recording_file,
        "detail": entry.detail,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))
