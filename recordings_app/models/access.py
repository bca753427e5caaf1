"""Who may do what once, and who did what: one-time tokens and the access log."""

from __future__ import annotations

import hashlib
import json

from django.db import models
from django.utils import timezone


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


class AccessLogEntry(models.Model):
    """Who played, downloaded or deleted which recording, when, from where.

    Each entry holds the hash of the one before: removing or altering an
    entry breaks the chain (manage.py verify_access_log). Users, calls and
    recordings are copied in as plain values, so deleting them changes
    nothing here.
    """

    class Action(models.TextChoices):
        PLAY = "play"
        DOWNLOAD = "download"
        DELETE = "delete"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    user_id = models.BigIntegerField(null=True)
    username = models.CharField(max_length=150)
    ip_address = models.GenericIPAddressField(null=True)
    call_id = models.BigIntegerField(db_index=True)
    call_uuid = models.CharField(max_length=80, blank=True)
    recording_id = models.BigIntegerField(db_index=True)
    recording_file = models.CharField(max_length=255)
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
        return f"{self.username} {self.action} recording {self.recording_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("the access log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("the access log is append-only")

    def compute_hash(self) -> str:
        """SHA-256 over the previous hash and every recorded field."""
        fields = {
            "created_at": self.created_at.isoformat(),
            "action": self.action,
            "user_id": self.user_id,
            "username": self.username,
            "ip_address": self.ip_address,
            "call_id": self.call_id,
            "call_uuid": self.call_uuid,
            "recording_id": self.recording_id,
            "recording_file": self.recording_file,
        }
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(f"{self.prev_hash}|{canonical}".encode()).hexdigest()
