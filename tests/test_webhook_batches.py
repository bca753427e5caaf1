"""Webhooks under a burst: they skip the pages' middleware and are written
in batches (one transaction for the webhooks of the moment), answers first,
each answered only once its own writes are committed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading

import pytest
from channels.testing import HttpCommunicator
from django.core.signals import request_started
from django.db import DatabaseError
from django.test import AsyncClient, RequestFactory
from django.urls import reverse

from recordings_app import vonage
from recordings_app.models import Call, CallEvent, UsedToken
from recordings_app.services import calls
from recordings_app.simulator.caller import vonage_jwt
from recordings_app.views import webhooks

SECRET = "a-signature-secret-of-32-characters"
CALL = {
    "from": "447700900123",
    "to": "447700900000",
    "uuid": "aaaaaaaa-1111-2222-3333-444444444444",
    "conversation_uuid": "CON-bbbbbbbb-1111-2222-3333-444444444444",
}


def signed_event(payload: dict, *, token: str | None = None):
    """A signed event webhook, as its view hands it to the writer."""
    body = json.dumps(payload).encode()
    token = token or vonage_jwt(SECRET, hashlib.sha256(body).hexdigest())
    request = RequestFactory().post(
        reverse("recordings:event_webhook"),
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    refusal, claims = webhooks._signature_refusal(request)
    assert refusal is None
    return (webhooks._token_key(claims), vonage.parse_event(payload)), token


@pytest.mark.django_db(transaction=True)
async def test_a_webhook_skips_the_pages_middleware_and_a_page_does_not():
    """No session, cookie or page headers for Vonage; the pages keep theirs."""
    client = AsyncClient()

    webhook = await client.post(
        reverse("recordings:event_webhook"),
        data=json.dumps({**CALL, "status": "started"}),
        content_type="application/json",
    )
    page = await client.get(reverse("recordings:call_list"))

    assert webhook.status_code == 200
    assert "Content-Security-Policy" not in webhook.headers
    assert "Vary" not in webhook.headers
    assert page.status_code == 302  # to sign in: the page's middleware ran
    assert "Content-Security-Policy" in page.headers
    assert page.headers["X-Frame-Options"] == "DENY"


@pytest.mark.django_db(transaction=True)
async def test_a_webhook_is_served_without_a_thread_of_its_own_and_a_page_with_one(
    settings,
):
    """Django's handler sends request_started through a thread started for
    that request; the server's handler spares Vonage's webhooks that (a
    burst is thousands of them) and keeps it for the pages, whose sync
    views need their connections checked."""
    from callrecorder.asgi import application

    settings.VONAGE_SIGNATURE_SECRET = SECRET
    body = json.dumps({**CALL, "status": "started"}).encode()
    token = vonage_jwt(SECRET, hashlib.sha256(body).hexdigest())
    started_on = []

    def note_thread(**kwargs):
        started_on.append(threading.get_ident())

    request_started.connect(note_thread)
    try:
        webhook = await HttpCommunicator(
            application,
            "POST",
            reverse("recordings:event_webhook"),
            body=body,
            headers=[
                (b"content-type", b"application/json"),
                (b"authorization", f"Bearer {token}".encode()),
            ],
        ).get_response()
        assert started_on == []
        page = await HttpCommunicator(
            application,
            "GET",
            reverse("recordings:call_list"),
            headers=[(b"host", b"testserver")],
        ).get_response()
    finally:
        request_started.disconnect(note_thread)

    assert webhook["status"] == 200
    assert await CallEvent.objects.filter(status="started").acount() == 1
    assert page["status"] == 302  # to sign in: the page's middleware ran
    assert len(started_on) == 1
    assert started_on[0] != threading.get_ident()  # in the page's own thread


@pytest.mark.django_db
def test_a_token_twice_in_one_batch_is_a_replay(settings):
    settings.VONAGE_SIGNATURE_SECRET = SECRET
    payload = {**CALL, "status": "ringing", "timestamp": "2026-12-04T10:00:00.000Z"}
    first, token = signed_event(payload)
    again, _ = signed_event(payload, token=token)

    assert webhooks._write_together([first, again]) == [True, False]
    assert CallEvent.objects.filter(status="ringing").count() == 1


@pytest.mark.django_db
def test_a_batch_that_fails_leaves_no_token_spent(settings, monkeypatch):
    """Its requests are written again one by one: Vonage's retry would find
    its token spent if the failed batch had kept it."""
    settings.VONAGE_SIGNATURE_SECRET = SECRET
    job, _ = signed_event({**CALL, "status": "ringing"})

    def database_fails(**_):
        Call.objects.create(conversation_uuid="CON-half-written")
        raise DatabaseError("the database went away")

    monkeypatch.setattr(calls, "calls_record", database_fails)
    with pytest.raises(DatabaseError):
        webhooks._write_together([job])

    assert not UsedToken.objects.exists()
    assert not Call.objects.exists()


@pytest.mark.django_db(transaction=True)
async def test_a_signed_request_with_a_bad_body_is_refused_and_spends_nothing(
    settings,
):
    settings.VONAGE_SIGNATURE_SECRET = SECRET
    body = json.dumps({"status": "ringing"}).encode()  # names no call
    token = vonage_jwt(SECRET, hashlib.sha256(body).hexdigest())

    response = await AsyncClient().post(
        reverse("recordings:event_webhook"),
        data=body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 400
    assert "names no call" in response.content.decode()
    assert not await UsedToken.objects.aexists()
    assert not await CallEvent.objects.aexists()


async def settle() -> None:
    """Let the tasks started so far run up to their next wait."""
    for _ in range(5):
        await asyncio.sleep(0)


class FakeWrites:
    """Stands in for the database thread: records each transaction's jobs."""

    def __init__(self, monkeypatch) -> None:
        self.batches: list[list[str]] = []
        self.first_may_finish = asyncio.Event()
        monkeypatch.setattr(webhooks, "_write_together_in_thread", self.together)
        monkeypatch.setattr(webhooks, "_write_alone_in_thread", self.alone)

    async def together(self, jobs):
        self.batches.append([name for _, name in jobs])
        if any(name.startswith("fails") for _, name in jobs):
            raise RuntimeError("a batch that fails")
        return [f"written {name}" for _, name in jobs]

    async def alone(self, job):
        _, name = job
        self.batches.append([name])
        await self.first_may_finish.wait()
        if name.startswith("fails"):
            raise RuntimeError(f"{name} failed")
        return f"written {name}"


async def test_requests_waiting_go_in_one_batch_answers_first(monkeypatch):
    writes = FakeWrites(monkeypatch)
    group_commit = webhooks._GroupCommit()

    first = asyncio.ensure_future(group_commit.write(("", "answer 1"), urgent=True))
    await settle()  # the writer takes answer 1 alone and waits on it
    later = [
        asyncio.ensure_future(group_commit.write(("", name), urgent=urgent))
        for name, urgent in [("event 2", False), ("event 3", False), ("answer", True)]
    ]
    await settle()
    writes.first_may_finish.set()

    assert await first == "written answer 1"
    assert await asyncio.gather(*later) == [
        "written event 2",
        "written event 3",
        "written answer",
    ]
    assert writes.batches == [["answer 1"], ["answer", "event 2", "event 3"]]


async def test_events_wait_a_moment_for_company_and_then_go_alone(monkeypatch):
    """A transaction costs about the same for one webhook or eight: an
    event waits EVENTS_GATHER_SECONDS for others before it is written."""
    writes = FakeWrites(monkeypatch)
    writes.first_may_finish.set()
    monkeypatch.setattr(webhooks, "EVENTS_GATHER_SECONDS", 0.2)
    group_commit = webhooks._GroupCommit()
    began = asyncio.get_running_loop().time()

    first = asyncio.ensure_future(group_commit.write(("", "event 1"), urgent=False))
    await asyncio.sleep(0.05)
    second = asyncio.ensure_future(group_commit.write(("", "event 2"), urgent=False))
    await settle()
    assert writes.batches == []  # still gathering
    written = await asyncio.gather(first, second)

    assert written == ["written event 1", "written event 2"]
    assert writes.batches == [["event 1", "event 2"]]
    assert asyncio.get_running_loop().time() - began >= 0.2


async def test_an_answer_never_waits_and_takes_the_gathering_events_along(
    monkeypatch,
):
    writes = FakeWrites(monkeypatch)
    writes.first_may_finish.set()
    monkeypatch.setattr(webhooks, "EVENTS_GATHER_SECONDS", 60)
    group_commit = webhooks._GroupCommit()

    events = [
        asyncio.ensure_future(group_commit.write(("", name), urgent=False))
        for name in ("event 1", "event 2")
    ]
    await settle()
    answer = await asyncio.wait_for(
        group_commit.write(("", "answer"), urgent=True), timeout=5
    )

    assert answer == "written answer"
    assert await asyncio.gather(*events) == ["written event 1", "written event 2"]
    assert writes.batches == [["answer", "event 1", "event 2"]]
    # Alone, an answer waits for nobody either.
    assert await asyncio.wait_for(
        group_commit.write(("", "answer 2"), urgent=True), timeout=5
    ) == ("written answer 2")


async def test_a_full_batch_of_events_is_written_without_waiting(monkeypatch):
    writes = FakeWrites(monkeypatch)
    monkeypatch.setattr(webhooks, "EVENTS_GATHER_SECONDS", 60)
    group_commit = webhooks._GroupCommit()
    names = [f"event {n}" for n in range(webhooks.WEBHOOKS_PER_TRANSACTION)]

    first = asyncio.ensure_future(group_commit.write(("", names[0]), urgent=False))
    await settle()  # gathering
    rest = [group_commit.write(("", n), urgent=False) for n in names[1:]]
    written = await asyncio.wait_for(asyncio.gather(first, *rest), timeout=5)

    assert written == [f"written {n}" for n in names]
    assert writes.batches == [names]


async def test_a_batch_that_fails_is_written_one_by_one_and_one_fails_alone(
    monkeypatch,
):
    writes = FakeWrites(monkeypatch)
    writes.first_may_finish.set()
    group_commit = webhooks._GroupCommit()
    group_commit._writer = asyncio.get_running_loop().create_future()  # busy

    jobs = [
        asyncio.ensure_future(group_commit.write(("", name), urgent=False))
        for name in ("event 1", "fails 2", "event 3")
    ]
    await settle()
    group_commit._writer = None
    last = asyncio.ensure_future(group_commit.write(("", "event 4"), urgent=False))
    outcomes = await asyncio.gather(*jobs, last, return_exceptions=True)

    assert outcomes[0] == "written event 1"
    assert isinstance(outcomes[1], RuntimeError)
    assert str(outcomes[1]) == "fails 2 failed"
    assert outcomes[2:] == ["written event 3", "written event 4"]
    assert writes.batches[0] == ["event 1", "fails 2", "event 3", "event 4"]
    assert writes.batches[1:] == [["event 1"], ["fails 2"], ["event 3"], ["event 4"]]


@pytest.mark.django_db(transaction=True)
async def test_a_burst_of_signed_events_is_stored_whole_and_in_order(settings):
    """Through the real server path: 30 signed events of one call at once."""
    settings.VONAGE_SIGNATURE_SECRET = SECRET
    client = AsyncClient()
    statuses = ["started", "ringing", "answered"] + [f"note {n}" for n in range(27)]

    async def post(status: str):
        body = json.dumps({**CALL, "status": status}).encode()
        token = vonage_jwt(SECRET, hashlib.sha256(body).hexdigest())
        return await client.post(
            reverse("recordings:event_webhook"),
            data=body,
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )

    responses = await asyncio.gather(*(post(status) for status in statuses))

    assert [r.status_code for r in responses] == [200] * len(statuses)
    call = await Call.objects.aget(conversation_uuid=CALL["conversation_uuid"])
    stored = [e.status async for e in CallEvent.objects.filter(call=call)]
    assert sorted(stored) == sorted(statuses)
    assert call.status == "answered"
    assert await UsedToken.objects.acount() == len(statuses)


def stored_calls() -> list:
    """What the pages show of each call: its fields and its timeline."""
    return sorted(
        (
            call.conversation_uuid or "",
            call.uuid or "",
            call.from_number,
            call.to_number,
            call.direction,
            call.status,
            call.ended_at,
            call.duration_seconds,
            sorted(
                (e.leg_uuid, e.status, e.is_websocket_leg) for e in call.events.all()
            ),
        )
        for call in Call.objects.prefetch_related("events")
    )


def event(**fields) -> vonage.CallEventData:
    return vonage.parse_event({"timestamp": "2026-12-04T10:00:00.000Z", **fields})


A, B = "aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002"
SOCKET_LEG = "cccccccc-0000-0000-0000-000000000003"
MESSAGES = [
    vonage.parse_answer(
        {"uuid": A, "conversation_uuid": "CON-a", "from": "447700900001", "to": "1"}
    ),
    event(uuid=A, conversation_uuid="CON-a", status="started", direction="inbound"),
    # The socket leg: on the timeline, but not the caller's leg.
    event(
        uuid=SOCKET_LEG,
        conversation_uuid="CON-a",
        status="started",
        to="wss://example.test/socket",
    ),
    # Events that only name their leg: the caller's, then the socket's.
    event(uuid=A, status="ringing"),
    event(uuid=SOCKET_LEG, status="answered", to="wss://example.test/socket"),
    # Call B's leg speaks before its answer; the answer joins it.
    event(uuid=B, status="started", **{"from": "447700900002"}),
    vonage.parse_answer(
        {"uuid": B, "conversation_uuid": "CON-b", "from": "447700900002", "to": "1"}
    ),
    event(uuid=A, conversation_uuid="CON-a", status="started", direction="inbound"),
    event(uuid=A, conversation_uuid="CON-a", status="completed", duration="42"),
]


@pytest.mark.django_db
def test_a_batch_stores_what_one_by_one_would():
    calls.calls_record(messages=MESSAGES)
    together = stored_calls()
    Call.objects.all().delete()
    for message in MESSAGES:
        calls.calls_record(messages=[message])
    one_by_one = stored_calls()
    Call.objects.all().delete()
    calls.calls_record(messages=MESSAGES[:4])
    calls.calls_record(messages=MESSAGES[4:])

    assert together == one_by_one == stored_calls()
    call_a, call_b = together
    assert call_a[:2] == ("CON-a", A)
    assert call_a[5] == "completed" and call_a[6] is not None
    assert call_a[7] == 42
    assert sorted(status for _, status, _ in call_a[8]) == sorted(
        ["started", "started", "ringing", "answered", "completed"]
    )
    assert call_b[:3] == ("CON-b", B, "447700900002")
    assert call_b[5] == "started"
