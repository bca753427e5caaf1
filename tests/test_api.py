"""The HTTP API (/api/v1/): tokens, scopes, the pages' permissions and lines,
filters and cursor pages, audio with Range, JSON errors, the schema."""

from __future__ import annotations

import hashlib
import io
import wave
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache.backends.locmem import LocMemCache
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from openapi_spec_validator import validate

from recordings_app.api.auth import PerTokenThrottle
from recordings_app.models import AccessLogEntry, ApiToken, Call, Line, LiveSocket
from recordings_app.services.api_tokens import (
    api_token_check,
    api_token_create,
    api_token_revoke,
)

from .helpers import LISTENER, body, grant, make_call, pcm, record

pytestmark = pytest.mark.django_db

OURS, THEIRS = "447700900001", "447700900002"


@pytest.fixture
def listener(user) -> User:
    return user


def token_of(user: User, scope: str = "read", **options) -> str:
    return api_token_create(user=user, scope=scope, **options)[1]


def api(method: str, path: str, token: str | None = None, **extra):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return getattr(Client(), method)(path, headers=headers, **extra)


def recorded_call(n: int, settings, *, to: str = OURS, seconds: float = 0.2, **fields):
    call = make_call(n, **fields)
    Call.objects.filter(pk=call.pk).update(to_number=to)
    call.refresh_from_db()
    recording = record(call, pcm(seconds, 16000, seed=n), settings.SPOOL_DIR)
    return call, recording


# --- tokens -----------------------------------------------------------------


def test_create_api_token_prints_the_token_last_and_keeps_only_its_hash(
    listener, capsys
):
    call_command("create_api_token", user="listener", scope="read", expires_days=30)
    out, err = capsys.readouterr()
    token = out.strip().splitlines()[-1]
    assert token.startswith("crt_") and len(token) > 40
    assert "scope read" in err and "until" in err

    stored = ApiToken.objects.get()
    assert stored.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(list(ApiToken.objects.values()))
    assert stored.expires_at - timezone.now() > timedelta(days=29)
    assert api("get", "/api/v1/calls", token).status_code == 200


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"user": "nobody", "scope": "read"}, "No user named 'nobody'"),
        ({"user": "listener", "scope": "read", "expires_days": 0}, "from 1 to"),
        ({"user": "listener", "scope": "read", "expires_days": 10**9}, "from 1 to"),
    ],
)
def test_create_api_token_refuses_what_it_cannot_make(listener, options, why):
    with pytest.raises(Exception, match=why):
        call_command("create_api_token", **options)
    assert not ApiToken.objects.exists()


def test_no_token_a_wrong_one_an_expired_or_revoked_one_are_401(listener):
    good = token_of(listener)
    expired = token_of(listener, expires_days=1)
    ApiToken.objects.filter(pk=ApiToken.objects.order_by("-id")[0].pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    revoked_row, revoked = api_token_create(user=listener, scope="read")
    api_token_revoke(api_token=revoked_row)
    wrong_secret = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")

    for token in (None, wrong_secret, expired, revoked, "crt_nope", ""):
        response = api("get", "/api/v1/calls", token)
        assert response.status_code == 401, token
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["status"] == 401
    assert api("get", "/api/v1/calls", good).status_code == 200


def test_an_inactive_users_token_is_refused(listener):
    token = token_of(listener)
    User.objects.filter(pk=listener.pk).update(is_active=False)
    assert api("get", "/api/v1/calls", token).status_code == 401


# --- what a token sees: the pages' permissions and lines ----------------------


def test_a_new_user_sees_no_calls_and_no_recording(settings, django_user_model):
    call, recording = recorded_call(1, settings)
    token = token_of(django_user_model.objects.create_user("newcomer"))

    assert api("get", "/api/v1/calls", token).json()["results"] == []
    assert api("get", f"/api/v1/calls/{call.pk}", token).status_code == 404
    assert api("get", f"/api/v1/recordings/{recording.pk}", token).status_code == 404
    audio = api("get", f"/api/v1/recordings/{recording.pk}/audio.wav", token)
    assert audio.status_code == 404


def test_a_team_sees_its_lines_calls_and_another_teams_call_is_404(
    settings, django_user_model
):
    ours, _ = recorded_call(1, settings, to=OURS)
    theirs, their_recording = recorded_call(2, settings, to=THEIRS)
    team = Group.objects.create(name="sales")
    Line.objects.create(number=OURS).groups.add(team)
    member = django_user_model.objects.create_user("tina")
    member.groups.add(team)
    token = token_of(grant(member, "play_recording"))

    listed = api("get", "/api/v1/calls", token).json()["results"]
    assert [call["id"] for call in listed] == [ours.pk]
    assert api("get", f"/api/v1/calls/{ours.pk}", token).status_code == 200
    for path in (
        f"/api/v1/calls/{theirs.pk}",
        f"/api/v1/recordings/{their_recording.pk}",
        f"/api/v1/recordings/{their_recording.pk}/audio.wav",
    ):
        response = api("get", path, token)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


def test_seeing_calls_without_play_recording_gets_no_audio(settings, django_user_model):
    _, recording = recorded_call(1, settings)
    viewer = grant(django_user_model.objects.create_user("vic"), "view_all_calls")

    response = api(
        "get", f"/api/v1/recordings/{recording.pk}/audio.wav", token_of(viewer)
    )

    assert response.status_code == 403
    assert "play_recording" in response.json()["detail"]
    assert not AccessLogEntry.objects.filter(action="download").exists()


# --- reads ------------------------------------------------------------------------


def test_a_call_comes_with_its_timeline_and_its_recordings_figures(listener, settings):
    call, recording = recorded_call(1, settings)
    call.events.create(source="socket", status="websocket:dtmf", payload={"digit": "4"})

    response = api("get", f"/api/v1/calls/{call.pk}", token_of(listener))

    data = response.json()
    assert data["from_number"] == call.from_number
    assert data["page_url"] == f"http://testserver/calls/{call.pk}/"
    assert [(e["label"], e["leg"]) for e in data["events"]] == [
        ("Key pressed: 4", "socket")
    ]
    [figures] = data["recordings"]
    assert figures["pcm_sha256"] == recording.pcm_sha256
    assert figures["frame_count"] == recording.frame_count
    assert figures["audio_url"] == (
        f"http://testserver/api/v1/recordings/{recording.pk}/audio.wav"
    )
    # Looking at a call is logged, as on its page.
    assert AccessLogEntry.objects.filter(action="view", call_id=call.pk).count() == 1


def test_the_list_takes_the_list_pages_filters_and_says_what_is_wrong(
    listener, settings
):
    now = timezone.now()
    old, _ = recorded_call(1, settings, started_at=now - timedelta(days=10))
    failed, _ = recorded_call(2, settings, started_at=now - timedelta(hours=1))
    Call.objects.filter(pk=failed.pk).update(status="failed")
    token = token_of(listener)

    def ids(query: str) -> list[int]:
        response = api("get", f"/api/v1/calls?{query}", token)
        assert response.status_code == 200, response.content
        return [call["id"] for call in response.json()["results"]]

    assert ids("") == [failed.pk, old.pk]
    assert ids("sort=oldest") == [old.pk, failed.pk]
    assert ids("status=failed") == [failed.pk]
    assert ids(f"q={old.from_number}") == [old.pk]
    since = (now - timedelta(days=2)).date().isoformat()
    assert ids(f"since={since}") == [failed.pk]

    bad = api("get", "/api/v1/calls?since=yesterday&sort=loudest", token)
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid"
    assert set(bad.json()["fields"]) == {"since", "sort"}


def test_cursor_pages_hold_still_while_calls_arrive(listener, settings):
    now = timezone.now()
    calls = [
        recorded_call(n, settings, started_at=now - timedelta(minutes=n))[0]
        for n in range(1, 6)
    ]
    token = token_of(listener)

    first = api("get", "/api/v1/calls?page_size=2", token).json()
    recorded_call(9, settings, started_at=now)  # a new call, newest of all
    second = api("get", first["next"], token).json()
    third = api("get", second["next"], token).json()

    seen = [c["id"] for page in (first, second, third) for c in page["results"]]
    assert seen == [call.pk for call in calls]
    assert third["next"] is None


def test_longest_first_pages_through_calls_without_a_duration_too(listener, settings):
    lengths = [30, None, 90, 60]
    calls = [
        recorded_call(n, settings, duration_seconds=seconds)[0]
        for n, seconds in enumerate(lengths, start=1)
    ]
    token = token_of(listener)

    first = api("get", "/api/v1/calls?sort=longest&page_size=3", token).json()
    second = api("get", first["next"], token).json()

    durations = [c["duration_seconds"] for c in first["results"] + second["results"]]
    assert durations[:3] == [90, 60, 30]
    assert len(durations) == len(calls) and second["next"] is None


def test_calls_in_progress_are_listed_with_their_pause(listener, settings):
    call = make_call(1)
    LiveSocket.objects.create(
        call=call,
        channel_name="c1",
        spool_name="s1.wav",
        sample_rate=16000,
        paused=True,
        paused_by="alice",
    )

    [live] = api("get", "/api/v1/calls/live", token_of(listener)).json()

    assert live["call"]["id"] == call.pk
    assert (live["paused"], live["paused_by"]) == (True, "alice")


def test_audio_is_the_recording_as_wav_with_range_and_each_read_is_logged(
    listener, settings
):
    audio = pcm(0.5, 16000, seed=7)
    call = make_call(1)
    recording = record(call, audio, settings.SPOOL_DIR)
    token = token_of(listener)
    path = f"/api/v1/recordings/{recording.pk}/audio.wav"

    whole = api("get", path, token)
    part = api("get", path, token, HTTP_RANGE="bytes=44-1043")

    assert whole.status_code == 200 and whole["Content-Type"] == "audio/wav"
    with wave.open(io.BytesIO(body(whole))) as wav:
        assert wav.readframes(wav.getnframes()) == audio
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 44-1043/{recording.size_bytes}"
    assert body(part) == audio[:1000]
    logged = AccessLogEntry.objects.filter(action="download", recording_id=recording.pk)
    assert logged.exists() and logged.first().username == "listener"


# --- writes: scope write and the pages' permissions -------------------------------


def test_deleting_needs_scope_write_and_delete_recording_and_no_hold(
    listener, settings
):
    call, recording = recorded_call(1, settings)
    path = f"/api/v1/recordings/{recording.pk}"
    reader = token_of(grant(listener, "delete_recording"), "read")
    writer_without_permission = token_of(User.objects.create_user("wes"), "write")
    grant(User.objects.get(username="wes"), *LISTENER)
    writer = token_of(listener, "write")

    refused = api("delete", path, reader)
    assert refused.status_code == 403 and "scope write" in refused.json()["detail"]
    refused = api("delete", path, writer_without_permission)
    assert refused.status_code == 403
    assert "delete_recording" in refused.json()["detail"]

    Call.objects.filter(pk=call.pk).update(legal_hold=True)
    held = api("delete", path, writer)
    assert held.status_code == 409 and held.json()["code"] == "legal_hold"
    assert call.recordings.exists()

    Call.objects.filter(pk=call.pk).update(legal_hold=False)
    assert api("delete", path, writer).status_code == 204
    assert not call.recordings.exists()
    assert AccessLogEntry.objects.filter(action="delete").get().username == "listener"


def test_legal_hold_is_placed_and_released_with_scope_write_and_set_legal_hold(
    listener, settings
):
    call, _ = recorded_call(1, settings)
    path = f"/api/v1/calls/{call.pk}/legal-hold"
    holder = grant(listener, "set_legal_hold")

    assert api("post", path, token_of(holder, "read")).status_code == 403
    assert (
        api("post", path, token_of(User.objects.create_user("x"), "write")).status_code
        == 404
    )  # sees no call at all

    seer = grant(User.objects.create_user("sid"), *LISTENER)
    refused = api("post", path, token_of(seer, "write"))
    assert refused.status_code == 403
    assert "set_legal_hold" in refused.json()["detail"]

    placed = api("post", path, token_of(holder, "write"))
    assert placed.status_code == 200
    assert placed.json()["legal_hold"] is True
    assert placed.json()["legal_hold_by"] == "listener"
    assert Call.objects.get(pk=call.pk).legal_hold

    released = api("delete", path, token_of(holder, "write"))
    assert released.json()["legal_hold"] is False
    assert not Call.objects.get(pk=call.pk).legal_hold


# --- sessions, throttling, errors, schema -----------------------------------------


def test_a_session_works_with_csrf_and_a_half_signed_in_one_does_not(
    listener, settings
):
    call, _ = recorded_call(1, settings)
    grant(listener, "set_legal_hold")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(listener)

    assert browser.get("/api/v1/calls").status_code == 200
    path = f"/api/v1/calls/{call.pk}/legal-hold"
    no_token = browser.post(path, content_type="application/json")
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["detail"]
    browser.get("/")  # the page sets the CSRF cookie
    with_token = browser.post(
        path,
        content_type="application/json",
        headers={"X-CSRFToken": browser.cookies["csrftoken"].value},
    )
    assert with_token.status_code == 200

    # An authenticator app, and this session has not given its code.
    TOTPDevice.objects.create(user=listener, name="phone", confirmed=True)
    owed = browser.get("/api/v1/calls")
    assert owed.status_code == 401
    assert owed.json()["code"] == "second_factor_owed"


def test_each_token_has_its_own_rate_and_hears_when_to_come_back(listener, monkeypatch):
    monkeypatch.setattr(PerTokenThrottle, "THROTTLE_RATES", {"token": "3/minute"})
    monkeypatch.setattr(PerTokenThrottle, "cache", LocMemCache("fresh", {}))
    first, second = token_of(listener), token_of(listener)

    answers = [api("get", "/api/v1/calls", first).status_code for _ in range(4)]
    throttled = api("get", "/api/v1/calls", first)

    assert answers == [200, 200, 200, 429]
    assert throttled.json()["code"] == "throttled"
    assert int(throttled["Retry-After"]) > 0
    assert api("get", "/api/v1/calls", second).status_code == 200


def test_an_unknown_endpoint_is_a_json_404(listener):
    response = api("get", "/api/v1/recording/1", token_of(listener))
    assert response.status_code == 404
    assert response.json()["detail"].startswith(
        "No API endpoint at /api/v1/recording/1"
    )


def test_the_schema_is_valid_openapi_3_and_names_every_endpoint():
    response = Client().get("/api/v1/schema?format=json")

    schema = response.json()
    validate(schema)
    assert set(schema["paths"]) == {
        "/api/v1/calls",
        "/api/v1/calls/live",
        "/api/v1/calls/{id}",
        "/api/v1/calls/{id}/legal-hold",
        "/api/v1/recordings/{id}",
        "/api/v1/recordings/{id}/audio.wav",
    }
    assert schema["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    refusals = schema["paths"]["/api/v1/calls"]["get"]["responses"]
    assert {"401", "403", "429"} <= set(refusals)
    assert refusals["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    docs = Client().get("/api/v1/docs")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content


# --- tokens in the admin --------------------------------------------------------


def admin_of(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_token_made_in_the_admin_is_shown_once_on_its_page_and_works(
    admin_user, listener
):
    admin = admin_of(admin_user)

    made = admin.post(
        "/admin/recordings_app/apitoken/add/",
        {"user": listener.pk, "name": "CRM sync", "scope": "read", "expires_at": ""},
    )

    assert made.status_code == 200
    token = made.context["token"]
    assert token in made.content.decode()
    assert token not in str(made.cookies)  # not in a message cookie either
    assert api("get", "/api/v1/calls", token).status_code == 200
    stored = ApiToken.objects.get()
    assert (stored.user, stored.name) == (listener, "CRM sync")
    listed = admin.get("/admin/recordings_app/apitoken/").content.decode()
    assert stored.prefix in listed and token not in listed

    admin.post(
        "/admin/recordings_app/apitoken/",
        {"action": "revoke", "_selected_action": [stored.pk]},
    )
    assert api("get", "/api/v1/calls", token).status_code == 401


def test_staff_who_may_add_tokens_make_them_only_for_themselves(listener):
    staff = grant(
        User.objects.create_user("sam", is_staff=True),
        "add_apitoken",
        "view_apitoken",
    )

    theirs, _ = api_token_create(user=listener, scope="read")
    admin = admin_of(staff)

    refused = admin.post(
        "/admin/recordings_app/apitoken/add/",
        {"user": listener.pk, "name": "", "scope": "write", "expires_at": ""},
    )

    assert refused.status_code == 200 and "token" not in refused.context
    assert "Select a valid choice" in refused.content.decode()
    assert list(ApiToken.objects.all()) == [theirs]
    listed = admin.get("/admin/recordings_app/apitoken/").content.decode()
    assert theirs.prefix not in listed  # nor see anyone else's


@pytest.mark.parametrize("stored_as", ["flac", "opus"])
@pytest.mark.parametrize(
    "byte_range",
    ["bytes=0-9", "bytes=40-49", "bytes=45-1044", "bytes=1001-1500", "bytes=-7"],
)
def test_a_range_of_a_flac_or_opus_recording_is_that_range_of_its_wav(
    listener, settings, stored_as, byte_range
):
    settings.CALLRECORDER_STORAGE_FORMAT = stored_as
    recording = record(make_call(1), pcm(1.0, 16000, seed=5), settings.SPOOL_DIR)
    token = token_of(listener)
    path = f"/api/v1/recordings/{recording.pk}/audio.wav"
    whole = body(api("get", path, token))
    assert len(whole) == 44 + recording.sample_count * 2

    part = api("get", path, token, HTTP_RANGE=byte_range)

    first, last = byte_range.removeprefix("bytes=").split("-")
    if not first:  # the last N bytes
        first, last = len(whole) - int(last), len(whole) - 1
    first, last = int(first), int(last)
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes {first}-{last}/{len(whole)}"
    assert body(part) == whole[first : last + 1]


@pytest.mark.parametrize("sort", ["caller", "longest"])
def test_pages_go_through_more_ties_than_a_thousand_once_each_and_end(listener, sort):
    now = timezone.now()
    Call.objects.bulk_create(
        Call(
            uuid=f"tie-{n}",
            from_number="447700900555",  # one frequent caller
            duration_seconds=30,  # all the same length
            started_at=now - timedelta(seconds=n % 7),
        )
        for n in range(1050)
    )
    token = token_of(listener)

    seen, link, pages = [], f"/api/v1/calls?sort={sort}&page_size=200", 0
    while link and pages < 10:
        page = api("get", link, token).json()
        seen += [call["id"] for call in page["results"]]
        link, pages = page["next"], pages + 1

    assert link is None and pages == 6
    assert len(seen) == len(set(seen)) == 1050


@pytest.mark.parametrize(
    ("cursor", "why"),
    [
        ("cD1nYXJiYWdl", "Not a cursor"),  # DRF's kind, with garbage in it
        ("%%%", "Not a cursor"),
        ("eyJzb3J0IjogIm5ld2VzdCIsICJhZnRlciI6IFsieCIsIDFdfQ==", "Not a cursor"),
    ],
)
def test_a_bad_cursor_is_a_400_that_says_so(listener, cursor, why):
    response = api("get", f"/api/v1/calls?cursor={cursor}", token_of(listener))

    assert response.status_code == 400
    assert response.json()["fields"]["cursor"][0].startswith(why)


def test_a_cursor_of_another_sort_is_refused(listener, settings):
    for n in range(3):
        recorded_call(n + 1, settings)
    token = token_of(listener)
    next_link = api("get", "/api/v1/calls?sort=caller&page_size=1", token).json()[
        "next"
    ]
    [cursor] = parse_qs(urlsplit(next_link).query)["cursor"]

    response = api(
        "get", "/api/v1/calls", token, data={"sort": "newest", "cursor": cursor}
    )

    assert response.status_code == 400
    assert "sort='caller'" in response.json()["fields"]["cursor"][0]


# --- what the review found ------------------------------------------------------


def test_two_admins_adding_tokens_at_once_are_each_shown_their_own(
    admin_user, listener, rf
):
    from django.contrib import admin

    model_admin = admin.site._registry[ApiToken]
    requests = []
    for owner in (listener, admin_user):  # both saved before either page is made
        request = rf.post("/admin/recordings_app/apitoken/add/")
        request.user = admin_user
        form = model_admin.get_form(request)(
            data={"user": owner.pk, "name": "", "scope": "read", "expires_at": ""}
        )
        assert form.is_valid(), form.errors
        made = form.save(commit=False)
        model_admin.save_model(request, made, form, change=False)
        requests.append((request, made))

    for (request, made), owner in zip(requests, (listener, admin_user), strict=True):
        token = model_admin.response_add(request, made).context_data["token"]
        assert ApiToken.objects.get(pk=made.pk).user == owner
        assert api_token_check(token=token).user == owner


def test_a_revoked_token_stays_revoked_whatever_its_change_form_says(listener):
    staff = grant(
        User.objects.create_user("sam", is_staff=True),
        "change_apitoken",
        "view_apitoken",
    )
    api_token, token = api_token_create(user=staff, scope="read")
    api_token_revoke(api_token=api_token)

    admin_of(staff).post(
        f"/admin/recordings_app/apitoken/{api_token.pk}/change/",
        {"name": "renamed", "revoked_at_0": "", "revoked_at_1": "", "expires_at_0": ""},
    )

    api_token.refresh_from_db()
    assert api_token.name == "renamed" and api_token.revoked_at is not None
    assert api("get", "/api/v1/calls", token).status_code == 401


def test_token_requests_make_no_session(listener):
    from django.contrib.sessions.models import Session

    token = token_of(listener)
    answers = [api("get", "/api/v1/calls", token) for _ in range(3)]

    assert all(a.status_code == 200 and "sessionid" not in a.cookies for a in answers)
    assert not Session.objects.exists()


def test_a_token_is_starred_on_the_debug_error_page(rf):
    from recordings_app.safe_errors import CredentialsHidingFilter

    request = rf.get("/api/v1/calls", HTTP_AUTHORIZATION="Bearer crt_abc_secret")

    meta = CredentialsHidingFilter().get_safe_request_meta(request)

    assert "secret" not in str(meta["HTTP_AUTHORIZATION"])


def test_a_made_up_forwarded_for_does_not_escape_the_rate(monkeypatch, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]  # our proxy adds the client's address
    monkeypatch.setattr(PerTokenThrottle, "THROTTLE_RATES", {"token": "3/minute"})
    monkeypatch.setattr(PerTokenThrottle, "cache", LocMemCache("fresh", {}))

    answers = [
        Client()
        .get("/api/v1/", headers={"X-Forwarded-For": f"1.2.3.{n}, 198.51.100.7"})
        .status_code
        for n in range(4)
    ]

    assert answers == [200, 200, 200, 429]


def test_reading_a_call_with_head_is_not_a_view(listener, settings):
    call, _ = recorded_call(1, settings)

    response = api("head", f"/api/v1/calls/{call.pk}", token_of(listener))

    assert response.status_code == 200
    assert not AccessLogEntry.objects.filter(action="view").exists()


def test_audio_read_with_another_token_or_from_elsewhere_is_logged_again(
    listener, settings
):
    _, recording = recorded_call(1, settings)
    path = f"/api/v1/recordings/{recording.pk}/audio.wav"
    crm, leaked = token_of(listener), token_of(listener)

    for token, address in (
        (crm, "192.0.2.10"),
        (crm, "192.0.2.10"),
        (leaked, "203.0.113.66"),
    ):
        assert api("get", path, token, REMOTE_ADDR=address).status_code == 200

    logged = AccessLogEntry.objects.filter(action="download").order_by("id")
    assert [(e.ip_address, e.detail["token"]) for e in logged] == [
        ("192.0.2.10", ApiToken.objects.order_by("id")[0].prefix),
        ("203.0.113.66", ApiToken.objects.order_by("id")[1].prefix),
    ]


def test_a_range_past_the_end_is_a_json_416(listener, settings):
    _, recording = recorded_call(1, settings)

    response = api(
        "get",
        f"/api/v1/recordings/{recording.pk}/audio.wav",
        token_of(listener),
        HTTP_RANGE=f"bytes={recording.size_bytes}-",
    )

    assert response.status_code == 416
    assert response.json()["code"] == "range_not_satisfiable"
    assert response["Content-Range"] == f"bytes */{recording.size_bytes}"
