"""Webhooks out, the sending: due deliveries claimed by a worker, signed as
Standard Webhooks says, and retried with backoff until delivered or a day
has gone (services.webhooks queues them).

Receivers may see an event twice (a worker that died mid-send sends it
again): its `webhook-id` is the same, so they can tell.
"""

from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from ..models import WebhookAttempt, WebhookDelivery
from .webhooks import RETRY_FOR, webhook_subscription_stop

# Seconds before the nth retry: doubling from 5 s, at most 10 min, each
# drawn between half and all of that (jitter: a receiver back up is not
# hit by every delivery at the same moment).
_FIRST_RETRY_SECONDS = 5.0
_LONGEST_RETRY_SECONDS = 600.0
_EXCERPT = 500


@dataclass(frozen=True)
class Answer:
    """What a receiver answered one attempt (or why there was no answer)."""

    status_code: int | None
    error: str = ""
    excerpt: str = ""
    duration_ms: int = 0


def signed_request(delivery: WebhookDelivery, *, at: datetime) -> tuple[bytes, dict]:
    """The body and the Standard Webhooks headers of one attempt."""
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    signature = Webhook(delivery.subscription.secret).sign(
        delivery.message_id, at, body
    )
    return body, {
        "content-type": "application/json",
        "user-agent": "callrecorder-webhooks/1",
        "accept-encoding": "identity",  # the excerpt is bytes as sent, capped
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


@transaction.atomic
def webhook_deliveries_claim(
    *, limit: int = 20, lease_seconds: float = 60.0
) -> list[WebhookDelivery]:
    """Deliveries due now, each held by this worker for lease_seconds.

    Only the oldest pending delivery of a call (per subscription) is due, so
    a receiver gets a call's events in order; another worker skips the rows
    held here (PostgreSQL), and a worker that died lets go at its lease's end.
    """
    now = timezone.now()
    earlier = WebhookDelivery.objects.filter(
        subscription=OuterRef("subscription"),
        call_id=OuterRef("call_id"),
        state=WebhookDelivery.State.PENDING,
        id__lt=OuterRef("id"),
    )
    due = (
        WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("subscription")
        .filter(state=WebhookDelivery.State.PENDING, next_attempt_at__lte=now)
        .filter(subscription__active=True)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
        .exclude(Exists(earlier))
        .order_by("id")[:limit]
    )
    claimed = list(due)
    until = now + timedelta(seconds=lease_seconds)
    WebhookDelivery.objects.filter(pk__in=[d.pk for d in claimed]).update(
        leased_until=until
    )
    for delivery in claimed:
        delivery.leased_until = until  # this worker's hold, checked on record
    return claimed


def retry_delay(attempts: int) -> float:
    """Seconds before the next try, after `attempts` failed ones."""
    ceiling = min(_LONGEST_RETRY_SECONDS, _FIRST_RETRY_SECONDS * 2 ** (attempts - 1))
    return random.uniform(ceiling / 2, ceiling)


@transaction.atomic
def webhook_attempt_record(*, delivery: WebhookDelivery, answer: Answer) -> str:
    """Log the attempt and move the delivery on: delivered on a 2xx; the
    subscription ended on a 410 (its pending deliveries cancelled); else a
    retry later, or failed once its day is over. Returns the new state.

    Only the worker still holding the delivery moves it on: one whose hold
    ran out (another worker took it), or whose subscription ended since,
    only logs what it saw.
    """
    now = timezone.now()
    WebhookAttempt.objects.create(
        delivery=delivery,
        at=now,
        status_code=answer.status_code,
        error=_text(answer.error, 300),
        response_excerpt=_text(answer.excerpt, _EXCERPT),
        duration_ms=answer.duration_ms,
    )
    current = (
        WebhookDelivery.objects.select_for_update()
        .select_related("subscription")
        .get(pk=delivery.pk)
    )
    if (
        current.state != WebhookDelivery.State.PENDING
        or current.leased_until != delivery.leased_until
        or not current.subscription.active
    ):
        return current.state
    current.attempts += 1
    current.leased_until = None
    code = answer.status_code
    if code is not None and 200 <= code < 300:
        current.state, current.delivered_at = WebhookDelivery.State.DELIVERED, now
    elif code == 410:
        webhook_subscription_stop(
            subscription=current.subscription,
            why=f"the receiver answered 410 at {now:%Y-%m-%d %H:%M}",
        )
        current.state = WebhookDelivery.State.CANCELLED
    elif now >= current.give_up_at:
        current.state = WebhookDelivery.State.FAILED
    else:
        current.next_attempt_at = now + timedelta(seconds=retry_delay(current.attempts))
    current.save(
        update_fields=[
            "attempts",
            "leased_until",
            "state",
            "delivered_at",
            "next_attempt_at",
        ]
    )
    return current.state


def _text(text: str, length: int) -> str:
    """What a receiver said, as the database can keep it (no NUL)."""
    return text.replace("\x00", "\ufffd")[:length]


@transaction.atomic
def webhook_redeliver(*, delivery: WebhookDelivery) -> None:
    """Send it again now, and retry it for another day if need be."""
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        state=WebhookDelivery.State.PENDING,
        next_attempt_at=now,
        give_up_at=now + RETRY_FOR,
        leased_until=None,
    )


def webhook_send(delivery: WebhookDelivery, *, timeout: float) -> Answer:
    """One signed POST, over within 2 x timeout however the receiver
    dribbles; the first 500 bytes of the answer are kept. Never raises:
    whatever goes wrong is the attempt's error."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        body, headers = signed_request(delivery, at=timezone.now())
        with httpx.stream(
            "POST",
            delivery.subscription.url,
            content=body,
            headers=headers,
            timeout=timeout,
            follow_redirects=False,
        ) as response:
            excerpt = b""
            for piece in response.iter_raw():
                excerpt += piece
                if len(excerpt) >= _EXCERPT or time.monotonic() - started > 2 * timeout:
                    break
    except Exception as error:  # noqa: BLE001 - a bad URL, the network, the receiver
        return Answer(
            None, error=f"{type(error).__name__}: {error}", duration_ms=took()
        )
    return Answer(
        response.status_code,
        excerpt=excerpt[:_EXCERPT].decode(errors="replace"),
        duration_ms=took(),
    )


def webhooks_deliver_due(*, limit: int = 10, timeout: float = 10.0) -> int:
    """Send what is due now, side by side; each answer is recorded as it
    comes (a slow receiver holds up no other). Returns how many were tried."""
    claimed = webhook_deliveries_claim(limit=limit, lease_seconds=3 * timeout + 10)
    if not claimed:
        return 0
    with ThreadPoolExecutor(max_workers=len(claimed)) as senders:
        sending = {
            senders.submit(webhook_send, delivery, timeout=timeout): delivery
            for delivery in claimed
        }
        for sent in as_completed(sending):
            webhook_attempt_record(delivery=sending[sent], answer=sent.result())
    return len(claimed)
