"""The app's tables, one module per concern; import them from here."""

from .access import GENESIS_HASH, AccessLogEntry, AccessLogQuerySet, UsedToken
from .api import ApiToken
from .calls import Call, CallEvent, Line
from .recordings import LiveSocket, LiveSocketQuerySet, Recording, recording_upload_to
from .webhooks import (
    WEBHOOK_EVENTS,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)

__all__ = [
    "GENESIS_HASH",
    "AccessLogEntry",
    "AccessLogQuerySet",
    "ApiToken",
    "Call",
    "CallEvent",
    "Line",
    "LiveSocket",
    "LiveSocketQuerySet",
    "Recording",
    "UsedToken",
    "WEBHOOK_EVENTS",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
    "recording_upload_to",
]
