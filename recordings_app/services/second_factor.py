"""A user's second factor: an authenticator app (TOTP) and recovery codes.

django-otp keeps the devices and throttles wrong codes (each failure doubles
the wait before the next try); these functions are the only writes to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

RECOVERY_CODE_COUNT = 10
APP_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"


@dataclass(frozen=True)
class CodeCheck:
    """The device a code was good for, or how long to wait before the next try."""

    device: Device | None
    wait_seconds: int = 0


def _normalised(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def _is_app_code(code: str) -> bool:
    """Six digits: the app's; recovery codes are eight letters and digits."""
    return len(code) == 6 and code.isdigit()


def _checked(device: Device, code: str) -> CodeCheck:
    allowed, why = device.verify_is_allowed()
    if not allowed and why and "locked_until" in why:
        wait = (why["locked_until"] - timezone.now()).total_seconds()
        return CodeCheck(None, wait_seconds=max(1, math.ceil(wait)))
    if device.verify_token(code):
        return CodeCheck(device)
    return CodeCheck(None)


@transaction.atomic
def check_code(*, user: Any, code: str) -> CodeCheck:
    """A code from the user's app, or one of their recovery codes (used up)."""
    code = _normalised(code)
    if _is_app_code(code):
        devices = TOTPDevice.objects.select_for_update().filter(
            user=user, confirmed=True
        )
    else:
        devices = StaticDevice.objects.select_for_update().filter(user=user)
    device = devices.first()
    if device is None:
        return CodeCheck(None)
    return _checked(device, code)


@transaction.atomic
def start_app_setup(*, user: Any) -> TOTPDevice:
    """A new secret for the user's app, unconfirmed until a code from it is
    entered; a setup left unfinished is picked up again."""
    pending = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return pending or TOTPDevice.objects.create(
        user=user, name=APP_NAME, confirmed=False
    )


def _new_recovery_codes(user: Any) -> list[str]:
    device, _ = StaticDevice.objects.get_or_create(user=user, name=RECOVERY_NAME)
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(
        StaticToken(device=device, token=code) for code in codes
    )
    return codes


@transaction.atomic
def finish_app_setup(*, user: Any, code: str) -> tuple[CodeCheck, list[str]]:
    """Confirm the app with a code it shows: it replaces any app set up
    before, and a fresh set of recovery codes is made (shown once)."""
    device = (
        TOTPDevice.objects.select_for_update()
        .filter(user=user, confirmed=False)
        .first()
    )
    code = _normalised(code)
    if device is None or not _is_app_code(code):
        return CodeCheck(None), []
    check = _checked(device, code)
    if check.device is None:
        return check, []
    TOTPDevice.objects.filter(user=user, confirmed=True).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return check, _new_recovery_codes(user)


@transaction.atomic
def replace_recovery_codes(*, user: Any) -> list[str]:
    """New recovery codes; the old ones stop working."""
    return _new_recovery_codes(user)


@transaction.atomic
def remove_second_factor(*, user: Any) -> None:
    """The user's app and recovery codes are gone (a lost phone: an admin
    does this, and the user sets up a new app at the next sign-in)."""
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
