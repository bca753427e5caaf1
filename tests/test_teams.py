"""Who may do what (issue 14, item 7): a permission per action, teams by line.

A brand-new user sees nothing; is_staff alone grants nothing; a team sees
only its lines' calls, in every place a call shows.
"""

from __future__ import annotations

import importlib
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from recordings_app.models import Call, Line

from .helpers import (
    LISTENER,
    application,
    browser_headers,
    grant,
    ids,
    make_call,
    open_socket,
    pcm,
    record,
    wait_until_live,
)

OURS = "447700900001"
THEIRS = "447700900002"


def call_to(n: int, number: str, settings) -> Call:
    call = make_call(n)
    Call.objects.filter(pk=call.pk).update(to_number=number)
    call.refresh_from_db()
    record(call, pcm(0.1, 16000), settings.SPOOL_DIR)
    return call


def member_of_team_with(number: str, *codenames: str, name: str = "tina") -> User:
    team = Group.objects.create(name=f"team {number}")
    Line.objects.create(number=number, name="Sales").groups.add(team)
    user = User.objects.create_user(name, password="pw-tina-123456")
    user.groups.add(team)
    return grant(user, *codenames)


def client_of(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def everything_shown(client: Client, call: Call) -> dict[str, int]:
    recording = call.recordings.get()
    urls = {
        "page": call.get_absolute_url(),
        "row": reverse("recordings:call_row", args=[call.pk]),
        "by uuid": reverse("recordings:call_by_uuid", args=[call.uuid]),
        "audio": recording.get_absolute_url(),
        "download": recording.get_download_url(),
    }
    return {name: client.get(url).status_code for name, url in urls.items()}


@pytest.mark.django_db
def test_a_brand_new_user_sees_no_call_anywhere_and_is_told_why(settings):
    call = call_to(1, OURS, settings)
    newcomer = client_of(User.objects.create_user("newcomer"))

    page = newcomer.get(reverse("recordings:call_list")).content.decode()
    assert OURS not in page
    assert "an admin must add you to a team that has a line" in page
    assert set(everything_shown(newcomer, call).values()) == {404}


@pytest.mark.django_db
def test_a_team_sees_its_lines_calls_only(settings):
    ours, theirs = call_to(1, OURS, settings), call_to(2, THEIRS, settings)
    member = client_of(member_of_team_with(OURS, "play_recording"))

    page = member.get(reverse("recordings:call_list")).content.decode()
    assert f'data-call-id="{ours.pk}"' in page
    assert f'data-call-id="{theirs.pk}"' not in page
    assert set(everything_shown(member, ours).values()) == {200, 302}
    assert set(everything_shown(member, theirs).values()) == {404}


@pytest.mark.django_db
def test_seeing_a_call_is_not_playing_it(settings):
    ours = call_to(1, OURS, settings)
    member = client_of(member_of_team_with(OURS))

    shown = everything_shown(member, ours)
    assert shown["page"] == 200
    assert (shown["audio"], shown["download"]) == (403, 403)
    page = member.get(ours.get_absolute_url()).content.decode()
    assert "<audio" not in page
    assert "not play its recordings" in page


@pytest.mark.django_db
def test_staff_without_permissions_may_do_nothing(settings):
    call = call_to(1, OURS, settings)
    clerk = client_of(User.objects.create_user("clerk", is_staff=True))

    assert set(everything_shown(clerk, call).values()) == {404}
    seer = User.objects.create_user("seer", is_staff=True)
    seer = client_of(grant(seer, "view_all_calls"))
    recording = call.recordings.get()
    actions = {
        "play": seer.get(recording.get_absolute_url()),
        "delete": seer.post(
            reverse("recordings:recording_delete", args=[recording.pk])
        ),
        "hold": seer.post(
            reverse("recordings:call_legal_hold", args=[call.pk]), {"action": "on"}
        ),
        "pause": seer.post(
            reverse("recordings:call_pause", args=[call.pk]), {"action": "pause"}
        ),
    }
    assert {name: r.status_code for name, r in actions.items()} == dict.fromkeys(
        actions, 403
    )
    call.refresh_from_db()
    assert not call.legal_hold and call.recordings.exists()


@pytest.mark.django_db
def test_the_admin_lists_only_the_teams_calls(settings):
    ours, theirs = call_to(1, OURS, settings), call_to(2, THEIRS, settings)
    staff = member_of_team_with(OURS, "view_call", "view_recording")
    staff.is_staff = True
    staff.save()
    admin = client_of(staff)

    calls = admin.get(reverse("admin:recordings_app_call_changelist"))
    recordings = admin.get(reverse("admin:recordings_app_recording_changelist"))
    assert calls.context["cl"].result_count == 1
    assert [c.pk for c in calls.context["cl"].result_list] == [ours.pk]
    assert [r.call_id for r in recordings.context["cl"].result_list] == [ours.pk]
    other = admin.get(reverse("admin:recordings_app_call_change", args=[theirs.pk]))
    assert other.status_code == 302  # "doesn't exist", back to the list


@database_sync_to_async
def team_member_cookie() -> bytes:
    user = member_of_team_with(OURS, "listen_live")
    client = client_of(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@database_sync_to_async
def live_call(n: int, number: str) -> Call:
    return Call.objects.create(
        uuid=ids(n)["uuid"],
        conversation_uuid=ids(n)["conversation_uuid"],
        from_number="447700900777",
        to_number=number,
        status="answered",
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_async_orm_connections")
async def test_a_teams_dashboard_and_listen_in_hear_only_its_lines_calls():
    cookie = await team_member_cookie()
    dashboard = WebsocketCommunicator(
        application, "/ws/calls", headers=browser_headers(cookie)
    )
    await dashboard.connect()
    assert json.loads(await dashboard.receive_from(timeout=5))["calls"] == []

    theirs = await live_call(2, THEIRS)
    their_socket = await open_socket(2)
    await wait_until_live(2)
    ours = await live_call(1, OURS)
    our_socket = await open_socket(1)
    await wait_until_live(1)
    started = []
    while len(started) < 1:
        message = json.loads(await dashboard.receive_from(timeout=5))
        if message["event"] == "started":
            started.append(message["call"]["id"])
        if message["event"] == "levels":
            assert str(theirs.pk) not in message["levels"]
    assert started == [ours.pk]

    for call, expected in ((ours, "sample_rate"), (theirs, 4404)):
        listener = WebsocketCommunicator(
            application,
            f"/ws/calls/{call.pk}/listen",
            headers=browser_headers(cookie),
        )
        await listener.connect()
        output = await listener.receive_output(timeout=5)
        if expected == 4404:
            assert (output["type"], output["code"]) == ("websocket.close", 4404)
        else:
            assert expected in output["text"]
        await listener.disconnect()
    for socket in (our_socket, their_socket):
        await socket.disconnect()
    await dashboard.disconnect()


@pytest.mark.django_db
def test_users_there_before_the_upgrade_keep_what_they_could_do():
    migration = importlib.import_module(
        "recordings_app.migrations.0010_keep_existing_users_access"
    )
    listener = User.objects.create_user("old-listener")
    staff = User.objects.create_user("old-staff", is_staff=True)
    from django.apps import apps

    migration.keep_access(apps, None)

    listener = User.objects.get(pk=listener.pk)
    staff = User.objects.get(pk=staff.pk)
    assert listener.has_perm("recordings_app.view_all_calls")
    assert listener.has_perm("recordings_app.play_recording")
    assert not listener.has_perm("recordings_app.listen_live")
    assert staff.has_perm("recordings_app.pause_recording")
    assert not staff.has_perm("recordings_app.set_legal_hold")
    assert set(LISTENER) <= {p.split(".")[1] for p in staff.get_all_permissions()}
