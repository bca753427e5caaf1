"""Signing in (issue 14, item 6): lockouts, a second factor, idle sessions.

Every sign-in here goes through the real form, as a browser's would, so
django-axes counts it; codes come from the secret the setup page shows,
as an authenticator app would compute them.
"""

from __future__ import annotations

import re
from base64 import b32decode
from datetime import timedelta

import pytest
import time_machine
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from recordings_app.live import events as live_events

from .helpers import (
    LISTENER,
    SUPERVISOR,
    close_code,
    grant,
    next_event,
    open_dashboard,
)

pytestmark = pytest.mark.django_db

PASSWORD = "pw-right-horse-battery"


@pytest.fixture(autouse=True)
def _fast_hashes(settings):
    """A wrong password costs a full hash; hundreds of them would take minutes."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def person(name: str, *codenames: str, staff: bool = False) -> User:
    user = User.objects.create_user(name, password=PASSWORD, is_staff=staff)
    return grant(user, *codenames)


def sign_in(client: Client, name: str, password: str = PASSWORD, **extra):
    return client.post(
        reverse("login"), {"username": name, "password": password}, **extra
    )


def signed_in_as(client: Client) -> str | None:
    """Who the list page says is signed in; None when it sends to sign-in."""
    response = client.get(reverse("recordings:call_list"))
    if response.status_code != 200:
        return None
    return response.wsgi_request.user.get_username()


def from_address(address: str, forwarded_for: str | None = None) -> dict:
    extra = {"REMOTE_ADDR": address}
    if forwarded_for:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return extra


# --- lockouts (django-axes) -------------------------------------------------


def test_two_hundred_wrong_passwords_then_the_right_one_does_not_sign_in():
    person("alice", *LISTENER)
    client = Client()

    answers = [sign_in(client, "alice", f"guess-{n}").status_code for n in range(200)]
    right = sign_in(client, "alice")

    assert answers[:9] == [200] * 9  # the form again, "wrong password"
    assert set(answers[10:]) == {429}
    assert right.status_code == 429
    page = right.content.decode()
    assert "Too many failed sign-ins for this user name or from this address" in page
    assert "15 minutes" in page and "ask an administrator" in page
    assert signed_in_as(client) is None


def test_one_address_guessing_many_names_is_locked_out_but_not_others():
    person("alice", *LISTENER)
    attacker = Client()
    for n in range(10):
        sign_in(attacker, f"user{n}", "guess", **from_address("10.0.0.5"))

    refused = sign_in(attacker, "alice", **from_address("10.0.0.5"))
    elsewhere = Client()
    sign_in(elsewhere, "alice", **from_address("10.0.0.6"))

    assert refused.status_code == 429
    assert signed_in_as(elsewhere) == "alice"


def test_one_name_guessed_from_many_addresses_is_locked_out_everywhere():
    person("alice", *LISTENER)
    person("bob", *LISTENER)
    for n in range(10):
        sign_in(Client(), "alice", "guess", **from_address(f"10.0.1.{n}"))

    alice = sign_in(Client(), "alice", **from_address("10.0.2.1"))
    bob = Client()
    sign_in(bob, "bob", **from_address("10.0.1.1"))

    assert alice.status_code == 429
    assert signed_in_as(bob) == "bob"


def test_a_made_up_forwarded_for_does_not_dodge_the_address_lockout():
    attacker = Client()
    for n in range(10):
        sign_in(
            attacker, f"user{n}", "guess", **from_address("10.0.0.5", f"198.51.100.{n}")
        )
    person("bob", *LISTENER)

    again = sign_in(attacker, "bob", **from_address("10.0.0.5", "198.51.100.99"))

    assert again.status_code == 429


def test_behind_our_proxy_each_client_is_counted_at_its_own_address(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    for n in range(10):
        sign_in(
            Client(), f"user{n}", "guess", **from_address("10.0.0.1", "198.51.100.7")
        )
    person("bob", *LISTENER)

    locked = sign_in(Client(), "bob", **from_address("10.0.0.1", "198.51.100.7"))
    colleague = Client()
    sign_in(colleague, "bob", **from_address("10.0.0.1", "198.51.100.8"))

    assert locked.status_code == 429
    assert signed_in_as(colleague) == "bob"


def test_the_admin_sign_in_is_locked_out_too():
    person("boss", staff=True)
    client = Client()
    for n in range(10):
        client.post(reverse("admin:login"), {"username": "boss", "password": str(n)})

    right = client.post(
        reverse("admin:login"), {"username": "boss", "password": PASSWORD}
    )

    assert right.status_code == 429
    assert client.get(reverse("admin:index")).status_code == 302


def test_a_lockout_ends_by_itself_after_the_lockout_time():
    person("alice", *LISTENER)
    client = Client()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for n in range(10):
            sign_in(client, "alice", f"guess-{n}")
        assert sign_in(client, "alice").status_code == 429
    with time_machine.travel(start + timedelta(minutes=14), tick=False):
        assert sign_in(client, "alice").status_code == 429
    with time_machine.travel(start + timedelta(minutes=14 + 16), tick=False):
        sign_in(client, "alice")
        assert signed_in_as(client) == "alice"


def test_an_admin_unlocks_a_locked_out_user():
    person("alice", *LISTENER)
    for n in range(10):
        sign_in(Client(), "alice", f"guess-{n}")
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", password=PASSWORD))
    users = reverse("admin:auth_user_changelist")
    alice_id = User.objects.get(username="alice").pk

    listed = admin.get(users).content.decode()
    admin.post(users, {"action": "unlock_sign_in", "_selected_action": [alice_id]})
    client = Client()
    sign_in(client, "alice")

    assert "Locked out" in listed
    assert signed_in_as(client) == "alice"


# --- the second factor (django-otp) ---------------------------------------


def code_for(key_text: str, *, at: float | None = None) -> str:
    """What an authenticator app shows for the key the setup page gives."""
    totp = TOTP(b32decode(key_text.replace(" ", "")))
    if at is not None:
        totp.time = at
    return f"{totp.token():06d}"


def key_on(page: str) -> str:
    return re.search(r"<code class=\"key\" data-key>([A-Z2-7 ]+)</code>", page)[1]


def set_up_app(client: Client) -> tuple[str, list[str]]:
    """Go through the setup page: its key, and the recovery codes shown after."""
    page = client.get(reverse("set_up_app")).content.decode()
    key = key_on(page)
    done = client.post(reverse("set_up_app"), {"code": code_for(key)})
    codes = re.findall(
        r"<li><code>([a-z2-7]{4}-[a-z2-7]{4})</code></li>", done.content.decode()
    )
    return key, codes


def test_staff_must_set_up_a_second_factor_before_anything_else(settings):
    settings.CALLRECORDER_REQUIRE_MFA = True
    person("sam", *SUPERVISOR, staff=True)
    client = Client()
    sign_in(client, "sam")

    to_list = client.get(reverse("recordings:call_list"))
    to_admin = client.get(reverse("admin:index"))
    setup = client.get(to_list["Location"])
    wrong = client.post(reverse("set_up_app"), {"code": "000000"})
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        key, codes = set_up_app(client)

    assert to_list.status_code == 302
    assert to_list["Location"].startswith(reverse("set_up_app"))
    assert to_admin["Location"].startswith(reverse("set_up_app"))
    assert 'src="data:image/svg+xml;base64,' in setup.content.decode()
    assert (
        wrong.status_code == 400 and "That code is not right" in wrong.content.decode()
    )
    assert len(codes) == 10 and len(set(codes)) == 10
    assert signed_in_as(client) == "sam"
    assert client.get(reverse("admin:index")).status_code == 200


def test_without_the_requirement_staff_are_not_asked(settings):
    settings.CALLRECORDER_REQUIRE_MFA = False
    person("sam", *SUPERVISOR, staff=True)
    client = Client()
    sign_in(client, "sam")

    assert signed_in_as(client) == "sam"


def test_others_are_not_asked_but_may_turn_it_on_and_then_need_it(settings):
    settings.CALLRECORDER_REQUIRE_MFA = True
    person("lee", *LISTENER)
    client = Client()
    sign_in(client, "lee")
    assert signed_in_as(client) == "lee"
    key, _ = set_up_app(client)

    later = Client()
    sign_in(later, "lee")
    asked = later.get(reverse("recordings:call_list"))
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        later.post(asked["Location"], {"code": code_for(key)})
        assert signed_in_as(later) == "lee"

    assert asked["Location"].startswith(reverse("verify_code"))


def person_with_app(name: str, *codenames: str, staff: bool = False):
    """A user whose app is set up already: their key and recovery codes."""
    user = person(name, *codenames, staff=staff)
    client = Client()
    client.force_login(user)
    key, codes = set_up_app(client)
    return user, key, codes


def test_signing_in_asks_for_the_code_and_goes_on_to_the_page_asked_for():
    _, key, _ = person_with_app("lee", *LISTENER)
    client = Client()
    sign_in(client, "lee")
    wanted = reverse("recordings:call_list") + "?q=4477"

    asked = client.get(wanted)
    password_only = client.cookies["sessionid"].value
    wrong = client.post(asked["Location"], {"code": "123456"})
    assert signed_in_as(client) is None
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        right = client.post(asked["Location"], {"code": code_for(key)})

    assert wrong.status_code == 400
    assert right.status_code == 302 and right["Location"] == wanted
    assert signed_in_as(client) == "lee"
    assert client.cookies["sessionid"].value != password_only  # a new session key


def test_a_code_once_used_is_not_taken_again():
    _, key, _ = person_with_app("lee", *LISTENER)
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        code = code_for(key)
        first, second = Client(), Client()
        sign_in(first, "lee")
        sign_in(second, "lee")
        first.post(reverse("verify_code"), {"code": code})
        replayed = second.post(reverse("verify_code"), {"code": code})

    assert signed_in_as(first) == "lee"
    assert replayed.status_code == 400 and signed_in_as(second) is None


def test_a_recovery_code_signs_in_once():
    _, _, codes = person_with_app("lee", *LISTENER)
    first, second = Client(), Client()
    sign_in(first, "lee")
    sign_in(second, "lee")

    first.post(reverse("verify_code"), {"code": codes[3].upper()})
    again = second.post(reverse("verify_code"), {"code": codes[3]})

    assert signed_in_as(first) == "lee"
    assert again.status_code == 400 and signed_in_as(second) is None


def test_guessing_codes_is_slowed_down():
    _, key, _ = person_with_app("lee", *LISTENER)
    client = Client()
    sign_in(client, "lee")
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        for guess in ("111111", "222222", "333333", "444444"):
            client.post(reverse("verify_code"), {"code": guess})
        right_but_too_soon = client.post(
            reverse("verify_code"), {"code": code_for(key)}
        )

    assert right_but_too_soon.status_code == 400
    assert "Too many wrong codes: wait" in right_but_too_soon.content.decode()
    assert signed_in_as(client) is None


def test_the_second_factor_can_be_turned_off_only_with_a_code(settings):
    settings.CALLRECORDER_REQUIRE_MFA = True
    user, key, codes = person_with_app("lee", *LISTENER)
    client = Client()
    sign_in(client, "lee")
    client.post(reverse("verify_code"), {"code": codes[0]})
    security = reverse("account_security")

    without = client.post(security, {"action": "turn-off", "code": "000000"})
    assert TOTPDevice.objects.filter(user=user).exists()
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        client.post(security, {"action": "turn-off", "code": code_for(key)})

    assert without.status_code == 400
    assert not TOTPDevice.objects.filter(user=user).exists()


def test_staff_who_must_have_it_cannot_turn_it_off(settings):
    settings.CALLRECORDER_REQUIRE_MFA = True
    user, key, _ = person_with_app("sam", *SUPERVISOR, staff=True)
    client = Client()
    sign_in(client, "sam")
    with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
        client.post(reverse("verify_code"), {"code": code_for(key)})
    with time_machine.travel(timezone.now() + timedelta(seconds=61), tick=False):
        page = client.get(reverse("account_security")).content.decode()
        client.post(
            reverse("account_security"), {"action": "turn-off", "code": code_for(key)}
        )

    assert 'value="turn-off"' not in page
    assert TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def test_an_admin_resets_a_lost_phone_and_the_user_sets_up_a_new_app(settings):
    settings.CALLRECORDER_REQUIRE_MFA = True
    user, _, _ = person_with_app("sam", *SUPERVISOR, staff=True)
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", password=PASSWORD))
    settings.CALLRECORDER_REQUIRE_MFA = (
        False  # the admin's own sign-in is not the point
    )
    admin.post(
        reverse("admin:auth_user_changelist"),
        {"action": "reset_second_factor", "_selected_action": [user.pk]},
    )
    settings.CALLRECORDER_REQUIRE_MFA = True
    client = Client()
    sign_in(client, "sam")

    assert not TOTPDevice.objects.filter(user=user).exists()
    assert client.get(reverse("recordings:call_list"))["Location"].startswith(
        reverse("set_up_app")
    )


# --- idle sessions -----------------------------------------------------------


def test_a_session_ends_after_an_hour_unused_and_use_keeps_it(settings):
    assert settings.CALLRECORDER_SESSION_IDLE_MINUTES == 60
    person("lee", *LISTENER)
    client = Client()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        sign_in(client, "lee")
    with time_machine.travel(start + timedelta(minutes=59), tick=False):
        assert signed_in_as(client) == "lee"
    with time_machine.travel(start + timedelta(minutes=59 + 59), tick=False):
        assert signed_in_as(client) == "lee"  # used at 59 minutes: still on
    with time_machine.travel(start + timedelta(minutes=59 + 59 + 61), tick=False):
        assert signed_in_as(client) is None


def test_a_page_polling_on_its_own_does_not_keep_a_session_alive():
    person("lee", *LISTENER)
    client = Client()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        sign_in(client, "lee")
    with time_machine.travel(start + timedelta(minutes=40), tick=False):
        client.get(reverse("recordings:call_list"), HTTP_X_REQUESTED_WITH="fetch")
    with time_machine.travel(start + timedelta(minutes=61), tick=False):
        assert signed_in_as(client) is None


# --- live sockets ------------------------------------------------------------


def session_cookie(client: Client) -> bytes:
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@database_sync_to_async
def half_signed_in_staff() -> tuple[Client, list[str]]:
    """A supervisor who gave the password but not yet the code."""
    _, _, codes = person_with_app("sam", *SUPERVISOR, staff=True)
    client = Client()
    sign_in(client, "sam")
    return client, codes


@pytest.mark.parametrize("required", [True, False])
@pytest.mark.usefixtures("close_async_orm_connections")
@pytest.mark.django_db(transaction=True)
async def test_a_password_without_the_code_opens_no_live_socket(settings, required):
    settings.CALLRECORDER_REQUIRE_MFA = required
    client, codes = await half_signed_in_staff()

    refused = await close_code("/ws/calls", session_cookie(client))
    await database_sync_to_async(client.post)(
        reverse("verify_code"), {"code": codes[0]}
    )
    dashboard = await open_dashboard(session_cookie(client))

    assert refused == 4401
    assert (await next_event(dashboard, "snapshot"))["calls"] == []
    await dashboard.disconnect()


@database_sync_to_async
def signed_in_listener() -> Client:
    person("lee", *LISTENER)
    client = Client()
    sign_in(client, "lee")
    return client


@pytest.mark.usefixtures("close_async_orm_connections")
@pytest.mark.django_db(transaction=True)
async def test_an_open_dashboard_closes_when_its_session_goes_idle(monkeypatch):
    monkeypatch.setattr(live_events, "WATCH_RENEW_SECONDS", 0.1)
    cookie = session_cookie(await signed_in_listener())
    dashboard = await open_dashboard(cookie)
    await next_event(dashboard, "snapshot")

    with time_machine.travel(timezone.now() + timedelta(minutes=61)):
        while (message := await dashboard.receive_output(timeout=2))["type"] != (
            "websocket.close"
        ):
            pass
        reopened = await close_code("/ws/calls", cookie)

    assert message["code"] == 4401
    assert reopened == 4401


def test_no_admin_page_shows_anyones_secret_key_or_recovery_codes(admin_client):
    person_with_app("lee", *LISTENER)

    index = admin_client.get(reverse("admin:index")).content.decode()

    assert "TOTP device" not in index and "Static device" not in index
    assert "Access attempts" in index  # where an address is unlocked
