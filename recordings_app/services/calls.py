"""Calls and what Vonage says of them: the answer, events, the socket's call.

Every write is one transaction; a repeated delivery (Vonage retries)
changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
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
from . import live_sockets, webhooks

# What a message may change on a call it finds (written back only if changed).
_CALL_FIELDS = (
    "conversation_uuid",
    "uuid",
    "from_number",
    "to_number",
    "direction",
    "status",
    "started_at",
    "ended_at",
    "duration_seconds",
)


class _CallsNamed:
    """The calls a set of messages names, locked, found with two or three
    queries for all of them rather than several per message, and kept up to
    date in memory as the messages change them, so each message finds what
    it would have found had the ones before it been written one by one.

    A message joins its call on conversation_uuid first; one that only
    names its leg is matched to the caller's leg, or to a leg seen in an
    earlier event. A call no message found is made (save() writes it).
    """

    def __init__(self, names: list[tuple[str, str]]) -> None:
        """names: each message's (conversation_uuid, leg_uuid), "" if absent."""
        self._by_conversation: dict[str, Call] = {}
        self._by_uuid: dict[str, Call] = {}
        self._by_event_leg: dict[str, Call] = {}
        self._loaded: dict[int, tuple] = {}  # pk -> its fields as read
        self.existing: dict[int, Call] = {}  # by pk: the calls found locked
        self._new: list[Call] = []
        conversations = {c for c, _ in names if c}
        legs = {leg for _, leg in names if leg}
        if conversations or legs:
            self._load(Q(conversation_uuid__in=conversations) | Q(uuid__in=legs))
        unmatched = {
            leg
            for conversation, leg in names
            if leg
            and conversation not in self._by_conversation
            and leg not in self._by_uuid
        }
        if unmatched:
            legs_seen = dict(
                CallEvent.objects.filter(leg_uuid__in=unmatched)
                .values_list("leg_uuid", "call_id")
                .distinct()
            )
            if legs_seen:
                self._load(Q(pk__in=set(legs_seen.values())))
                for leg, pk in legs_seen.items():
                    if pk in self.existing:  # not deleted since
                        self._by_event_leg[leg] = self.existing[pk]

    def _load(self, lookup: Q) -> None:
        # In pk order: two transactions locking the same calls cannot deadlock.
        for call in Call.objects.select_for_update().filter(lookup).order_by("pk"):
            if call.pk in self._loaded:
                continue
            self._loaded[call.pk] = self._fields(call)
            self.existing[call.pk] = call
            if call.conversation_uuid:
                self._by_conversation[call.conversation_uuid] = call
            if call.uuid:
                self._by_uuid[call.uuid] = call

    @staticmethod
    def _fields(call: Call) -> tuple:
        return tuple(getattr(call, name) for name in _CALL_FIELDS)

    def find(self, *, conversation_uuid: str, leg_uuid: str) -> Call:
        """The call a message names, made if this is the first word of it."""
        if conversation_uuid and conversation_uuid in self._by_conversation:
            return self._by_conversation[conversation_uuid]
        if leg_uuid:
            for known in (self._by_uuid, self._by_event_leg):
                if leg_uuid in known:
                    return known[leg_uuid]
        call = Call(conversation_uuid=conversation_uuid or None)
        self._new.append(call)
        if conversation_uuid:
            self._by_conversation[conversation_uuid] = call
        return call

    def claim_caller_leg(self, call: Call, leg_uuid: str) -> None:
        """The first leg a call hears of is its caller's, unless another
        call has it already."""
        if leg_uuid and not call.uuid and leg_uuid not in self._by_uuid:
            call.uuid = leg_uuid
            self._by_uuid[leg_uuid] = call

    def join_conversation(self, call: Call, conversation_uuid: str) -> None:
        if conversation_uuid and not call.conversation_uuid:
            call.conversation_uuid = conversation_uuid
            self._by_conversation[conversation_uuid] = call

    def saw_leg(self, call: Call, leg_uuid: str) -> None:
        """An event of this leg is stored on the call."""
        if leg_uuid:
            self._by_event_leg.setdefault(leg_uuid, call)

    def is_new(self, call: Call) -> bool:
        return call.pk is None

    def every(self) -> list[Call]:
        """The calls of this batch, new and existing."""
        return [*self.existing.values(), *self._new]

    def save(self) -> None:
        """Write the new calls (one INSERT) and each changed one (an UPDATE
        of what changed: cheaper to build than bulk_update's CASE per field
        and row, which costs more CPU than the round trips it saves)."""
        if self._new:
            Call.objects.bulk_create(self._new)
        updated_at = timezone.now()
        for pk, read in self._loaded.items():
            call = self.existing[pk]
            now = self._fields(call)
            if now == read:
                continue
            changes = {
                name: after
                for name, before, after in zip(_CALL_FIELDS, read, now, strict=True)
                if before != after
            }
            call.updated_at = updated_at
            Call.objects.filter(pk=pk).update(**changes, updated_at=updated_at)
            self._loaded[pk] = now
        self._new = []


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


def _message_names(message: AnswerRequest | CallEventData) -> tuple[str, str]:
    """The (conversation_uuid, leg_uuid) a message finds its call by."""
    if isinstance(message, AnswerRequest):
        return message.conversation_uuid, message.uuid
    # The socket leg's too: never the caller's, but seen in earlier events.
    return message.conversation_uuid, message.leg_uuid


# savepoint=False: inside the webhooks' own transaction (their tokens spent
# with the writes), a savepoint would cost two more statements.
@transaction.atomic(savepoint=False)
def calls_record(*, messages: list[AnswerRequest | CallEventData]) -> None:
    """Record answers and event webhooks, in order, as if one by one, but
    with a few statements for all of them: a burst of calls costs a handful
    of round trips per batch, not six to eight per webhook. Idempotent: a
    repeated delivery (Vonage retries) changes nothing.
    """
    calls = _CallsNamed([_message_names(message) for message in messages])
    # Events already stored (a retry), on the calls that existed before.
    fingerprints = {m.fingerprint for m in messages if isinstance(m, CallEventData)}
    seen = set()
    if fingerprints and calls.existing:
        for call_id, fingerprint in CallEvent.objects.filter(
            call_id__in=calls.existing, fingerprint__in=fingerprints
        ).values_list("call_id", "fingerprint"):
            seen.add((id(calls.existing[call_id]), fingerprint))
    events = []
    status_before = {id(call): call.status for call in calls.existing.values()}
    for message in messages:
        conversation_uuid, leg_uuid = _message_names(message)
        call = calls.find(conversation_uuid=conversation_uuid, leg_uuid=leg_uuid)
        if isinstance(message, AnswerRequest):
            _answer_apply(calls, call, message)
        elif (id(call), message.fingerprint) not in seen:
            seen.add((id(call), message.fingerprint))
            events.append(_event_apply(calls, call, message))
    touched = calls.every()
    calls.save()
    CallEvent.objects.bulk_create(events)
    announced = []
    for call in touched:
        before = status_before.get(id(call))
        if id(call) not in status_before:
            announced.append(("call.started", call, None, None))
        # Any end (completed, busy, failed...): the payload's status says which.
        if call.status in FINAL_STATUSES and before not in FINAL_STATUSES:
            announced.append(("call.completed", call, None, None))
    webhooks.webhook_events_queue(events=announced)


def _answer_apply(calls: _CallsNamed, call: Call, answer: AnswerRequest) -> None:
    calls.claim_caller_leg(call, answer.uuid)
    calls.join_conversation(call, answer.conversation_uuid)
    call.from_number = call.from_number or answer.from_number
    call.to_number = call.to_number or answer.to_number
    _advance_status(call, "started")


def _event_apply(calls: _CallsNamed, call: Call, event: CallEventData) -> CallEvent:
    """The event to store on its call; only the caller's leg updates the
    call's numbers, direction and status: the socket leg's events are kept
    on the timeline, as they came."""
    payload = event.payload
    if "dtmf" in payload or "speech" in payload:  # an input: keys, words
        paused = (
            not calls.is_new(call)
            and LiveSocket.objects.filter(call=call, paused=True).exists()
        )
        hide = _digits_hidden(paused=paused)
        payload = event_payload_to_keep(payload, hide_digits=hide)
    call_event = CallEvent(
        call=call,
        fingerprint=event.fingerprint,
        source=CallEvent.Source.WEBHOOK,
        leg_uuid=event.leg_uuid,
        is_websocket_leg=event.is_websocket_leg,
        status=event.status,
        timestamp=event.timestamp or timezone.now(),
        payload=payload,
    )
    calls.saw_leg(call, event.leg_uuid)
    if event.is_websocket_leg:
        return call_event
    calls.join_conversation(call, event.conversation_uuid)
    calls.claim_caller_leg(call, event.leg_uuid)
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
    return call_event


def _socket_call(*, call_uuid: str, conversation_uuid: str) -> Call:
    calls = _CallsNamed([(conversation_uuid, call_uuid)])
    call = calls.find(conversation_uuid=conversation_uuid, leg_uuid=call_uuid)
    calls.claim_caller_leg(call, call_uuid)
    calls.join_conversation(call, conversation_uuid)
    calls.save()
    return call


@transaction.atomic(savepoint=False)
def call_for_socket(*, call_uuid: str, conversation_uuid: str) -> Call:
    """The call an audio socket belongs to (created if no webhook named it yet)."""
    return _socket_call(call_uuid=call_uuid, conversation_uuid=conversation_uuid)


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
    call = _socket_call(call_uuid=call_uuid, conversation_uuid=conversation_uuid)
    # Its fingerprint names a socket that is new (a random id): nothing to
    # look for before the insert.
    _socket_event(
        call=call,
        event="websocket:connected",
        payload=connected,
        fingerprint=fingerprint,
    ).save()
    live_socket = None
    if live is not None:
        live_socket = live_sockets.live_socket_open(call=call, **live)
    return call, live_socket


def _socket_event(
    *,
    call: Call,
    event: str,
    payload: dict[str, Any],
    fingerprint: str,
    paused: bool = False,
) -> CallEvent:
    kept = socket_event_to_keep(
        event, payload, hide_digits=_digits_hidden(paused=paused)
    )
    return CallEvent(
        call=call,
        fingerprint=fingerprint,
        source=CallEvent.Source.SOCKET,
        status=event,
        payload=kept,
    )


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
    kept = _socket_event(
        call=call, event=event, payload=payload, fingerprint=fingerprint, paused=paused
    )
    call_event, _ = CallEvent.objects.get_or_create(
        call=call,
        fingerprint=fingerprint,
        defaults={
            "source": kept.source,
            "status": kept.status,
            "payload": kept.payload,
        },
    )
    return call_event
