from __future__ import annotations

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

    class Meta:
        ordering = ["-started_at", "-id"]

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
    def display_duration(self) -> float | None:
        """Vonage's billed duration once known, else the length of the audio."""
        if self.duration_seconds is not None:
            return self.duration_seconds
        return self.recorded_seconds or None


class CallEvent(models.Model):
    """Something Vonage told us about a call: a webhook event or a socket message."""

    class Source(models.TextChoices):
        WEBHOOK = "webhook", "event webhook"
        SOCKET = "socket", "audio socket"

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


def recording_upload_to(recording: Recording, filename: str) -> str:
    """recordings/2026/11/25/<spool file name>: dated folders, unique names."""
    return f"recordings/{timezone.now():%Y/%m/%d}/{filename}"


class Recording(models.Model):
    """The audio of one socket connection of a call, stored as a WAV file."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="recordings")
    file = models.FileField(upload_to=recording_upload_to, max_length=255)
    sample_rate = models.PositiveIntegerField()
    sample_count = models.PositiveBigIntegerField(
        help_text="16-bit mono samples in the WAV."
    )
    frame_count = models.PositiveIntegerField(
        help_text="Binary WebSocket messages received (20 ms each from Vonage)."
    )
    size_bytes = models.PositiveBigIntegerField("size")
    odd_byte_carries = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["started_at", "id"]

    def __str__(self) -> str:
        return f"{self.file.name} ({self.duration_seconds:.1f} s)"

    def get_absolute_url(self) -> str:
        return reverse("recordings:recording_media", args=[self.pk])

    @property
    def duration_seconds(self) -> float:
        return self.sample_count / self.sample_rate if self.sample_rate else 0.0

    def get_download_url(self) -> str:
        return reverse("recordings:recording_download", args=[self.pk])
