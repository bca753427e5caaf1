"""Users in the admin, with their sign-in: lockouts and second factor."""

from __future__ import annotations

from datetime import timedelta

from axes.models import AccessAttempt
from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from ..services import second_factor

User = get_user_model()


@admin.display(boolean=True, description="Second factor", ordering="has_app")
def has_second_factor(user) -> bool:
    return user.has_app


@admin.display(boolean=True, description="Locked out", ordering="locked_out")
def locked_out(user) -> bool:
    return user.locked_out


class SignInUserAdmin(UserAdmin):
    """Django's user admin, plus who is locked out and who has a second
    factor, and the two things a help desk does: unlock, reset the app."""

    list_display = [*UserAdmin.list_display, has_second_factor, locked_out]
    actions = ["unlock_sign_in", "reset_second_factor"]

    def get_queryset(self, request):
        recent = timezone.now() - timedelta(
            minutes=settings.CALLRECORDER_SIGNIN_LOCKOUT_MINUTES
        )
        lockouts = AccessAttempt.objects.filter(
            username=OuterRef(User.USERNAME_FIELD),
            failures_since_start__gte=settings.AXES_FAILURE_LIMIT,
            attempt_time__gte=recent,
        )
        apps = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
        return (
            super()
            .get_queryset(request)
            .annotate(has_app=Exists(apps), locked_out=Exists(lockouts))
        )

    @admin.action(description="Unlock sign-in", permissions=["change"])
    def unlock_sign_in(self, request, queryset):
        """Clear the failed sign-ins counted against these user names (an
        address's own lockout is cleared under Axes -> Access attempts)."""
        for user in queryset:
            axes_reset(username=user.get_username())
        self.message_user(
            request, f"Sign-in unlocked for {len(queryset)} user(s).", messages.SUCCESS
        )

    @admin.action(
        description="Reset second factor (lost phone)", permissions=["change"]
    )
    def reset_second_factor(self, request, queryset):
        for user in queryset:
            second_factor.remove_second_factor(user=user)
        self.message_user(
            request,
            f"Second factor removed for {len(queryset)} user(s): they set up a "
            "new app at their next sign-in (when their account needs one).",
            messages.SUCCESS,
        )


admin.site.unregister(User)
admin.site.register(User, SignInUserAdmin)
# django-otp's own pages would show an admin anyone's secret key (as a QR
# code) and recovery codes: enough to sign in as them for good. The user
# list's "Reset second factor" is all a help desk needs.
for device_model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(device_model):
        admin.site.unregister(device_model)
