"""Property-based: whatever arrives, the answer is a 4xx or a close code, never a crash,
and a legitimate call recording at the same time loses nothing."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recordings_app.models import Call

from .helpers import open_socket, pcm, recordings_of, send_frames, wav_of

SECRET = "vonage-signature-secret-0123456789abcdef"
WEBHOOKS = ["recordings:answer_webhook", "recordings:event_webhook"]
# Derandomized: CI runs the same examples each time, so a failure reproduces.
fuzz = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

FIELDS = [
    "status",
    "from",
    "to",
    "timestamp",
    "duration",
    "start_time",
    "end_time",
    "direction",
    "detail",
    "headers",
    "endpoint_type",
    "call_uuid",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["uuid", "conversation_uuid", *FIELDS])
            | st.text(max_size=10),
            children,
            max_size=8,
        )
    ),
    max_leaves=20,
)
vonage_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,40}", fullmatch=True)
# Payloads that get past the ids and reach every other field's parsing.
event_like = st.fixed_dictionaries(
    {"uuid": vonage_ids, "conversation_uuid": vonage_ids},
    optional={field: json_values | st.text(max_size=40) for field in FIELDS},
)
payloads = st.one_of(json_values, event_like)
header_values = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=300
)


def client_error_at_most(response) -> None:
    assert response.status_code < 500, response.content[:300]


@pytest.mark.django_db
@pytest.mark.parametrize("webhook", WEBHOOKS)
@fuzz
@given(body=st.binary(max_size=2000))
def test_random_bytes_never_break_a_webhook(webhook, body):
    response = Client().post(
        reverse(webhook), data=body, content_type="application/json"
    )
    client_error_at_most(response)


@pytest.mark.django_db
@pytest.mark.parametrize("webhook", WEBHOOKS)
@fuzz
@given(payload=payloads)
def test_random_json_never_breaks_a_webhook(webhook, payload):
    response = Client().post(
        reverse(webhook),
        data=json.dumps(payload, allow_nan=True),
        content_type="application/json",
    )
    client_error_at_most(response)


@pytest.mark.django_db
@pytest.mark.parametrize("webhook", WEBHOOKS)
@fuzz
@given(params=st.dictionaries(st.text(max_size=20), st.text(max_size=60), max_size=8))
def test_random_query_strings_never_break_a_webhook(webhook, params):
    client_error_at_most(Client().get(reverse(webhook), params))


@pytest.mark.django_db
@pytest.mark.parametrize("webhook", WEBHOOKS)
@fuzz
@given(
    authorization=header_values,
    other=st.dictionaries(
        st.from_regex(r"X-[A-Za-z]{1,12}", fullmatch=True), header_values, max_size=4
    ),
    payload=payloads,
)
def test_with_signatures_on_random_headers_get_401_and_store_nothing(
    webhook, authorization, other, payload
):
    from django.conf import settings as django_settings

    django_settings.VONAGE_SIGNATURE_SECRET = SECRET
    try:
        response = Client().post(
            reverse(webhook),
            data=json.dumps(payload),
            content_type="application/json",
            headers={**other, "Authorization": authorization},
        )
    finally:
        django_settings.VONAGE_SIGNATURE_SECRET = ""
    assert response.status_code == 401
    assert not Call.objects.exists()


socket_messages = st.lists(
    st.one_of(
        st.binary(min_size=1, max_size=2000).map(lambda b: ("bytes", b)),
        st.text(min_size=1, max_size=300).map(lambda t: ("text", t)),
        json_values.map(lambda v: ("text", json.dumps(v))),
        st.sampled_from(
            [
                (
                    "text",
                    '{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}',
                ),
                (
                    "text",
                    '{"event":"websocket:connected","content-type":"audio/l16;rate=99999999"}',
                ),
                ("text", '{"event":"websocket:dtmf","digit":"5","duration":260}'),
                ("text", "[" * 100_000),
            ]
        ),
    ),
    max_size=12,
)


@pytest.mark.django_db(transaction=True)
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=socket_messages, with_token=st.booleans())
@example(messages=[("text", "[" * 100_000)], with_token=True)
@example(
    messages=[
        (
            "text",
            '{"event":"websocket:connected","content-type":"audio/l16;rate=16000"}',
        ),
        ("text", "[" * 100_000),
        ("bytes", b"\x01"),
    ],
    with_token=True,
)
def test_random_socket_traffic_never_crashes_nor_costs_a_legitimate_call_its_audio(
    messages, with_token
):
    audio = pcm(0.4, 16000, seed=5)

    async def run() -> None:
        legitimate = await open_socket(1)
        query = None if with_token else "uuid=aaaaaaaa-0000-0000-0000-000000000002"
        hostile = await open_socket(2, rate=0, query=query)
        for index, (kind, data) in enumerate(messages):
            await legitimate.send_to(bytes_data=audio[index * 640 : (index + 1) * 640])
            if kind == "bytes":
                await hostile.send_to(bytes_data=data)
            else:
                await hostile.send_to(text_data=data)
        await send_frames(legitimate, audio[len(messages) * 640 :], 640)
        await legitimate.disconnect()
        # The hostile socket either closed with a code or is still open.
        while not await hostile.receive_nothing(timeout=0.05):
            output = await hostile.receive_output()
            if output["type"] == "websocket.close":
                assert output["code"] >= 1000
        await hostile.disconnect()
        [recording] = await recordings_of(1)
        assert wav_of(recording)[1] == audio
        await Call.objects.all().adelete()

    async_to_sync(run)()
