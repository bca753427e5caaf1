"""Signing in, in a real headless Chromium: the second factor and a lockout.

A supervisor on a phone sets up an authenticator app (the QR code must
load under the Content-Security-Policy), keeps the recovery codes, and on
a laptop signs in again with one of them; someone guessing passwords is
told, plainly, that sign-in is locked.
"""

from __future__ import annotations

from base64 import b32decode

import pytest
from django_otp.oath import TOTP

from .helpers import ROOT, SUPERVISOR, grant

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "pw-browser-2fa-1"
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}
FITS_THE_SCREEN = (
    "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
)


@pytest.fixture
def daphne_env() -> dict[str, str]:
    return {"CALLRECORDER_REQUIRE_MFA": "true"}


@pytest.fixture
def supervisor(django_user_model):
    sam = django_user_model.objects.create_user("sam", password=PASSWORD, is_staff=True)
    return grant(sam, *SUPERVISOR)


def password_step(page, base_url: str, password: str = PASSWORD) -> None:
    page.goto(base_url + "/")
    page.get_by_label("User name").fill("sam")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_a_supervisor_sets_up_an_app_then_signs_in_with_a_recovery_code(
    daphne_server, supervisor, browser
):
    ARTIFACTS.mkdir(exist_ok=True)
    phone = browser.new_context(viewport=PHONE).new_page()
    password_step(phone, daphne_server.url)

    phone.wait_for_url("**/accounts/authenticator/**")
    qr = phone.get_by_role("img", name="QR code holding the key below")
    phone.wait_for_function(
        "() => document.querySelector('img.qr').naturalWidth > 0"
    )  # a data: image, allowed by the policy
    assert qr.bounding_box()["width"] >= 150
    assert phone.evaluate(FITS_THE_SCREEN)
    phone.screenshot(path=ARTIFACTS / "set-up-app-phone.png", full_page=True)
    key = phone.locator("[data-key]").inner_text()
    phone.get_by_label("Code").fill("000000")
    phone.get_by_role("button", name="Turn on").click()
    assert "That code is not right" in phone.get_by_role("alert").inner_text()

    phone.wait_for_timeout(1100)  # a wrong code makes the next wait a second
    phone.get_by_label("Code").fill(
        f"{TOTP(b32decode(key.replace(' ', ''))).token():06d}"
    )
    phone.get_by_role("button", name="Turn on").click()
    codes = phone.locator("[data-recovery-codes] code").all_inner_texts()
    assert len(codes) == 10
    assert phone.evaluate(FITS_THE_SCREEN)
    phone.screenshot(path=ARTIFACTS / "recovery-codes-phone.png", full_page=True)
    phone.get_by_role("link", name="I have saved them: continue").click()
    phone.wait_for_url(daphne_server.url + "/")

    laptop = browser.new_context(viewport=LAPTOP).new_page()
    password_step(laptop, daphne_server.url)
    laptop.wait_for_url("**/accounts/verify/**")
    laptop.screenshot(path=ARTIFACTS / "verify-code.png")
    laptop.get_by_label("Code").fill(codes[0])
    laptop.get_by_role("button", name="Continue").click()
    laptop.wait_for_url(daphne_server.url + "/")
    laptop.get_by_role("link", name="sam").click()
    assert "Recovery codes left: 9" in laptop.locator("main").inner_text()


def test_guessing_passwords_locks_sign_in_with_a_plain_message(
    daphne_server, supervisor, browser
):
    page = browser.new_context(viewport=PHONE).new_page()
    for n in range(10):
        password_step(page, daphne_server.url, password=f"guess-{n}")

    password_step(page, daphne_server.url)

    alert = page.get_by_role("alert").inner_text()
    assert "Too many failed sign-ins" in alert
    assert "15 minutes" in alert
    assert page.evaluate(FITS_THE_SCREEN)
    page.screenshot(path=ARTIFACTS / "sign-in-locked-phone.png", full_page=True)
    page.goto(daphne_server.url + "/")
    assert "/accounts/login/" in page.url
