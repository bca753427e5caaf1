"""Calls and what Vonage says of them: the answer, events, the socket's call.

Every write is one transaction; a repeated delivery (Vonage retries)
changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ..models import Call, CallEvent, LiveSocket
from ..vonage import (
    DIGITS_HIDDEN_MASKED,
    DIGITS_HIDDEN_PAUSED,
    FINAL_STATUSES,
    STATUS_RANK,
    AnswerRequest,
    CallEventData,
    event_payload_to_keep,
    socket_event_to_keep,
)
from . import live_sockets


def _call_locked(*, conversation_uuid: str, leg_uuid: str) -> Call:
    """Find the call a message names, creating it if this is the first word of it.

    Joins legs on conversation_uuid first; an event that only names its leg
    is matched to the caller's leg or to a leg seen in an earlier event.
    """
    lookups = []
    if conversation_uuid:
        lookups.append(Q(conversation_uuid=conversation_uuid))
    if leg_uuid:
        lookups.append(Q(uuid=leg_uuid))
        lookups.append(Q(events__leg_uuid=leg_uuid))
    for lookup in lookups:
        # [:1], not first(): no ORDER BY to build and sort (one row matches).
        for call in Call.objects.select_for_update().filter(lookup)[:1]:
            return call
    try:
        with transaction.atomic():
            return Call.objects.create(conversation_uuid=conversation_uuid or None)
    except IntegrityError:  # created by a concurrent request just now
        return Call.objects.select_for_update().get(conversation_uuid=conversation_uuid)


def _claim_caller_leg(call: Call, leg_uuid: str) -> None:
    if leg_uuid and not call.uuid and not Call.objects.filter(uuid=leg_uuid).exists():
        call.uuid = leg_uuid


def _digits_hidden(*, paused: bool) -> str:
    """Why a key press must not be kept with its key, or "" to keep it."""
    if settings.CALLRECORDER_DTMF_DIGITS == "mask":
        return DIGITS_HIDDEN_MASKED
    return DIGITS_HIDDEN_PAUSED if paused else ""


def _advance_status(call: Call, status: str) -> None:
    if (
        STATUS_RANK.get(status, 0) >= STATUS_RANK.get(call.status, 0)
        and status in STATUS_RANK
    ):
        call.status = status


# savepoint=False: inside the webhook's own transaction (the token spent
# with the writes), a savepoint would cost two more statements per request.
@transaction.atomic(savepoint=False)
def call_answer(*, answer: AnswerRequest) -> Call:
    """Record a call Vonage is asking us to answer. Idempotent: Vonage retries."""
    call = _call_locked(
        conversation_uuid=answer.conversation_uuid, leg_uuid=answer.uuid
    )
    _claim_caller_leg(call, answer.uuid)
    call.from_number = call.from_number or answer.from_number
    call.to_number = call.to_number or answer.to_number
    _advance_status(call, "started")
    call.save()
    return call


@transaction.atomic(savepoint=False)
def call_event_record(*, event: CallEventData) -> tuple[CallEvent, bool]:
    """Store one event webhook on its call; a repeated delivery changes nothing.

    Only the caller's leg updates the call's numbers, direction and status:
    the socket leg's events are kept on the timeline, as they came.
    """
    call = _call_locked(
        conversation_uuid=event.conversation_uuid,
        leg_uuid="" if event.is_websocket_leg else event.leg_uuid,
    )
    payload = event.payload
    if "dtmf" in payload or "speech" in payload:  # an input: keys, words
        paused = LiveSocket.objects.filter(call=call, paused=True).exists()
        hide = _digits_hidden(paused=paused)
        payload = event_payload_to_keep(payload, hide_digits=hide)
    # The call's row is locked: no other delivery of this event can slip in
    # between the look and the insert (no get_or_create savepoint needed).
    for repeated in CallEvent.objects.filter(call=call, fingerprint=event.fingerprint)[
        :1
    ]:
        return repeated, False
    call_event = CallEvent.objects.create(
        call=call,
        fingerprint=event.fingerprint,
        source=CallEvent.Source.WEBHOOK,
        leg_uuid=event.leg_uuid,
        is_websocket_leg=event.is_websocket_leg,
        status=event.status,
        timestamp=event.timestamp or timezone.now(),
        payload=payload,
    )
    if event.is_websocket_leg:
        return call_event, True
    if event.conversation_uuid and not call.conversation_uuid:
        call.conversation_uuid = event.conversation_uuid
    _claim_caller_leg(call, event.leg_uuid)
    call.direction = event.direction or call.direction
    call.from_number = event.from_number or call.from_number
    call.to_number = event.to_number or call.to_number
    _advance_status(call, event.status)
    if event.start_time:
        call.started_at = event.start_time
    if event.end_time:
        call.ended_at = event.end_time
    elif event.status in FINAL_STATUSES and call.ended_at is None:
        call.ended_at = event.timestamp or timezone.now()
    if event.duration_seconds is not None:
        call.duration_seconds = event.duration_seconds
    call.save()
    return call_event, True


@transaction.atomic(savepoint=False)
def call_for_socket(*, call_uuid: str, conversation_uuid: str) -> Call:
    """The call an audio socket belongs to (created if no webhook named it yet)."""
    call = _call_locked(conversation_uuid=conversation_uuid, leg_uuid=call_uuid)
    _claim_caller_leg(call, call_uuid)
    if conversation_uuid and not call.conversation_uuid:
        call.conversation_uuid = conversation_uuid
    call.save()
    return call


@transaction.atomic
def call_socket_open(
    *,
    call_uuid: str,
    conversation_uuid: str,
    connected: dict[str, Any],
    fingerprint: str,
    live: dict[str, Any] | None,
) -> tuple[Call, LiveSocket | None]:
    """A socket said websocket:connected: its call, the message on the
    timeline and (live: the channel, spool name and rate) its live row.

    One transaction, one trip to the database thread, instead of three: a
    burst of calls opening at once waits on each of them.
    """
    call = call_for_socket(call_uuid=call_uuid, conversation_uuid=conversation_uuid)
    socket_event_record(
        call=call,
        event="websocket:connected",
        payload=connected,
        fingerprint=fingerprint,
    )
    live_socket = None
    if live is not None:
        live_socket = live_sockets.live_socket_open(call=call, **live)
    return call, live_socket


def socket_event_record(
    *,
    call: Call,
    event: str,
    payload: dict[str, Any],
    fingerprint: str,
    paused: bool = False,
) -> CallEvent:
    """Store a text message from the audio socket (DTMF and the like) on the call.

    paused: recording was paused when it came, so a key press is kept
    without its key (CALLRECORDER_DTMF_DIGITS=mask: always).
    """
    kept = socket_event_to_keep(
        event, payload, hide_digits=_digits_hidden(paused=paused)
    )
    call_event, _ = CallEvent.objects.get_or_create(
        call=call,
        fingerprint=fingerprint,
        defaults={
            "source": CallEvent.Source.SOCKET,
            "status": event,
            "payload": kept,
        },
    )
    return call_event
