"""Webhooks out, the subscriptions and the outbox: an event is queued in
the transaction of the change it tells of. services.webhook_deliveries
sends it.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from ..models import (
    WEBHOOK_EVENTS,
    Call,
    Recording,
    WebhookDelivery,
    WebhookSubscription,
)

EVENT_NAMES = [name for name, _ in WEBHOOK_EVENTS]
RETRY_FOR = timedelta(hours=24)
# With no subscription at all (the usual case), each process looks again at
# most this often: the call path costs no query. Once there are some, they
# are read in the change's own transaction (one query a batch), so a
# subscription deleted or stopped a moment ago is never written to.
_NONE_FRESH_FOR = 5.0
_none_seen_at = -_NONE_FRESH_FOR


class InvalidSubscription(ValueError):
    """A URL, event name or secret a subscription cannot have."""


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def url_check(url: str) -> None:
    """Raises InvalidSubscription unless the URL is one httpx can POST to."""
    try:
        URLValidator(schemes=["http", "https"])(url)
        httpx.URL(url)
    except (ValidationError, httpx.InvalidURL):
        raise InvalidSubscription(
            f"not an http(s) URL httpx can reach: {url!r}"
        ) from None


def secret_check(secret: str) -> None:
    """Raises InvalidSubscription unless the Standard Webhooks library takes it."""
    try:
        Webhook(secret)
    except Exception as error:
        raise InvalidSubscription(
            f"the secret must be whsec_ and base64 ({error})"
        ) from None


def webhook_subscription_create(
    *, url: str, events: list[str], secret: str = "", description: str = ""
) -> WebhookSubscription:
    """A new receiver of these events; a secret is made when none is given."""
    unknown = sorted(set(events) - set(EVENT_NAMES))
    if not events or unknown:
        raise InvalidSubscription(
            f"unknown event(s) {', '.join(unknown) or '(none given)'}: "
            f"choose from {', '.join(EVENT_NAMES)}"
        )
    url_check(url)
    secret = secret or new_secret()
    secret_check(secret)
    subscription = WebhookSubscription.objects.create(
        url=url,
        events=list(dict.fromkeys(events)),
        secret=secret,
        description=description,
    )
    forget_subscriptions()
    return subscription


def forget_subscriptions() -> None:
    """Look for subscriptions afresh next time (one was added here)."""
    global _none_seen_at
    _none_seen_at = -_NONE_FRESH_FOR


def _active_subscriptions() -> list[WebhookSubscription]:
    global _none_seen_at
    if time.monotonic() - _none_seen_at < _NONE_FRESH_FOR:
        return []
    subscriptions = list(WebhookSubscription.objects.filter(active=True))
    if not subscriptions:
        _none_seen_at = time.monotonic()
    return subscriptions


@transaction.atomic
def webhook_subscription_stop(*, subscription: WebhookSubscription, why: str) -> None:
    """No more events for it: what it had queued is cancelled too."""
    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        active=False, disabled_reason=why[:200]
    )
    subscription.active, subscription.disabled_reason = False, why[:200]
    subscription.deliveries.filter(state=WebhookDelivery.State.PENDING).update(
        state=WebhookDelivery.State.CANCELLED, leased_until=None
    )


def _link(path: str) -> str:
    return f"{settings.PUBLIC_URL}{path}"


def _call_data(call: Call) -> dict[str, Any]:
    return {
        "id": call.pk,
        "uuid": call.uuid,
        "conversation_uuid": call.conversation_uuid,
        "from_number": call.from_number,
        "to_number": call.to_number,
        "direction": call.direction,
        "status": call.status,
        "started_at": call.started_at.isoformat(),
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "duration_seconds": call.duration_seconds,
        "legal_hold": call.legal_hold,
        "url": _link(reverse("api:call", args=[call.pk])),
        "page_url": _link(call.get_absolute_url()),
    }


def _recording_data(recording: Recording) -> dict[str, Any]:
    return {
        "id": recording.pk,
        "started_at": recording.started_at.isoformat(),
        "ended_at": recording.ended_at.isoformat(),
        "duration_seconds": recording.duration_seconds,
        "format": recording.format,
        "size_bytes": recording.size_bytes,
        "pcm_sha256": recording.pcm_sha256,
        "url": _link(reverse("api:recording", args=[recording.pk])),
        "audio_url": _link(reverse("api:recording_audio", args=[recording.pk])),
    }


def webhook_event_queue(
    *,
    event: str,
    call: Call,
    recording: Recording | None = None,
    extra: dict[str, Any] | None = None,
) -> int:
    """Queue the event for each subscription that wants it, in the caller's
    transaction: it is sent if, and only if, the change commits."""
    return webhook_events_queue(events=[(event, call, recording, extra)])


def webhook_events_queue(
    *,
    events: list[tuple[str, Call, Recording | None, dict[str, Any] | None]],
) -> int:
    """Queue several events (a batch of webhooks' calls) with one INSERT."""
    subscriptions = _active_subscriptions() if events else []
    if not subscriptions:
        return 0
    now = timezone.now()
    deliveries = []
    for event, call, recording, extra in events:
        data: dict[str, Any] = {"call": _call_data(call)}
        if recording is not None:
            data["recording"] = _recording_data(recording)
        data.update(extra or {})
        payload = {"type": event, "timestamp": now.isoformat(), "data": data}
        deliveries += [
            WebhookDelivery(
                subscription=subscription,
                message_id=f"msg_{uuid.uuid4().hex}",
                event=event,
                payload=payload,
                call_id=call.pk,
                created_at=now,
                next_attempt_at=now,
                give_up_at=now + RETRY_FOR,
            )
            for subscription in subscriptions
            if event in subscription.events
        ]
    WebhookDelivery.objects.bulk_create(deliveries)
    return len(deliveries)
