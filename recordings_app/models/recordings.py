"""Recordings: the stored audio of a call, and the sockets recording right now."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models.functions import Now
from django.urls import reverse
from django.utils import timezone

from ..audio.figures import RecordingFigures
from .calls import Call


def recording_upload_to(recording: Recording, filename: str) -> str:
    """recordings/2026/11/25/<spool file name>: dated folders, unique names."""
    return f"recordings/{timezone.now():%Y/%m/%d}/{filename}"


class Recording(models.Model):
    """The audio of one socket connection of a call, stored as WAV, FLAC or Opus.

    With encryption on, the file is sealed (audio.sealing) under a data key
    of its own, kept here wrapped: deleting the row destroys the only key.
    """

    class Format(models.TextChoices):
        WAV = "wav", "WAV"
        FLAC = "flac", "FLAC (lossless)"
        OPUS = "opus", "Opus (lossy)"

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
    size_bytes = models.PositiveBigIntegerField(
        "size", help_text="Of the file as a download gives it (before sealing)."
    )
    odd_byte_carries = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(
        "SHA-256",
        max_length=64,
        blank=True,
        help_text="Of the file as a download gives it (before sealing).",
    )
    pcm_sha256 = models.CharField(
        "PCM SHA-256",
        max_length=64,
        blank=True,
        help_text="Of the 16-bit audio as recorded: the same in WAV and FLAC.",
    )
    format = models.CharField(max_length=4, choices=Format, default=Format.WAV)
    key_id = models.CharField(
        max_length=40,
        blank=True,
        help_text="The key wrapping its data key; blank: not sealed.",
    )
    wrapped_key = models.CharField(max_length=80, blank=True)
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
        """Always a WAV of the recorded PCM, whatever the stored format."""
        return reverse("recordings:recording_download", args=[self.pk])

    def get_original_url(self) -> str:
        """The stored file itself (FLAC or Opus), opened if sealed."""
        return reverse("recordings:recording_original", args=[self.pk])

    @property
    def sealed(self) -> bool:
        return bool(self.key_id)

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
