"""Signing in past the password: the second factor, and the lockout page."""

from __future__ import annotations

import base64
from base64 import b32encode

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login

from .. import selectors
from ..forms import CodeForm
from ..services import second_factor
from ..services.second_factor import CodeCheck

WRONG_CODE = (
    "That code is not right. Check the time on your phone, or use a recovery code."
)


def _next_url(request: HttpRequest) -> str:
    """Where to go once signed in: the page asked for, if it is ours."""
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse(settings.LOGIN_REDIRECT_URL)


def _refusal(check: CodeCheck) -> str:
    if check.wait_seconds:
        wait = check.wait_seconds
        unit = "second" if wait == 1 else "seconds"
        return f"Too many wrong codes: wait {wait} {unit}, then try again."
    return WRONG_CODE


def _signed_in_with(request: HttpRequest, device) -> None:
    """The second factor is done: a new session key for the finished sign-in."""
    otp_login(request, device)
    request.session.cycle_key()


@require_http_methods(["GET", "POST"])
@login_required
def verify_code(request: HttpRequest) -> HttpResponse:
    """After the password: a code from the app, or a recovery code."""
    step = selectors.second_factor_step(request.user, request.session)
    if step == selectors.SET_UP_APP:
        return redirect(f"{reverse('set_up_app')}?{request.GET.urlencode()}")
    if step is None:
        return redirect(_next_url(request))
    form = CodeForm(request.POST or None)
    if form.is_valid():
        check = second_factor.check_code(
            user=request.user, code=form.cleaned_data["code"]
        )
        if check.device is not None:
            _signed_in_with(request, check.device)
            return redirect(_next_url(request))
        form.add_error("code", _refusal(check))
    return render(
        request,
        "registration/verify_code.html",
        {"form": form, "next": _next_url(request)},
        status=400 if form.errors else 200,
    )


def _qr_data_uri(text: str) -> str:
    svg = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage).to_string()
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


@require_http_methods(["GET", "POST"])
@login_required
def set_up_app(request: HttpRequest) -> HttpResponse:
    """Scan the QR code (or type the key), enter the code the app shows; the
    recovery codes are shown once."""
    if selectors.second_factor_step(request.user, request.session) == (
        selectors.VERIFY_CODE
    ):
        # Replacing an app needs the old one (or a recovery code) first.
        return redirect(f"{reverse('verify_code')}?{request.GET.urlencode()}")
    device = second_factor.start_app_setup(user=request.user)
    form = CodeForm(request.POST or None)
    if form.is_valid():
        check, codes = second_factor.finish_app_setup(
            user=request.user, code=form.cleaned_data["code"]
        )
        if check.device is not None:
            _signed_in_with(request, check.device)
            return _recovery_codes_page(request, codes)
        form.add_error("code", _refusal(check))
    key = b32encode(device.bin_key).decode("ascii")
    return render(
        request,
        "registration/set_up_app.html",
        {
            "form": form,
            "next": _next_url(request),
            "qr_code": _qr_data_uri(device.config_url),
            "key_groups": [key[i : i + 4] for i in range(0, len(key), 4)],
            "required": selectors.second_factor_required(request.user),
        },
        status=400 if form.errors else 200,
    )


def _recovery_codes_page(request: HttpRequest, codes: list[str]) -> HttpResponse:
    return render(
        request,
        "registration/recovery_codes.html",
        {
            "codes": [f"{code[:4]}-{code[4:]}" for code in codes],
            "next": _next_url(request),
        },
    )


@require_http_methods(["GET", "POST"])
@login_required
def account_security(request: HttpRequest) -> HttpResponse:
    """The user's own second factor: turn it on, new recovery codes, turn it off."""
    user = request.user
    has_app = selectors.has_authenticator(user)
    required = selectors.second_factor_required(user)
    form = CodeForm(request.POST or None) if has_app else None
    action = request.POST.get("action")
    if request.method == "POST" and has_app and form.is_valid():
        # Changing the second factor takes a code from it, as signing in does.
        check = second_factor.check_code(user=user, code=form.cleaned_data["code"])
        if check.device is None:
            form.add_error("code", _refusal(check))
        elif action == "new-codes":
            return _recovery_codes_page(
                request, second_factor.replace_recovery_codes(user=user)
            )
        elif action == "turn-off" and not required:
            second_factor.remove_second_factor(user=user)
            return redirect("account_security")
    return render(
        request,
        "registration/account_security.html",
        {
            "form": form,
            "has_app": has_app,
            "required": required,
            "codes_left": selectors.recovery_codes_left(user) if has_app else 0,
        },
        status=400 if form is not None and form.errors else 200,
    )


def locked_out(request: HttpRequest, *args) -> HttpResponse:
    """django-axes' answer once a user name or an address is locked out."""
    return render(
        request,
        "registration/locked_out.html",
        {"minutes": settings.CALLRECORDER_SIGNIN_LOCKOUT_MINUTES},
        status=429,
    )
