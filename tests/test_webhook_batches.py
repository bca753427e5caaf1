"""Webhooks under a burst: they skip the pages' middleware and are written
in batches (one transaction for the webhooks of the moment), answers first,
each answered only once its own writes are committed."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json

import pytest
from django.test import AsyncClient, RequestFactory
from django.urls import reverse

from recordings_app.models import Call, CallEvent, UsedToken
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
    """A signed event webhook request and its token's claims."""
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
    return request, claims, token


EVENT_VIEW = inspect.unwrap(webhooks.event_webhook)


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


@pytest.mark.django_db
def test_a_token_twice_in_one_batch_is_a_replay(settings):
    settings.VONAGE_SIGNATURE_SECRET = SECRET
    payload = {**CALL, "status": "ringing", "timestamp": "2026-12-04T10:00:00.000Z"}
    first, claims, token = signed_event(payload)
    again, claims_again, _ = signed_event(payload, token=token)

    responses = webhooks._write_together(
        [(EVENT_VIEW, first, claims), (EVENT_VIEW, again, claims_again)]
    )

    assert [r.status_code for r in responses] == [200, 401]
    assert "replay" in responses[1].content.decode()
    assert CallEvent.objects.filter(status="ringing").count() == 1


@pytest.mark.django_db
def test_a_refused_request_undoes_its_batch_tokens_and_all(settings):
    """The batch is then written again one by one (see the next tests)."""
    settings.VONAGE_SIGNATURE_SECRET = SECRET
    good, good_claims, _ = signed_event({**CALL, "status": "ringing"})
    bad, bad_claims, _ = signed_event({"status": "ringing"})  # no uuids

    with pytest.raises(webhooks._RefusedInBatch):
        webhooks._write_together(
            [(EVENT_VIEW, good, good_claims), (EVENT_VIEW, bad, bad_claims)]
        )

    assert not CallEvent.objects.exists()
    assert not UsedToken.objects.exists()


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
        self.batches.append([name for _, name, _ in jobs])
        if any(name.startswith("fails") for _, name, _ in jobs):
            raise RuntimeError("a batch that fails")
        return [f"written {name}" for _, name, _ in jobs]

    async def alone(self, view, name, claims):
        self.batches.append([name])
        await self.first_may_finish.wait()
        if name.startswith("fails"):
            raise RuntimeError(f"{name} failed")
        return f"written {name}"


async def test_requests_waiting_go_in_one_batch_answers_first(monkeypatch):
    writes = FakeWrites(monkeypatch)
    group_commit = webhooks._GroupCommit()

    first = asyncio.ensure_future(
        group_commit.write((None, "event 1", {}), urgent=False)
    )
    await settle()  # the writer takes event 1 alone and waits on it
    later = [
        asyncio.ensure_future(group_commit.write((None, name, {}), urgent=urgent))
        for name, urgent in [("event 2", False), ("event 3", False), ("answer", True)]
    ]
    await settle()
    writes.first_may_finish.set()

    assert await first == "written event 1"
    assert await asyncio.gather(*later) == [
        "written event 2",
        "written event 3",
        "written answer",
    ]
    assert writes.batches == [["event 1"], ["answer", "event 2", "event 3"]]


async def test_a_batch_that_fails_is_written_one_by_one_and_one_fails_alone(
    monkeypatch,
):
    writes = FakeWrites(monkeypatch)
    writes.first_may_finish.set()
    group_commit = webhooks._GroupCommit()
    group_commit._writer = asyncio.get_running_loop().create_future()  # busy

    jobs = [
        asyncio.ensure_future(group_commit.write((None, name, {}), urgent=False))
        for name in ("event 1", "fails 2", "event 3")
    ]
    await settle()
    group_commit._writer = None
    last = asyncio.ensure_future(
        group_commit.write((None, "event 4", {}), urgent=False)
    )
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
