from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Now
from django.urls import reverse
from django.utils import timezone

from .audio.figures import RecordingFigures


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
    expected_frame_count = models.PositiveIntegerField(
        default=0, help_text="Frames the socket's wall-clock length should hold."
    )
    gap_count = models.PositiveIntegerField(
        default=0, help_text="Pauses between frames longer than one frame."
    )
    longest_gap_ms = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField("size")
    odd_byte_carries = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(
        "SHA-256", max_length=64, blank=True, help_text="Of the WAV file as stored."
    )
    recovered = models.BooleanField(
        default=False, help_text="Rebuilt from the spool after a crash or a failure."
    )
    peaks = models.JSONField(
        default=list,
        blank=True,
        help_text="Waveform: the loudest sample of each slice, 0-1000 of full scale.",
    )
    paused_seconds = models.FloatField(
        default=0, help_text="Audio replaced by silence while recording was paused."
    )
    ended_paused = models.BooleanField(
        default=False, help_text="The call ended while recording was paused."
    )
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["started_at", "id"]
        permissions = [("play_recording", "Can play and download recordings")]

    def __str__(self) -> str:
        return f"{self.file.name} ({self.duration_seconds:.1f} s)"

    def get_absolute_url(self) -> str:
        return reverse("recordings:recording_media", args=[self.pk])

    @property
    def duration_seconds(self) -> float:
        return self.sample_count / self.sample_rate if self.sample_rate else 0.0

    def get_download_url(self) -> str:
        return reverse("recordings:recording_download", args=[self.pk])

    @property
    def completeness(self) -> float | None:
        """Frames received against frames expected from the call's length."""
        if not self.expected_frame_count:
            return None
        return min(self.frame_count / self.expected_frame_count, 1.0)

    @classmethod
    def from_figures(cls, *, call: Call, figures: RecordingFigures) -> Recording:
        """An unsaved row holding the figures (a field for each), its file unset."""
        values = {name: getattr(figures, name) for name in figures.names()}
        if values["peaks"] is None:
            values["peaks"] = []
        return cls(call=call, **values)


class LiveSocketQuerySet(models.QuerySet):
    def alive(self) -> LiveSocketQuerySet:
        """Sockets whose process said so lately: one that died (a worker
        killed, a machine lost) leaves its row behind, and that call must
        not show as live, take listeners or block retention for ever."""
        return self.filter(seen_at__gte=self.stale_before())

    def with_alive(self) -> LiveSocketQuerySet:
        return self.annotate(
            alive=models.ExpressionWrapper(
                models.Q(seen_at__gte=self.stale_before()),
                output_field=models.BooleanField(),
            )
        )

    @staticmethod
    def stale_before() -> models.Expression:
        # The database's clock, as for writing seen_at: the machines' clocks
        # may differ.
        return Now() - timedelta(seconds=LiveSocket.STALE_SECONDS)


class LiveSocket(models.Model):
    """An audio socket recording right now, in whichever server process holds it.

    The live dashboard lists these when a page loads; the channel name lets
    any process send the recording consumer a control message (pause,
    listen-in). The row goes when the recording is finished or recovered;
    meanwhile its process renews `seen_at` every HEARTBEAT_SECONDS.
    """

    HEARTBEAT_SECONDS = 30.0
    # Three missed heartbeats: the process is gone (or cut off from the
    # database, and then it cannot store a pause either).
    STALE_SECONDS = 3 * HEARTBEAT_SECONDS

    call = models.ForeignKey(
        Call, on_delete=models.CASCADE, related_name="live_sockets"
    )
    channel_name = models.CharField(max_length=200, unique=True)
    spool_name = models.CharField(max_length=200, db_index=True)
    sample_rate = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    paused = models.BooleanField(default=False)
    paused_by = models.CharField(max_length=150, blank=True)
    seen_at = models.DateTimeField(
        # A database default: workers still on the code before this field
        # (during a deploy) can go on opening live sockets.
        db_default=Now(),
        db_index=True,
        help_text="Its process last said it is recording (see HEARTBEAT_SECONDS).",
    )

    objects = LiveSocketQuerySet.as_manager()

    class Meta:
        ordering = ["started_at", "id"]

    def __str__(self) -> str:
        return f"live socket of call {self.call_id}"


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
