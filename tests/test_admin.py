from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.files.storage import default_storage
from django.urls import reverse

from recordings_app.models import Call, CallEvent, Recording

from .test_views import make_call, record

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

    assert (
        f'<audio controls preload="none" src="{recordings[0].get_absolute_url()}">'
        in page
    )


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

    assert recording_page.count("<audio controls") == 3
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
