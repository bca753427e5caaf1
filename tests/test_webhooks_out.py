"""Webhooks out: queued with the change, signed (checked with the Standard
Webhooks library, as a receiver would), retried, ordered, and delivered
by a worker that can die mid-send; against a real HTTP receiver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from recordings_app.models import (
    Call,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from recordings_app.services import holds, webhooks
from recordings_app.services import webhook_deliveries as deliveries
from recordings_app.services.webhook_deliveries import webhooks_deliver_due
from recordings_app.services.webhooks import webhook_subscription_create

from .helpers import ROOT, database_url, free_port, make_call, pcm, record

pytestmark = pytest.mark.django_db


class Receiver:
    """An HTTP server on 127.0.0.1 that answers each POST with the next of
    `answers` (a status, or (status, seconds to wait first)); the last
    answer repeats. It keeps what it was sent."""

    def __init__(self, *answers, port: int = 0) -> None:
        self.answers = list(answers) or [204]
        self.body = b"ok"
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                answers = receiver.answers
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                status, wait = answer if isinstance(answer, tuple) else (answer, 0)
                time.sleep(wait)
                receiver.received.append((dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self, secret: str) -> list[dict]:
        """What it received, each verified as its signature says."""
        return [
            Webhook(secret).verify(body, headers) for headers, body in self.received
        ]


@pytest.fixture
def receiver():
    made = []

    def receiver_answering(*answers) -> Receiver:
        made.append(Receiver(*answers))
        return made[-1]

    yield receiver_answering
    for server in made:
        server.close()


@pytest.fixture(autouse=True)
def _subscriptions_read_afresh():
    webhooks.forget_subscriptions()
    yield
    webhooks.forget_subscriptions()


def subscribe(url: str, *events: str):
    return webhook_subscription_create(url=url, events=list(events))


def due_now() -> None:
    WebhookDelivery.objects.filter(state="pending").update(
        next_attempt_at=timezone.now()
    )


# --- subscribing -------------------------------------------------------------


def test_add_webhook_prints_a_new_secret_last_and_refuses_unknown_events(capsys):
    call_command(
        "add_webhook", url="https://crm.example/hook", events="recording.ready"
    )
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    Webhook(secret)  # the library takes it

    with pytest.raises(Exception, match="unknown event.*recording.readdy"):
        call_command(
            "add_webhook", url="https://crm.example/hook", events="recording.readdy"
        )


# --- queued with the change ----------------------------------------------------


def test_a_stored_recording_is_sent_signed_with_its_call_and_links(receiver, settings):
    settings.PUBLIC_URL = "https://rec.example"
    hook = receiver(200)
    subscription = subscribe(hook.url, "recording.ready")
    call = make_call(1)
    recording = record(call, pcm(0.2, 16000), settings.SPOOL_DIR)

    assert webhooks_deliver_due() == 1

    [event] = hook.events(subscription.secret)
    assert event["type"] == "recording.ready"
    assert event["data"]["call"]["uuid"] == call.uuid
    assert event["data"]["recording"]["pcm_sha256"] == recording.pcm_sha256
    assert event["data"]["recording"]["audio_url"] == (
        f"https://rec.example/api/v1/recordings/{recording.pk}/audio.wav"
    )
    headers = hook.received[0][0]
    assert headers["webhook-id"].startswith("msg_")
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("delivered", 1)
    assert delivery.attempt_log.get().status_code == 200


def test_a_change_refused_queues_nothing(receiver, settings, admin_user):
    subscribe(receiver().url, "recording.deleted")
    call = make_call(1)
    recording = record(call, pcm(0.1, 16000), settings.SPOOL_DIR)
    Call.objects.filter(pk=call.pk).update(legal_hold=True)
    recording.refresh_from_db()

    with pytest.raises(holds.CallOnLegalHold):
        holds.recording_delete(recording=recording, user=admin_user, ip_address=None)

    assert not WebhookDelivery.objects.exists()  # rolled back with the delete


def test_call_started_completed_and_legal_hold_are_sent(receiver, admin_user):
    from recordings_app.services.calls import calls_record
    from recordings_app.vonage import parse_answer, parse_event

    hook = receiver(204)
    subscription = subscribe(
        hook.url, "call.started", "call.completed", "legal_hold.changed"
    )
    leg = {"uuid": "aaaa-1", "conversation_uuid": "CON-1"}
    calls_record(messages=[parse_answer({**leg, "from": "447700900123", "to": "1"})])
    calls_record(
        messages=[parse_event({**leg, "status": "completed", "duration": "9"})]
    )
    calls_record(
        messages=[parse_event({**leg, "status": "completed", "duration": "9"})]
    )
    holds.legal_hold_set(call=Call.objects.get(), on=True, by=admin_user)

    while webhooks_deliver_due():
        pass

    events = hook.events(subscription.secret)
    assert [e["type"] for e in events] == [
        "call.started",
        "call.completed",  # once, though Vonage said it twice
        "legal_hold.changed",
    ]
    assert events[1]["data"]["call"]["duration_seconds"] == 9
    assert events[2]["data"] | {"call": None} == {"call": None, "changed_by": "admin"}


# --- retries, giving up, 410 ---------------------------------------------------


def test_a_failing_receiver_is_retried_later_with_each_attempt_logged(
    receiver, settings
):
    hook = receiver(500, 503, 200)
    subscribe(hook.url, "recording.ready")
    record(make_call(1), pcm(0.1, 16000), settings.SPOOL_DIR)

    webhooks_deliver_due()
    delivery = WebhookDelivery.objects.get()
    wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert 2 < wait <= 5  # the first retry: between 2.5 and 5 s, jittered
    assert webhooks_deliver_due() == 0  # not before its time
    due_now()
    webhooks_deliver_due()
    due_now()
    webhooks_deliver_due()

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("delivered", 3)
    codes = [a.status_code for a in delivery.attempt_log.order_by("at", "id")]
    assert codes == [500, 503, 200]
    assert delivery.attempt_log.first().response_excerpt == "ok"


def test_retries_back_off_and_stop_after_a_day():
    delays = [deliveries.retry_delay(n) for n in range(1, 12)]
    assert 2.5 <= delays[0] <= 5 and 5 <= delays[1] <= 10
    assert all(300 <= d <= 600 for d in delays[8:])  # at most 10 minutes apart
    # Jittered: receivers back up are not hit by every retry at once.
    assert len({deliveries.retry_delay(3) for _ in range(20)}) > 10


def test_a_delivery_held_by_one_worker_is_not_sent_by_another(receiver, settings):
    subscribe(receiver().url, "recording.ready")
    record(make_call(1), pcm(0.1, 16000), settings.SPOOL_DIR)

    [held] = deliveries.webhook_deliveries_claim(lease_seconds=60)

    assert deliveries.webhook_deliveries_claim() == []  # another worker, meanwhile
    WebhookDelivery.objects.update(leased_until=timezone.now())  # it died
    assert deliveries.webhook_deliveries_claim() == [held]


def test_a_receiver_down_gets_every_event_after_in_order_per_call(receiver, settings):
    port = free_port()  # nothing listens there yet
    subscription = subscribe(f"http://127.0.0.1:{port}/hook", "recording.ready")
    first, second = make_call(1), make_call(2)
    for call in (first, second, first, first):
        record(call, pcm(0.1, 16000), settings.SPOOL_DIR)

    assert webhooks_deliver_due() == 2  # the first of each call; the rest wait
    attempt = WebhookAttempt.objects.first()
    assert attempt.status_code is None and "ConnectError" in attempt.error

    hook = Receiver(200, port=port)  # up again, where the subscription says
    try:
        for _ in range(5):
            due_now()
            webhooks_deliver_due()
        events = hook.events(subscription.secret)
    finally:
        hook.close()

    assert len(events) == 4
    firsts = [
        e["data"]["recording"]["id"]
        for e in events
        if e["data"]["call"]["id"] == first.pk
    ]
    assert firsts == sorted(firsts)  # the call's recordings in the order made
    assert not WebhookDelivery.objects.exclude(state="delivered").exists()


@pytest.mark.django_db(transaction=True)  # /metrics reads in a thread of its own
def test_a_delivery_still_failing_after_a_day_fails_and_metrics_say_so(
    receiver, settings
):
    subscribe(receiver(500).url, "recording.ready")
    record(make_call(1), pcm(0.1, 16000), settings.SPOOL_DIR)
    WebhookDelivery.objects.update(give_up_at=timezone.now())

    webhooks_deliver_due()

    assert WebhookDelivery.objects.get().state == "failed"
    settings.METRICS_TOKEN = "t" * 32
    page = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer " + "t" * 32)
    assert 'callrecorder_webhook_deliveries{state="failed"} 1.0' in page.text


def test_a_410_ends_the_subscription_and_what_it_had_queued(receiver, settings):
    subscription = subscribe(receiver(410).url, "recording.ready")
    for n in (1, 2):
        record(make_call(n), pcm(0.1, 16000), settings.SPOOL_DIR)

    webhooks_deliver_due()

    subscription.refresh_from_db()
    assert not subscription.active and "410" in subscription.disabled_reason
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"cancelled"}
    record(make_call(3), pcm(0.1, 16000), settings.SPOOL_DIR)
    assert WebhookDelivery.objects.count() == 2  # nothing new for it


def test_a_slow_receiver_times_out_and_is_tried_again(receiver, settings):
    hook = receiver((200, 2.0), 200)
    subscribe(hook.url, "recording.ready")
    record(make_call(1), pcm(0.1, 16000), settings.SPOOL_DIR)

    deliveries.webhooks_deliver_due(timeout=0.5)

    attempt = WebhookAttempt.objects.get()
    assert "Timeout" in attempt.error
    assert WebhookDelivery.objects.get().state == "pending"


def test_redeliver_sends_a_failed_delivery_again(receiver, settings):
    hook = receiver(500, 200)
    subscribe(hook.url, "recording.ready")
    record(make_call(1), pcm(0.1, 16000), settings.SPOOL_DIR)
    WebhookDelivery.objects.update(give_up_at=timezone.now())
    webhooks_deliver_due()
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == "failed"

    deliveries.webhook_redeliver(delivery=delivery)
    webhooks_deliver_due()

    delivery.refresh_from_db()
    assert delivery.state == "delivered" and delivery.attempts == 2


# --- the worker --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_delivery_sends_it_again_after_a_restart(
    receiver, settings, tmp_path
):
    hook = receiver((200, 3.0), 200)  # the first answer comes too late
    subscription = subscribe(hook.url, "recording.ready")
    record(make_call(1), pcm(0.1, 16000), settings.SPOOL_DIR)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "callrecorder.settings",
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "manage.py", "deliver_webhooks", "--timeout", "1"]

    worker = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 20
    while not hook.received and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    worker.send_signal(signal.SIGKILL)  # mid-send: no answer, nothing recorded
    worker.wait()
    assert WebhookDelivery.objects.get().state == "pending"

    WebhookDelivery.objects.update(leased_until=timezone.now())  # its hold ran out
    restarted = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if WebhookDelivery.objects.get().state == "delivered":
                break
            time.sleep(0.1)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=15)

    assert WebhookDelivery.objects.get().state == "delivered"
    events = hook.events(subscription.secret)
    assert len(events) == 2  # sent twice, with one webhook-id: the receiver can tell
    assert len({headers["webhook-id"] for headers, _ in hook.received}) == 1
    assert restarted.returncode == 0  # SIGTERM: stops when its send is done
    assert json.loads(hook.received[-1][1])["type"] == "recording.ready"


# --- the admin -----------------------------------------------------------------------


def test_the_admin_subscribes_with_a_made_secret_and_redelivers(
    admin_client, receiver, settings
):
    hook = receiver(500, 200)
    made = admin_client.post(
        "/admin/recordings_app/webhooksubscription/add/",
        {"url": hook.url, "events": ["recording.ready"], "secret": "", "active": "on"},
    )
    subscription = WebhookSubscription.objects.get()
    Webhook(subscription.secret)
    assert subscription.secret in made.content.decode()  # shown once, here
    change = admin_client.get(
        f"/admin/recordings_app/webhooksubscription/{subscription.pk}/change/"
    )
    assert subscription.secret not in change.content.decode()  # and not again
    record(make_call(1), pcm(0.1, 16000), settings.SPOOL_DIR)
    WebhookDelivery.objects.update(give_up_at=timezone.now())
    webhooks_deliver_due()
    delivery = WebhookDelivery.objects.get()

    page = admin_client.get(
        f"/admin/recordings_app/webhookdelivery/{delivery.pk}/change/"
    ).content.decode()
    assert "500" in page and "ok" in page  # the attempt, and what it answered
    admin_client.post(
        "/admin/recordings_app/webhookdelivery/",
        {"action": "redeliver", "_selected_action": [delivery.pk]},
    )
    webhooks_deliver_due()

    delivery.refresh_from_db()
    assert delivery.state == "delivered"
    assert len(hook.events(subscription.secret)) == 2


def test_webhooks_in_the_admin_are_for_superusers_only(client, django_user_model):
    from .helpers import grant

    staff = grant(
        django_user_model.objects.create_user("sam", is_staff=True),
        "view_webhooksubscription",
        "view_webhookdelivery",
        "change_webhooksubscription",
    )
    client.force_login(staff)

    for model in ("webhooksubscription", "webhookdelivery"):
        assert client.get(f"/admin/recordings_app/{model}/").status_code == 403


# --- what the review found ------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://\u2603.net/", "http://a..b/", "ftp://x.example/"]
)
def test_a_url_nothing_can_be_sent_to_is_refused(url):
    with pytest.raises(webhooks.InvalidSubscription, match="not an http"):
        subscribe(url, "recording.ready")


def test_one_delivery_that_cannot_be_sent_stops_no_other(receiver, settings):
    hook = receiver(200)
    good = subscribe(hook.url, "recording.ready")
    WebhookSubscription.objects.create(  # made before URLs were checked
        url="http://\u2603.net/", events=["recording.ready"], secret=good.secret
    )
    webhooks.forget_subscriptions()
    record(make_call(1), pcm(0.1, 16000), settings.SPOOL_DIR)

    assert webhooks_deliver_due() == 2

    states = dict(WebhookDelivery.objects.values_list("subscription__url", "state"))
    assert states == {hook.url: "delivered", "http://\u2603.net/": "pending"}
    assert "InvalidURL" in WebhookAttempt.objects.get(status_code=None).error


def test_what_a_receiver_says_is_kept_as_the_database_can(receiver, settings):
    hook = receiver(500)
    subscribe(hook.url, "recording.ready")
    record(make_call(1), pcm(0.1, 16000), settings.SPOOL_DIR)
    hook.body = b"bad\x00byte"

    webhooks_deliver_due()

    assert WebhookAttempt.objects.get().response_excerpt == "bad\ufffdbyte"


def test_a_subscription_deleted_meanwhile_breaks_no_call(receiver):
    from recordings_app.services.calls import calls_record
    from recordings_app.vonage import parse_answer

    subscription = subscribe(receiver().url, "call.started")
    answer = {"from": "447700900123", "to": "1"}
    calls_record(
        messages=[parse_answer({**answer, "uuid": "a-1", "conversation_uuid": "C1"})]
    )
    subscription.delete()  # from another process: this one's cache knows nothing

    calls_record(
        messages=[parse_answer({**answer, "uuid": "a-2", "conversation_uuid": "C2"})]
    )

    assert Call.objects.count() == 2


def test_a_stopped_subscription_gets_nothing_more(admin_client, receiver, settings):
    hook = receiver(200)
    subscription = subscribe(hook.url, "recording.ready")
    record(make_call(1), pcm(0.1, 16000), settings.SPOOL_DIR)

    admin_client.post(
        f"/admin/recordings_app/webhooksubscription/{subscription.pk}/change/",
        {
            "url": hook.url,
            "events": ["recording.ready"],
            "secret": "",
            "description": "",
        },
    )  # "active" unticked
    webhooks_deliver_due()

    assert not hook.received
    assert WebhookDelivery.objects.get().state == "cancelled"


def test_a_subscription_switched_off_in_the_database_gets_nothing(receiver, settings):
    hook = receiver(200)
    subscribe(hook.url, "recording.ready")
    record(make_call(1), pcm(0.1, 16000), settings.SPOOL_DIR)
    WebhookSubscription.objects.update(active=False)  # not through the admin

    assert webhooks_deliver_due() == 0
    assert not hook.received


def test_a_late_answer_from_a_worker_whose_hold_ran_out_changes_nothing(
    receiver, settings
):
    subscribe(receiver().url, "recording.ready")
    record(make_call(1), pcm(0.1, 16000), settings.SPOOL_DIR)
    [first_worker] = deliveries.webhook_deliveries_claim()
    WebhookDelivery.objects.update(leased_until=timezone.now())  # it is slow
    [second_worker] = deliveries.webhook_deliveries_claim()

    deliveries.webhook_attempt_record(  # the first gives up while the second sends
        delivery=first_worker, answer=deliveries.Answer(None, error="ReadTimeout")
    )
    deliveries.webhook_attempt_record(
        delivery=second_worker, answer=deliveries.Answer(200)
    )

    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("delivered", 1)
    assert delivery.attempt_log.count() == 2  # both attempts are logged


def test_a_purge_tells_of_each_recording_it_deletes(receiver, settings):
    from recordings_app.services.retention import purge_calls_older_than

    subscribe(receiver().url, "recording.deleted")
    old = make_call(1, started_at=timezone.now() - timezone.timedelta(days=40))
    record(old, pcm(0.1, 16000), settings.SPOOL_DIR)

    purge_calls_older_than(timezone.now() - timezone.timedelta(days=30), dry_run=False)

    [deleted] = WebhookDelivery.objects.filter(event="recording.deleted")
    assert deleted.payload["data"]["call"]["id"] == old.pk
    assert deleted.payload["data"]["deleted_by"]


def test_a_busy_or_failed_call_ends_too(receiver):
    from recordings_app.services.calls import calls_record
    from recordings_app.vonage import parse_answer, parse_event

    subscribe(receiver().url, "call.completed")
    leg = {"uuid": "b-1", "conversation_uuid": "CB"}
    calls_record(messages=[parse_answer({**leg, "from": "447700900123", "to": "1"})])
    calls_record(messages=[parse_event({**leg, "status": "busy"})])

    [ended] = WebhookDelivery.objects.all()
    assert ended.payload["data"]["call"]["status"] == "busy"


def test_a_recording_that_fails_to_store_says_so_once_and_ready_after_recovery(
    receiver, settings, monkeypatch
):
    from recordings_app.audio.spool import orphaned_spools
    from recordings_app.services import recordings

    subscribe(receiver().url, "recording.ready", "recording.failed")
    real = recordings.stored_form
    monkeypatch.setattr(
        recordings,
        "stored_form",
        lambda **kw: (_ for _ in ()).throw(OSError("disk full")),
    )
    with pytest.raises(OSError):
        record(make_call(1), pcm(0.1, 16000), settings.SPOOL_DIR)
    monkeypatch.setattr(recordings, "stored_form", real)
    [meta] = orphaned_spools(settings.SPOOL_DIR, grace_seconds=0)
    recordings.recording_recover(meta_path=meta)

    events = list(
        WebhookDelivery.objects.order_by("id").values_list("event", "payload")
    )
    assert [event for event, _ in events] == ["recording.failed", "recording.ready"]
    assert events[0][1]["data"]["error"] == "OSError"  # its kind, not its text
