"""Vonage's webhooks: the answer (an NCCO) and the call events."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

from asgiref.sync import SyncToAsync, sync_to_async
from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .. import metrics, signatures, vonage
from ..addresses import UNSIGNED_REFUSED, arrived_forwarded, unsigned_allowed_from
from ..page_middleware import skips_page_middleware
from ..services import access, calls
from ..sockets import AUDIO_SOCKET_PATH

logger = logging.getLogger(__name__)


class BadWebhookBody(ValueError):
    pass


def _unauthorized(reason: str) -> HttpResponse:
    logger.warning("webhook refused (401): %s", reason)
    return HttpResponse(
        f"Unauthorized: {reason}\n",
        status=401,
        content_type="text/plain",
        headers={"WWW-Authenticate": 'Bearer realm="vonage"'},
    )


def _signature_refusal(request: HttpRequest) -> tuple[HttpResponse | None, dict]:
    """A 401 for a request Vonage did not sign (or, unsigned, did not send
    from an allowed address); else the token's claims (none when unsigned)."""
    secret = settings.VONAGE_SIGNATURE_SECRET
    if not secret:
        if unsigned_allowed_from(
            peer=request.META.get("REMOTE_ADDR"), forwarded=arrived_forwarded(request)
        ):
            return None, {}
        return _unauthorized(UNSIGNED_REFUSED), {}
    try:
        claims = signatures.verify_vonage_jwt(
            signatures.bearer_token(request.headers.get("Authorization")),
            secret=secret,
            max_age=settings.VONAGE_SIGNATURE_MAX_AGE,
        )
        signatures.check_payload_hash(
            claims,
            signatures.payload_hashes(
                method=request.method, body=request.body, query=request.GET.items()
            ),
        )
    except signatures.SignatureError as error:
        return _unauthorized(str(error)), {}
    return None, claims


REPLAY = "the token was used before: a replay"
# The most webhooks one transaction writes: a burst's batch stays short.
WEBHOOKS_PER_TRANSACTION = 64
# How long an event waits for others to share its transaction. A batch's
# cost (begin, token, lookups, inserts, commit: ~3 ms of CPU on
# PostgreSQL) hardly depends on how many webhooks it holds; at 40 calls a
# second batches grew from 3 to 8 webhooks with this wait, and the
# database thread's CPU per webhook fell from 1.1 to 0.6 ms (bench/cps.py,
# issue 16). Vonage waits seconds for an event's 200; an answer never waits.
EVENTS_GATHER_SECONDS = 0.02

# A webhook to write: its token's key ("" when unsigned) and what it says.
Job = tuple[str, vonage.AnswerRequest | vonage.CallEventData]


def _token_key(claims: dict) -> str:
    return f"jwt:{claims['jti']}" if claims else ""


def _token_lifetime() -> float:
    return settings.VONAGE_SIGNATURE_MAX_AGE + signatures.CLOCK_SKEW_SECONDS


def _write_together(jobs: list[Job]) -> list[bool]:
    """Several webhooks in one transaction, their tokens spent with their
    writes (one INSERT): True for each written, False for a replay."""
    with transaction.atomic():
        fresh = access.tokens_use_each(
            valid_for={token: _token_lifetime() for token, _ in jobs if token}
        )
        written = []
        for token, _ in jobs:
            written.append(not token or token in fresh)
            fresh.discard(token)  # twice in one batch: a replay
        calls.calls_record(
            messages=[
                message
                for (_, message), is_written in zip(jobs, written, strict=True)
                if is_written
            ]
        )
        return written


def _write_alone(job: Job) -> bool:
    """One webhook in its own transaction; once more if a concurrent worker
    made its call just now (then this one finds it)."""
    try:
        return _write_together([job])[0]
    except IntegrityError:
        return _write_together([job])[0]


def _connection_checked(write: Callable) -> Callable:
    """As Channels' database_sync_to_async: a broken or expired connection
    of the database thread is dropped before and after the writes; but none
    inside a transaction (a test's: the test client writes on its thread)."""

    @functools.wraps(write)
    def checked(*args):
        if not connection.in_atomic_block:
            close_old_connections()
        try:
            return write(*args)
        finally:
            if not connection.in_atomic_block:
                close_old_connections()

    return sync_to_async(checked, thread_sensitive=True)


_write_alone_in_thread = _connection_checked(_write_alone)
_write_together_in_thread = _connection_checked(_write_together)


class _GroupCommit:
    """Webhooks that arrive while a transaction is being written go together
    into the next one: a burst of calls costs a database hop and a commit
    per batch, not per request, and each request is still answered only
    once its own writes are committed. Batches are written one at a time,
    in arrival order (a call's events keep their order, and two batches
    cannot deadlock), answers first: Vonage drops a call whose answer takes
    5 s, while an event can wait. An answer is written at once; events
    wait up to EVENTS_GATHER_SECONDS for company (other events, or an
    answer to go with), since a transaction's cost is mostly the same
    whatever it holds. A batch that fails (a database error) is written
    again one request at a time, so a request fails alone. Requests are
    parsed before they get here: a bad body is refused (400) and never
    joins a batch.
    """

    def __init__(self) -> None:
        self._answers: list[tuple[Job, asyncio.Future]] = []
        self._events: list[tuple[Job, asyncio.Future]] = []
        self._writer: asyncio.Future | None = None
        self._gathering: asyncio.Event | None = None  # set: write now

    async def write(self, job: Job, *, urgent: bool) -> bool:
        """Written (True) or a replay (False), once committed."""
        answered = asyncio.get_running_loop().create_future()
        (self._answers if urgent else self._events).append((job, answered))
        if self._gathering is not None and (
            urgent or len(self._events) >= WEBHOOKS_PER_TRANSACTION
        ):
            self._gathering.set()
        if self._writer is None:
            # Not in this request's ThreadSensitiveContext: the writer
            # outlives the request, and its context's thread with it. Then
            # the writes go to the process's database thread (or, under the
            # test client, to the test's own thread).
            context = contextvars.copy_context()
            context.run(SyncToAsync.thread_sensitive_context.set, None)
            self._writer = asyncio.get_running_loop().create_task(
                self._write_waiting(), context=context
            )
        return await answered

    def _next_batch(self) -> list[tuple[Job, asyncio.Future]]:
        batch = self._answers[:WEBHOOKS_PER_TRANSACTION]
        del self._answers[:WEBHOOKS_PER_TRANSACTION]
        room = WEBHOOKS_PER_TRANSACTION - len(batch)
        batch += self._events[:room]
        del self._events[:room]
        return batch

    async def _gather_events(self) -> None:
        """Give the events waiting a moment for company, unless an answer
        is waiting or a batch is full: then there is no reason to wait."""
        if self._answers or len(self._events) >= WEBHOOKS_PER_TRANSACTION:
            return
        self._gathering = asyncio.Event()
        try:
            await asyncio.wait_for(self._gathering.wait(), EVENTS_GATHER_SECONDS)
        except TimeoutError:
            pass
        finally:
            self._gathering = None

    async def _write_waiting(self) -> None:
        try:
            while self._answers or self._events:
                await self._gather_events()
                batch = self._next_batch()
                try:
                    outcomes = await self._outcomes([job for job, _ in batch])
                except BaseException as error:  # cancelled: the server stops
                    for _, answered in batch:
                        if not answered.done():
                            answered.set_exception(error)
                    raise
                for (_, answered), outcome in zip(batch, outcomes, strict=True):
                    if answered.done():  # the client went away
                        continue
                    if isinstance(outcome, Exception):
                        answered.set_exception(outcome)
                    else:
                        answered.set_result(outcome)
        finally:
            self._writer = None

    @staticmethod
    async def _outcomes(jobs: list[Job]) -> list[bool | Exception]:
        if len(jobs) > 1:
            try:
                return await _write_together_in_thread(jobs)
            except Exception:  # noqa: BLE001 - each is written again alone
                pass
        outcomes: list[bool | Exception] = []
        for job in jobs:
            try:
                outcomes.append(await _write_alone_in_thread(job))
            except Exception as error:  # noqa: BLE001 - that request's 500
                outcomes.append(error)
        return outcomes


_group_commits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _GroupCommit] = (
    weakref.WeakKeyDictionary()
)


def _group_commit() -> _GroupCommit:
    """This event loop's group commit (a test's requests may each have a loop)."""
    loop = asyncio.get_running_loop()
    group_commit = _group_commits.get(loop)
    if group_commit is None:
        group_commit = _group_commits[loop] = _GroupCommit()
    return group_commit


def vonage_webhook(view: Callable) -> Callable:
    """Only Vonage gets in: with VONAGE_SIGNATURE_SECRET set, check the signed JWT.

    The view gets the token's key ("" when unsigned), to spend in the same
    transaction as its writes (_GroupCommit.write), so a replay is refused
    and a request that fails leaves nothing behind. The view is async: the
    signature is checked and the body parsed on the event loop, the writes
    go to a database thread with the other webhooks of the moment, and the
    pages' sessions, CSRF and sign-in steps are skipped
    (skips_page_middleware): a webhook has no use for them.
    """

    @csrf_exempt
    @require_http_methods(["GET", "POST"])
    @functools.wraps(view)
    async def wrapper(request: HttpRequest) -> HttpResponse:
        refusal, claims = _signature_refusal(request)
        if refusal is not None:
            return refusal
        return await view(request, token=_token_key(claims))

    return skips_page_middleware(wrapper)


def _answer_counted(view: Callable) -> Callable:
    """Each NCCO given is a call set up, and its time goes to the answer
    latency histogram (refusals are not answers)."""

    @functools.wraps(view)  # the marks too: skips_page_middleware, csrf_exempt
    async def counted(request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = await view(request)
        if response.status_code == 200:
            metrics.ANSWER_LATENCY.observe(time.perf_counter() - started)
            metrics.CALLS_SET_UP.inc()
        return response

    return counted


def _webhook_params(request: HttpRequest) -> dict[str, Any]:
    """Vonage sends GET query strings or POST JSON; accept a form post too."""
    if request.method == "GET":
        return request.GET.dict()
    if request.content_type == "application/x-www-form-urlencoded":
        return request.POST.dict()
    try:
        body = vonage.loads_json(request.body or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise BadWebhookBody(f"the body is not valid JSON ({error})") from None
    if not isinstance(body, dict):
        raise BadWebhookBody("the body must be a JSON object")
    return body


def _public_base_url(request: HttpRequest) -> str:
    """PUBLIC_URL, else this request's own scheme and host (proxy headers included)."""
    return settings.PUBLIC_URL or request.build_absolute_uri("/").rstrip("/")


@_answer_counted
@vonage_webhook
async def answer_webhook(request: HttpRequest, *, token: str) -> HttpResponse:
    """Vonage asks what to do with a new call: greet, then stream it to our socket."""
    try:
        answer = vonage.parse_answer(_webhook_params(request))
    except (BadWebhookBody, vonage.InvalidWebhook) as error:
        logger.warning("answer webhook refused: %s", error)
        return HttpResponseBadRequest(f"Bad answer webhook: {error}\n")
    # Written before the events waiting: Vonage drops a call whose answer
    # takes 5 s, while an event can wait.
    if not await _group_commit().write((token, answer), urgent=True):
        return _unauthorized(REPLAY)
    base_url = _public_base_url(request)
    query = {
        "uuid": answer.uuid,
        "conversation_uuid": answer.conversation_uuid,
        "token": signatures.socket_token(
            call_uuid=answer.uuid, conversation_uuid=answer.conversation_uuid
        ),
    }
    ncco = vonage.build_ncco(
        greeting=settings.CALLRECORDER_GREETING,
        websocket_uri=vonage.websocket_uri(
            vonage.websocket_base_url(base_url), AUDIO_SOCKET_PATH, query
        ),
        sample_rate=settings.CALLRECORDER_SAMPLE_RATE,
        socket_headers={
            "call_uuid": answer.uuid,
            "conversation_uuid": answer.conversation_uuid,
        },
        from_number=answer.to_number,
        event_url=base_url + reverse("recordings:event_webhook"),
        vonage_signed_socket=bool(settings.VONAGE_SIGNATURE_SECRET),
    )
    return JsonResponse(ncco, safe=False)


@vonage_webhook
async def event_webhook(request: HttpRequest, *, token: str) -> HttpResponse:
    """Store a call event; a repeated delivery is answered 200 and changes nothing."""
    try:
        event = vonage.parse_event(_webhook_params(request))
    except (BadWebhookBody, vonage.InvalidWebhook) as error:
        logger.warning("event webhook refused: %s", error)
        return HttpResponseBadRequest(f"Bad event webhook: {error}\n")
    if not await _group_commit().write((token, event), urgent=False):
        return _unauthorized(REPLAY)
    return HttpResponse(status=200)
