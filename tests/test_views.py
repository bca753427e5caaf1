from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from recordings_app.models import Call, CallEvent, LiveSocket, Recording
from recordings_app.services import holds

from .helpers import LISTENER, body, grant, make_call, record

pytestmark = pytest.mark.django_db


@pytest.fixture
def audio() -> bytes:
    return random.Random(3).randbytes(16000 * 2 * 2)  # two seconds


@pytest.fixture
def recording(settings, audio) -> Recording:
    return record(make_call(1), audio, settings.SPOOL_DIR)


def test_list_shows_calls_newest_first_with_their_numbers_and_status(user_client):
    now = timezone.now()
    make_call(1, started_at=now - timedelta(hours=2))
    make_call(2, started_at=now - timedelta(minutes=5), duration_seconds=125)

    page = user_client.get(reverse("recordings:call_list")).content.decode()

    assert page.index("447700100002") < page.index("447700100001")
    assert "2:05" in page
    assert "completed" in page


def test_list_is_paginated(user_client, settings):
    settings.CALLRECORDER_CALLS_PER_PAGE = 2
    for n in range(5):
        make_call(n, started_at=timezone.now() - timedelta(minutes=n))

    first = user_client.get(reverse("recordings:call_list")).content.decode()
    last = user_client.get(
        reverse("recordings:call_list"), {"page": 3}
    ).content.decode()

    assert "Page 1 of 3" in first and "447700100000" in first
    assert "447700100004" in last and "447700100000" not in last


def test_list_runs_the_same_few_queries_for_a_full_page(
    user_client, settings, django_assert_max_num_queries
):
    for n in range(25):
        call = make_call(n)
        record(call, b"\x00\x01" * 320, settings.SPOOL_DIR)

    user_client.get(reverse("account_security"))  # sign-in's first use noted
    # session, user, whether they have a second factor, the user's permissions
    # and their groups' (Django's, once), calls in progress, count, the page of
    # calls, their recordings
    with django_assert_max_num_queries(9):
        response = user_client.get(reverse("recordings:call_list"))
    assert response.content.decode().count("1 recording") == 25


def test_detail_page_has_a_player_download_link_and_timeline(user_client, recording):
    call = recording.call
    CallEvent.objects.create(
        call=call, source="webhook", status="ringing", payload={}, fingerprint="a"
    )
    CallEvent.objects.create(
        call=call,
        source="socket",
        status="websocket:dtmf",
        payload={"digit": "7"},
        fingerprint="b",
    )

    page = user_client.get(call.get_absolute_url()).content.decode()

    assert (
        f'<audio controls preload="metadata" src="{recording.get_absolute_url()}"'
        in page
    )
    assert f'href="{recording.get_download_url()}"' in page
    assert "<td>Ringing</td>" in page
    assert "<td>Key pressed: 7</td>" in page
    assert "0:02.0" in page  # the recording's length, to the tenth


def test_detail_of_a_call_without_audio_says_so(user_client):
    call = make_call(1)

    page = user_client.get(call.get_absolute_url()).content.decode()

    assert "No audio was recorded for this call." in page


def test_unknown_call_is_404(user_client):
    assert (
        user_client.get(reverse("recordings:call_detail", args=[999])).status_code
        == 404
    )


def test_media_serves_the_whole_wav_and_advertises_ranges(
    user_client, recording, audio
):
    response = user_client.get(recording.get_absolute_url())

    assert response.status_code == 200
    assert response["Content-Type"] == "audio/wav"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(len(audio) + 44)
    data = body(response)
    assert data[:4] == b"RIFF" and data[44:] == audio
    assert response["Content-Disposition"].startswith("inline")


def test_media_answers_a_seek_with_206_and_just_those_bytes(
    user_client, recording, audio
):
    middle = 44 + len(audio) // 2

    response = user_client.get(
        recording.get_absolute_url(), headers={"Range": f"bytes={middle}-"}
    )

    assert response.status_code == 206
    total = len(audio) + 44
    assert response["Content-Range"] == f"bytes {middle}-{total - 1}/{total}"
    assert response["Content-Length"] == str(total - middle)
    assert body(response) == audio[len(audio) // 2 :]


def test_media_answers_a_bounded_range(user_client, recording, audio):
    response = user_client.get(
        recording.get_absolute_url(), headers={"Range": "bytes=44-143"}
    )

    assert response.status_code == 206
    assert body(response) == audio[:100]


def test_media_range_past_the_end_is_416(user_client, recording, audio):
    response = user_client.get(
        recording.get_absolute_url(), headers={"Range": f"bytes={len(audio) + 44}-"}
    )

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(audio) + 44}"


def test_download_gives_the_same_bytes_as_an_attachment(user_client, recording):
    played = body(user_client.get(recording.get_absolute_url()))

    response = user_client.get(recording.get_download_url())

    assert response["Content-Disposition"].startswith("attachment")
    assert ".wav" in response["Content-Disposition"]
    assert body(response) == played


def test_head_request_gives_headers_only(user_client, recording, audio):
    response = user_client.head(recording.get_absolute_url())

    assert response.status_code == 200
    assert response["Content-Length"] == str(len(audio) + 44)
    assert response.content == b""


def test_media_of_an_unknown_recording_is_404(user_client):
    response = user_client.get(reverse("recordings:recording_media", args=[999]))

    assert response.status_code == 404


def test_detail_shows_each_recordings_integrity(user_client, recording):
    page = user_client.get(recording.call.get_absolute_url()).content.decode()

    assert recording.sha256 in page
    assert len(recording.sha256) == 64
    assert f"{recording.frame_count} received" in page
    assert "Odd-byte carries" in page


def test_completeness_is_given_only_against_a_length_that_holds_the_audio(
    user_client, recording
):
    url = recording.call.get_absolute_url()
    Recording.objects.filter(pk=recording.pk).update(
        frame_count=490, expected_frame_count=500
    )
    assert "490 received of 500 expected" in user_client.get(url).content.decode()

    # Streamed faster than real time (a simulator): no "627 of 1 (100%)".
    Recording.objects.filter(pk=recording.pk).update(
        frame_count=627, expected_frame_count=1
    )
    page = user_client.get(url).content.decode()
    assert "of 1 expected" not in page
    assert "627 received, more than the call's length holds" in page


def test_the_stored_sha256_is_the_downloaded_files(user_client, recording):
    import hashlib

    downloaded = body(user_client.get(recording.get_download_url()))

    assert hashlib.sha256(downloaded).hexdigest() == recording.sha256


@pytest.fixture
def three_calls():
    now = timezone.now()
    return [
        make_call(1, started_at=now - timedelta(days=10), duration_seconds=30),
        make_call(2, started_at=now - timedelta(days=2), duration_seconds=300),
        make_call(3, started_at=now, duration_seconds=5),
    ]


def listed(user_client, **params) -> str:
    return user_client.get(reverse("recordings:call_list"), params).content.decode()


def shown(page: str) -> list[int]:
    return [n for n in (1, 2, 3) if f"44770010000{n}" in page]


def test_search_by_part_of_a_number(user_client, three_calls):
    assert shown(listed(user_client, q="100002")) == [2]


def test_search_by_the_start_of_a_call_uuid(user_client, three_calls):
    assert shown(listed(user_client, q="AAAAAAAA-0000-0000-0000-000000000003")) == [3]


def test_filter_by_date_range(user_client, three_calls):
    since = (timezone.now() - timedelta(days=3)).date().isoformat()
    until = (timezone.now() - timedelta(days=1)).date().isoformat()

    page = listed(user_client, since=since, until=until)

    assert shown(page) == [2]
    assert f'value="{since}"' in page  # the form keeps what was asked


def test_filter_by_status(user_client, three_calls):
    Call.objects.filter(pk=three_calls[0].pk).update(status="failed")

    assert shown(listed(user_client, status="failed")) == [1]


def test_sort_longest_first(user_client, three_calls):
    page = listed(user_client, sort="longest")

    assert (
        page.index("447700100002")
        < page.index("447700100001")
        < page.index("447700100003")
    )


def test_filters_are_kept_across_pages(user_client, settings):
    settings.CALLRECORDER_CALLS_PER_PAGE = 2
    for n in range(5):
        make_call(n, started_at=timezone.now() - timedelta(minutes=n))

    page = listed(user_client, q="4477001", status="completed")

    assert 'href="?q=4477001&amp;status=completed&amp;page=2"' in page


def test_a_bad_date_is_explained_and_filters_nothing(user_client, three_calls):
    page = listed(user_client, since="yesterday")

    assert "Enter a valid date." in page
    assert shown(page) == [1, 2, 3]


def test_from_after_to_is_explained(user_client, three_calls):
    page = listed(user_client, since="2026-02-02", until="2026-01-01")

    assert "is after the" in page


def test_no_match_says_so(user_client, three_calls):
    assert "No calls match." in listed(user_client, q="999999")


def test_a_filtered_page_runs_the_same_few_queries(
    user_client, settings, django_assert_max_num_queries
):
    for n in range(25):
        record(make_call(n), b"\x00\x01" * 320, settings.SPOOL_DIR)

    user_client.get(reverse("account_security"))  # sign-in's first use noted
    with django_assert_max_num_queries(9):  # as the full page
        page = listed(user_client, q="4477001", status="completed", sort="caller")
    assert page.count('class="play"') == 25


def hold(call: Call, admin_user) -> Call:
    holds.legal_hold_set(call=call, on=True, by=admin_user)
    return call


def test_staff_place_a_call_on_legal_hold_and_everyone_sees_the_badge(
    admin_client, user_client, recording
):
    call = recording.call

    response = admin_client.post(
        reverse("recordings:call_legal_hold", args=[call.pk]),
        {"action": "on"},
        follow=True,
    )

    page = response.content.decode()
    assert response.redirect_chain[-1][0] == call.get_absolute_url()
    assert "This call is on legal hold" in page  # the message
    assert "— kept whatever the retention (set by admin on " in page
    assert "Release legal hold" in page
    event = call.events.get(status="legal-hold:on")
    assert (event.source, event.payload) == ("staff", {"by": "admin"})
    listener_page = user_client.get(call.get_absolute_url()).content.decode()
    assert "kept whatever the retention (set by admin" in listener_page
    assert "Release legal hold" not in listener_page


def test_staff_release_a_legal_hold(admin_client, admin_user, recording):
    call = hold(recording.call, admin_user)

    page = admin_client.post(
        reverse("recordings:call_legal_hold", args=[call.pk]),
        {"action": "off"},
        follow=True,
    ).content.decode()

    assert "Legal hold released" in page
    assert "kept whatever the retention (set by" not in page
    assert "Place on legal hold" in page
    call.refresh_from_db()
    assert not call.legal_hold and call.events.filter(status="legal-hold:off")


def test_only_staff_may_place_a_legal_hold(user_client, recording):
    url = reverse("recordings:call_legal_hold", args=[recording.call_id])

    response = user_client.post(url, {"action": "on"})

    assert response.status_code == 403
    assert not Call.objects.get(pk=recording.call_id).legal_hold
    page = user_client.get(recording.call.get_absolute_url()).content.decode()
    assert "Place on legal hold" not in page


@pytest.mark.parametrize("action", ["on", "off"])
def test_staff_who_may_not_set_legal_holds_cannot_place_or_release_one(
    client, django_user_model, admin_user, recording, action
):
    call = recording.call
    if action == "off":
        hold(call, admin_user)
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    client.force_login(grant(clerk, *LISTENER, "change_call"))

    response = client.post(
        reverse("recordings:call_legal_hold", args=[call.pk]), {"action": action}
    )

    assert response.status_code == 403
    assert Call.objects.get(pk=call.pk).legal_hold == (action == "off")
    page = client.get(call.get_absolute_url()).content.decode()
    assert "Place on legal hold" not in page
    assert "Release legal hold" not in page


def test_who_may_set_legal_holds_sees_the_legal_hold_toggle(
    client, django_user_model, recording
):
    clerk = django_user_model.objects.create_user("clerk")
    client.force_login(grant(clerk, *LISTENER, "set_legal_hold"))

    page = client.get(recording.call.get_absolute_url()).content.decode()
    assert "Place on legal hold" in page
    client.post(
        reverse("recordings:call_legal_hold", args=[recording.call_id]),
        {"action": "on"},
    )
    assert Call.objects.get(pk=recording.call_id).legal_hold


def test_legal_hold_needs_a_login_a_post_and_the_csrf_token(
    client, admin_user, recording
):
    url = reverse("recordings:call_legal_hold", args=[recording.call_id])
    assert client.post(url, {"action": "on"})["Location"].startswith("/accounts/")

    client.force_login(admin_user)
    assert client.get(url).status_code == 405
    client.handler.enforce_csrf_checks = True
    assert client.post(url, {"action": "on"}).status_code == 403
    assert not Call.objects.get(pk=recording.call_id).legal_hold


def test_deleting_a_recording_of_a_held_call_is_refused(
    admin_client, admin_user, recording
):
    hold(recording.call, admin_user)

    page = admin_client.post(
        reverse("recordings:recording_delete", args=[recording.pk]), follow=True
    ).content.decode()

    assert "Not deleted. This call is on legal hold" in page
    assert Recording.objects.filter(pk=recording.pk).exists()
    assert recording.file.storage.exists(recording.file.name)


def test_the_list_marks_calls_on_legal_hold(user_client, admin_user, three_calls):
    hold(three_calls[1], admin_user)

    rows = listed(user_client).split("<tr>")

    held = [row for row in rows if 'class="badge legal-hold"' in row]
    assert len(held) == 1 and "447700100002" in held[0]


def test_date_filter_days_are_the_sites_local_days(user_client, settings):
    settings.TIME_ZONE = "America/New_York"
    late_evening = datetime(2026, 3, 10, 23, 30, tzinfo=ZoneInfo("America/New_York"))
    make_call(1, started_at=late_evening)  # already 11 March in UTC

    assert shown(listed(user_client, since="2026-03-10", until="2026-03-10")) == [1]
    assert shown(listed(user_client, since="2026-03-11")) == []


def test_a_call_in_progress_is_listed_as_live_not_among_finished_calls(user_client):
    live = make_call(1)
    make_call(2)
    LiveSocket.objects.create(
        call=live, channel_name="c", spool_name="s.wav", sample_rate=16000
    )

    page = listed(user_client)
    finished = page.split('id="live-row-template"')[1]

    assert "447700100001" in page.split('id="live-row-template"')[0]
    assert "447700100001" not in finished and "447700100002" in finished
    assert "1 call" in finished and "2 calls" not in finished


def test_each_finished_row_names_its_call_so_the_live_list_adds_it_once(
    user_client,
):
    """The live list's script checks this before adding a call that just ended."""
    calls = [make_call(1), make_call(2)]

    finished = listed(user_client).split('id="live-row-template"')[1]
    row = user_client.get(reverse("recordings:call_row", args=[calls[0].pk]))

    for call in calls:
        assert finished.count(f'<tr data-call-id="{call.pk}">') == 1
    assert row.content.decode().strip().startswith(f'<tr data-call-id="{calls[0].pk}">')


def event_at(recording: Recording, seconds: float, status: str, **payload) -> CallEvent:
    return CallEvent.objects.create(
        call=recording.call,
        source="staff" if status.startswith("recording:") else "socket",
        status=status,
        timestamp=Recording.objects.get(pk=recording.pk).started_at
        + timedelta(seconds=seconds),
        payload=payload,
        fingerprint=f"{status}:{seconds}:{payload}",
    )


def test_detail_draws_the_stored_waveform_and_offers_speeds(user_client, recording):
    Recording.objects.filter(pk=recording.pk).update(peaks=[0, 500, 1000])

    page = user_client.get(recording.call.get_absolute_url()).content.decode()

    assert '<script type="application/json">[0, 500, 1000]</script>' in page
    assert 'role="slider"' in page and 'aria-label="Position in recording 1"' in page
    assert 'aria-valuetext="0:00.0 of 0:02.0"' in page
    for speed in ("0.75", "1", "1.25", "1.5", "2"):
        assert f'<option value="{speed}"' in page
    assert "16000 Hz" in page


def test_events_are_timed_from_the_start_of_the_recording(user_client, recording):
    event_at(recording, 1.2, "websocket:dtmf", digit="5", duration=260)
    event_at(recording, 1.6, "recording:paused", by="sam")
    event_at(recording, -3, "answered")  # before the audio began

    response = user_client.get(recording.call.get_absolute_url())

    [panel] = response.context["panels"]
    markers = {m.entry.event.status: m for m in panel.markers}
    assert markers["websocket:dtmf"].seconds == 1.2
    assert markers["websocket:dtmf"].percent == 60.0
    assert markers["answered"].seconds == 0  # drawn at the start
    page = response.content.decode()
    assert 'aria-label="Key pressed: 5 at 0:01.2: play from here"' in page
    assert 'aria-label="Paused by sam at 0:01.6: play from here"' in page
    assert "−0:03.0" in page  # the table keeps the true offset


def test_paused_silence_and_ending_paused_are_said(user_client, recording):
    Recording.objects.filter(pk=recording.pk).update(
        paused_seconds=12.0, ended_paused=True
    )

    page = user_client.get(recording.call.get_absolute_url()).content.decode()

    assert "12 s paused (silence)" in page
    assert "the call ended while recording was paused" in page


def test_detail_runs_the_same_few_queries_however_many_recordings_and_events(
    user_client, settings, django_assert_max_num_queries
):
    call = make_call(1)
    recordings = [
        record(call, b"\x00\x01" * 3200, settings.SPOOL_DIR) for _ in range(5)
    ]
    for n in range(20):
        event_at(recordings[n % 5], 0.05, "websocket:dtmf", digit=str(n % 10), n=n)

    # Sign-in's first use noted, and this user's view of the call logged.
    user_client.get(call.get_absolute_url())
    # session, user, their second factor, the user's and their groups'
    # permissions, call, its recordings, its events, its live socket, the
    # access log's "viewed within the window"
    with django_assert_max_num_queries(10):
        response = user_client.get(call.get_absolute_url())
    assert response.content.decode().count('aria-label="Key pressed:') == 20


def test_without_script_staff_confirm_a_delete_on_a_page_of_its_own(
    admin_client, recording
):
    url = reverse("recordings:recording_delete", args=[recording.pk])

    page = admin_client.get(url).content.decode()

    assert "Delete this recording?" in page
    assert f'href="{recording.call.get_absolute_url()}">Cancel</a>' in page
    assert Recording.objects.filter(pk=recording.pk).exists()


def test_a_listener_gets_no_delete_confirmation(user_client, recording):
    url = reverse("recordings:recording_delete", args=[recording.pk])

    assert user_client.get(url).status_code == 403
