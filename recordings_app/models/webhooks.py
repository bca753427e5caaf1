from __future__ import annotations

from django.db import models
from django.utils import timezone

# What a subscription may ask for; each is sent with the ids, numbers, times
# and API links of its call (and recording).
WEBHOOK_EVENTS = [
    ("call.started", "a call started (its answer webhook came)"),
    ("call.completed", "a call completed"),
    ("recording.ready", "a recording is stored"),
    ("recording.failed", "a recording could not be stored"),
    ("recording.deleted", "a recording was deleted (by staff, the API or a purge)"),
    ("legal_hold.changed", "a call was placed on or released from legal hold"),
]


class WebhookSubscription(models.Model):
    """A receiver of events: its URL, which events, the secret they are signed with."""

    url = models.URLField(max_length=500)
    events = models.JSONField(help_text="Event names, e.g. ['recording.ready'].")
    secret = models.CharField(
        max_length=100,
        help_text="whsec_ and base64: the receiver verifies signatures with it.",
    )
    description = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(
        max_length=200, blank=True, help_text="Why it stopped, e.g. the receiver's 410."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.url} ({', '.join(self.events)})"


class WebhookDelivery(models.Model):
    """One event for one subscription: the outbox row, written in the same
    transaction as the change it tells of, then sent (and retried) by
    manage.py deliver_webhooks."""

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed", "failed (gave up)"
        CANCELLED = "cancelled", "cancelled (subscription ended)"

    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    message_id = models.CharField(max_length=40, unique=True)  # webhook-id
    event = models.CharField(max_length=40, choices=WEBHOOK_EVENTS)
    payload = models.JSONField()
    # Deliveries of one call go to a receiver in order: one at a time.
    call_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    state = models.CharField(
        max_length=10, choices=State, default=State.PENDING, db_index=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    give_up_at = models.DateTimeField(help_text="Retried until then (24 h).")
    # A worker sending it holds it until then; a worker that died lets go.
    leased_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event} to {self.subscription.url} ({self.state})"


class WebhookAttempt(models.Model):
    """One try at sending a delivery, and what the receiver answered."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.status_code or self.error} at {self.at:%H:%M:%S}"
