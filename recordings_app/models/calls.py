"""Calls: who called which of our lines, and what Vonage said about it."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone


class Call(models.Model):
    """One phone call: every leg of a Vonage conversation, joined on its uuid."""

    conversation_uuid = models.CharField(
        max_length=80, unique=True, null=True, blank=True
    )
    uuid = models.CharField(
        "caller leg uuid", max_length=80, unique=True, null=True, blank=True
    )
    from_number = models.CharField("from", max_length=100, blank=True)
    to_number = models.CharField("to", max_length=100, blank=True)
    direction = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=40, blank=True)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="As billed by Vonage (the completed event)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    legal_hold = models.BooleanField(
        default=False, help_text="Kept whatever the retention: no purge deletes it."
    )
    legal_hold_by = models.CharField(max_length=150, blank=True)
    legal_hold_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        # Each action its own permission: is_staff alone grants none of them.
        permissions = [
            ("view_all_calls", "Can see the calls of every line"),
            ("listen_live", "Can listen in to calls in progress"),
            ("pause_recording", "Can pause and resume recording a call"),
            ("set_legal_hold", "Can place or release a legal hold"),
        ]
        indexes = [
            models.Index(fields=["status", "-started_at"]),
            # The list's order, so any page (OFFSET) walks the index, no sort.
            models.Index(fields=["-started_at", "-id"], name="call_newest_first"),
        ]

    def __str__(self) -> str:
        parties = f"{self.from_number or '?'} → {self.to_number or '?'}"
        return f"{parties} ({self.started_at:%Y-%m-%d %H:%M})"

    def get_absolute_url(self) -> str:
        return reverse("recordings:call_detail", args=[self.pk])

    @property
    def recorded_seconds(self) -> float:
        """Audio kept for this call (uses prefetched recordings when there are)."""
        return sum(recording.duration_seconds for recording in self.recordings.all())

    @property
    def recorded_bytes(self) -> int:
        return sum(recording.size_bytes for recording in self.recordings.all())

    @property
    def display_duration(self) -> float | None:
        """Vonage's billed duration once known, else the length of the audio."""
        if self.duration_seconds is not None:
            return self.duration_seconds
        return self.recorded_seconds or None


class Line(models.Model):
    """One of our phone numbers. Members of its groups (teams) see its calls:
    the calls to it, or from it (outbound)."""

    number = models.CharField(
        max_length=20,
        unique=True,
        validators=[
            RegexValidator(
                r"^[1-9][0-9]{5,14}$",
                "Digits only, country code first, as Vonage sends them (447700900000).",
            )
        ],
    )
    name = models.CharField(max_length=100, blank=True)
    groups = models.ManyToManyField(
        Group,
        related_name="lines",
        blank=True,
        help_text="Teams whose members see this line's calls.",
    )

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"{self.name} ({self.number})" if self.name else self.number


class CallEvent(models.Model):
    """Something Vonage told us about a call: a webhook event or a socket message."""

    class Source(models.TextChoices):
        WEBHOOK = "webhook", "event webhook"
        SOCKET = "socket", "audio socket"
        STAFF = "staff", "staff action"

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="events")
    source = models.CharField(max_length=10, choices=Source.choices)
    leg_uuid = models.CharField(max_length=80, blank=True, db_index=True)
    is_websocket_leg = models.BooleanField(default=False)
    status = models.CharField(max_length=60)
    timestamp = models.DateTimeField(
        default=timezone.now, help_text="When Vonage says it happened."
    )
    received_at = models.DateTimeField(auto_now_add=True)
    payload = models.JSONField(help_text="Exactly what Vonage sent.")
    fingerprint = models.CharField(
        max_length=64, help_text="Identifies a repeated delivery of the same event."
    )

    class Meta:
        ordering = ["timestamp", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["call", "fingerprint"], name="unique_event_per_call"
            )
        ]

    def __str__(self) -> str:
        return f"{self.status} at {self.timestamp:%H:%M:%S}"

    @property
    def dtmf_digit(self) -> str:
        return (
            str(self.payload.get("digit", ""))
            if self.status == "websocket:dtmf"
            else ""
        )
