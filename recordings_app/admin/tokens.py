"""API tokens in the admin: made here (the token shown once, on the page
itself), named, given an expiry, revoked; never shown again."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.template.response import TemplateResponse
from django.utils import timezone

from ..models import ApiToken
from ..services import api_tokens
from .columns import ModelAdmin, moment


class NewTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["user", "name", "scope", "expires_at"]

    def __init__(self, *args, acting_user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if acting_user is not None and not acting_user.is_superuser:
            # A token acts as its user: only a superuser may make one for
            # someone else, or staff could act with another's permissions.
            self.fields["user"].queryset = get_user_model().objects.filter(
                pk=acting_user.pk
            )
            self.fields["user"].initial = acting_user.pk

    def clean_expires_at(self):
        expires_at = self.cleaned_data["expires_at"]
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("The expiry is in the past.")
        return expires_at


@admin.display(description="State")
def state(api_token: ApiToken) -> str:
    if api_token.revoked_at:
        return "revoked"
    if api_token.expires_at and api_token.expires_at <= timezone.now():
        return "expired"
    return "active"


@admin.display(description="Made", ordering="created_at")
def made(api_token: ApiToken) -> str:
    return moment(api_token.created_at)


@admin.display(description="Expires", ordering="expires_at")
def expires(api_token: ApiToken) -> str:
    return moment(api_token.expires_at) if api_token.expires_at else "never"


@admin.display(description="Last used", ordering="last_used_at")
def last_used(api_token: ApiToken) -> str:
    return moment(api_token.last_used_at)


@admin.register(ApiToken)
class ApiTokenAdmin(ModelAdmin):
    list_display = [
        "prefix",
        "name",
        "user",
        "scope",
        state,
        made,
        expires,
        last_used,
    ]
    list_filter = ["scope", "revoked_at", "created_at"]
    search_fields = ["prefix", "name", "user__username"]
    list_select_related = ["user"]
    ordering = ["-created_at", "-id"]
    # Once made, only its name changes: a revoked or expired token stays so
    # (Revoke is an action; a new token is made for more time).
    readonly_fields = [
        "prefix",
        "user",
        "scope",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    fields = [
        "prefix",
        "user",
        "name",
        "scope",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    actions = ["revoke"]

    def get_queryset(self, request):
        tokens = super().get_queryset(request)
        return tokens if request.user.is_superuser else tokens.filter(user=request.user)

    def get_form(self, request, obj=None, **kwargs):
        if obj is not None:
            return super().get_form(request, obj, **kwargs)
        form = NewTokenForm

        class ForThisUser(form):
            def __init__(self, *args, **inner):
                super().__init__(*args, acting_user=request.user, **inner)

        return ForThisUser

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        return self.fields if obj is not None else NewTokenForm.Meta.fields

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        made, request.api_token_text = api_tokens.api_token_create(
            user=form.cleaned_data["user"],
            scope=form.cleaned_data["scope"],
            name=form.cleaned_data["name"],
        )
        if form.cleaned_data["expires_at"]:
            ApiToken.objects.filter(pk=made.pk).update(
                expires_at=form.cleaned_data["expires_at"]
            )
        obj.pk = made.pk
        obj.prefix = made.prefix

    def response_add(self, request, obj, post_url_continue=None):
        """The token, on this page and nowhere else: not in a message (a
        cookie), not in the log, not in the database."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "api_token": ApiToken.objects.select_related("user").get(pk=obj.pk),
            "token": request.api_token_text,  # this request's own
            "title": "Copy the new API token now",
        }
        return TemplateResponse(
            request, "admin/recordings_app/apitoken/created.html", context
        )

    @admin.action(description="Revoke the selected tokens (refused from now on)")
    def revoke(self, request, queryset):
        for api_token in queryset:
            api_tokens.api_token_revoke(api_token=api_token)
        messages.success(request, f"{queryset.count()} token(s) revoked.")
