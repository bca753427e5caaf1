from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from recordings_app.models import Call, CallEvent, LiveSocket, Recording
from recordings_app.services import access, holds

from .helpers import make_call, record

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def recordings(settings) -> list[Recording]:
    return [
        record(make_call(n), b"\x01\x02" * 3200, settings.SPOOL_DIR) for n in range(3)
    ]


def test_call_list_searches_by_number_and_uuid(admin_client, recordings):
    url = reverse("admin:recordings_app_call_changelist")

    by_number = admin_client.get(url, {"q": "447700100001"}).content.decode()
    by_uuid = admin_client.get(url, {"q": recordings[2].call.uuid}).content.decode()

    assert "447700100001" in by_number and "447700100002" not in by_number
    assert "447700100002" in by_uuid and "447700100001" not in by_uuid


def test_call_list_filters_by_status(admin_client, recordings):
    Call.objects.filter(pk=recordings[0].call_id).update(status="failed")
    url = reverse("admin:recordings_app_call_changelist")

    page = admin_client.get(url, {"status": "failed"}).content.decode()

    assert "447700100000" in page and "447700100001" not in page


def test_call_page_has_an_inline_player_for_each_recording(admin_client, recordings):
    call = recordings[0].call

    page = admin_client.get(
        reverse("admin:recordings_app_call_change", args=[call.pk])
    ).content.decode()

    # A button that makes the <audio> when pressed (admin.js), and its length.
    assert (
        f'<span class="admin-player" data-src="{recordings[0].get_absolute_url()}"'
        in page
    )
    assert "<audio" not in page and "recordings_app/admin.js" in page


def test_recording_and_event_lists_render(admin_client, recordings):
    CallEvent.objects.create(
        call=recordings[0].call,
        source="webhook",
        status="ringing",
        payload={},
        fingerprint="x",
    )
    recording_page = admin_client.get(
        reverse("admin:recordings_app_recording_changelist")
    ).content.decode()
    event_page = admin_client.get(
        reverse("admin:recordings_app_callevent_changelist"), {"q": "447700100000"}
    ).content.decode()

    assert recording_page.count('class="admin-player"') == 3
    assert "<audio" not in recording_page  # none fetched until one is played
    assert "ringing" in event_page


def test_deleting_one_recording_deletes_its_file(admin_client, recordings):
    recording = recordings[0]
    name = recording.file.name
    assert default_storage.exists(name)

    response = admin_client.post(
        reverse("admin:recordings_app_recording_delete", args=[recording.pk]),
        {"post": "yes"},
    )

    assert response.status_code == 302
    assert not Recording.objects.filter(pk=recording.pk).exists()
    assert not default_storage.exists(name)
    assert default_storage.exists(recordings[1].file.name)


def test_bulk_delete_of_recordings_deletes_every_file(admin_client, recordings):
    names = [recording.file.name for recording in recordings]

    response = admin_client.post(
        reverse("admin:recordings_app_recording_changelist"),
        {
            "action": "delete_selected",
            ACTION_CHECKBOX_NAME: [recording.pk for recording in recordings],
            "post": "yes",
        },
    )

    assert response.status_code == 302
    assert not Recording.objects.exists()
    assert not any(default_storage.exists(name) for name in names)


def test_deleting_a_call_deletes_its_recording_files(admin_client, recordings):
    call = recordings[0].call
    name = recordings[0].file.name

    admin_client.post(
        reverse("admin:recordings_app_call_delete", args=[call.pk]), {"post": "yes"}
    )

    assert not Call.objects.filter(pk=call.pk).exists()
    assert not default_storage.exists(name)


@pytest.fixture
def held(recordings, admin_user) -> Recording:
    """The first recording, its call on legal hold."""
    holds.legal_hold_set(call=recordings[0].call, on=True, by=admin_user)
    return recordings[0]


def refused(response, recording: Recording) -> bool:
    """The admin said why, and neither the row nor the file went."""
    return (
        "Not deleted:" in response.content.decode()
        and "on legal hold" in response.content.decode()
        and Recording.objects.filter(pk=recording.pk).exists()
        and default_storage.exists(recording.file.name)
    )


def test_deleting_a_held_calls_recording_is_refused(admin_client, held):
    response = admin_client.post(
        reverse("admin:recordings_app_recording_delete", args=[held.pk]),
        {"post": "yes"},
        follow=True,
    )

    assert refused(response, held)


def test_bulk_deleting_recordings_refuses_when_one_is_held(
    admin_client, held, recordings
):
    response = admin_client.post(
        reverse("admin:recordings_app_recording_changelist"),
        {
            "action": "delete_selected",
            ACTION_CHECKBOX_NAME: [recording.pk for recording in recordings],
            "post": "yes",
        },
        follow=True,
    )

    assert refused(response, held)
    assert Recording.objects.count() == 3


def test_deleting_a_held_call_is_refused(admin_client, held):
    response = admin_client.post(
        reverse("admin:recordings_app_call_delete", args=[held.call_id]),
        {"post": "yes"},
        follow=True,
    )

    assert refused(response, held)
    assert Call.objects.filter(pk=held.call_id).exists()


def test_bulk_deleting_calls_refuses_when_one_is_held(admin_client, held):
    response = admin_client.post(
        reverse("admin:recordings_app_call_changelist"),
        {
            "action": "delete_selected",
            ACTION_CHECKBOX_NAME: list(Call.objects.values_list("pk", flat=True)),
            "post": "yes",
        },
        follow=True,
    )

    assert refused(response, held)
    assert Call.objects.count() == 3


def test_the_service_refuses_too_whatever_the_caller(held, admin_user):
    with pytest.raises(holds.CallOnLegalHold):
        holds.call_delete(call=held.call, user=admin_user, ip_address=None)

    assert Recording.objects.filter(pk=held.pk).exists()


def test_admin_actions_place_and_release_legal_hold(admin_client, recordings):
    url = reverse("admin:recordings_app_call_changelist")
    chosen = [recordings[0].call_id, recordings[1].call_id]

    placed = admin_client.post(
        url,
        {"action": "place_legal_hold", ACTION_CHECKBOX_NAME: chosen},
        follow=True,
    ).content.decode()

    assert "2 call(s) placed on legal hold." in placed
    assert set(
        Call.objects.filter(legal_hold=True).values_list("pk", flat=True)
    ) == set(chosen)
    assert CallEvent.objects.filter(status="legal-hold:on").count() == 2
    filtered = admin_client.get(url, {"legal_hold__exact": "1"}).content.decode()
    assert "447700100000" in filtered and "447700100002" not in filtered

    released = admin_client.post(
        url,
        {"action": "release_legal_hold", ACTION_CHECKBOX_NAME: chosen[:1]},
        follow=True,
    ).content.decode()

    assert "Legal hold released on 1 call(s)." in released
    assert list(Call.objects.filter(legal_hold=True)) == [recordings[1].call]


def test_staff_can_end_a_stale_live_row(admin_client, recordings):
    call = recordings[0].call
    live_socket = LiveSocket.objects.create(
        call=call, channel_name="specific.gone!1", spool_name="x.wav", sample_rate=16000
    )
    listed = admin_client.get(reverse("admin:recordings_app_livesocket_changelist"))
    assert call.from_number in listed.content.decode()

    admin_client.post(
        reverse("admin:recordings_app_livesocket_delete", args=[live_socket.pk]),
        {"post": "yes"},
    )

    assert not LiveSocket.objects.exists()
    page = admin_client.get(reverse("recordings:call_list")).content.decode()
    live_part, finished_part = page.split('class="filters"')
    assert f'data-call-id="{call.pk}"' not in live_part  # no longer "in progress"
    assert f'data-call-id="{call.pk}"' in finished_part


def fill_every_list(recordings: list[Recording], user, *, hours_ago: int = 3) -> None:
    """Rows in each changelist, each written after an older one: the newest
    is the last written, and the lists put it first."""
    now = timezone.now()
    for n, recording in enumerate(recordings):
        started = now - timedelta(hours=hours_ago - n)
        Recording.objects.filter(pk=recording.pk).update(started_at=started)
        Call.objects.filter(pk=recording.call_id).update(started_at=started)
        CallEvent.objects.create(
            call=recording.call,
            source="webhook",
            status="answered",
            timestamp=started,
            payload={},
            fingerprint="answered",
        )
        LiveSocket.objects.create(
            call=recording.call,
            channel_name=f"live-{recording.pk}",
            spool_name=f"live-{recording.pk}.wav",
            sample_rate=16000,
            started_at=started,
        )
        access.access_log_append(
            action="play", user=user, ip_address=None, recording=recording
        )


@pytest.fixture
def every_list(recordings, admin_user) -> None:
    fill_every_list(recordings, admin_user)


CHANGELISTS = ["recording", "call", "callevent", "livesocket", "accesslogentry"]


def listed(admin_client, model: str) -> list:
    response = admin_client.get(reverse(f"admin:recordings_app_{model}_changelist"))
    return list(response.context["cl"].result_list)


@pytest.mark.parametrize("model", CHANGELISTS)
def test_every_changelist_lists_the_newest_first(admin_client, every_list, model):
    rows = listed(admin_client, model)

    assert len(rows) == 3
    assert [row.pk for row in rows] == sorted((row.pk for row in rows), reverse=True)


@pytest.mark.parametrize("model", CHANGELISTS)
def test_no_changelist_makes_a_query_per_row(
    admin_client, admin_user, every_list, settings, model
):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            admin_client.get(reverse(f"admin:recordings_app_{model}_changelist"))
        return len(captured)

    queries()  # the first request of a session makes a few of its own
    with_three = queries()
    more = [
        record(make_call(n), b"\x01\x02" * 3200, settings.SPOOL_DIR)
        for n in range(3, 6)
    ]
    fill_every_list(more, admin_user, hours_ago=10)

    assert len(listed(admin_client, model)) == 6
    assert queries() == with_three


def test_recordings_and_calls_show_sizes_and_durations_as_people_say_them(
    admin_client, recordings
):
    Call.objects.filter(pk=recordings[0].call_id).update(duration_seconds=3725)
    recording_page = admin_client.get(
        reverse("admin:recordings_app_recording_changelist")
    ).content.decode()
    call_page = admin_client.get(
        reverse("admin:recordings_app_call_changelist")
    ).content.decode()

    assert recordings[0].size_bytes == 6444
    assert '<td class="field-size">6.3\xa0KB</td>' in recording_page
    assert "6444" not in recording_page
    assert '<td class="field-duration">1:02:05</td>' in call_page


def test_the_admin_is_named_for_the_product(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()

    assert '<a href="/admin/">callrecorder</a>' in page
    assert "<title>Calls, recordings and their access log | callrecorder admin" in page
    assert "Django administration" not in page
