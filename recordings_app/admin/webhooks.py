"""Webhooks out in the admin, for superusers only (a subscription receives
every call's numbers, and its secret signs for us): subscriptions (the
secret made for them and shown once), stopped rather than deleted;
deliveries newest first with every attempt, and "redeliver"."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from ..models import (
    WEBHOOK_EVENTS,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from ..services import webhook_deliveries, webhooks
from .columns import ModelAdmin, moment


class SubscriptionForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="whsec_… of your own, or leave empty: a new one is made "
        "(on change, empty keeps the current one).",
    )
    events = forms.MultipleChoiceField(
        choices=WEBHOOK_EVENTS, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookSubscription
        fields = ["url", "events", "secret", "description", "active"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            webhooks.url_check(url)
        except webhooks.InvalidSubscription as error:
            raise forms.ValidationError(str(error)) from None
        return url

    def clean_secret(self):
        secret = self.cleaned_data["secret"] or (
            self.instance.secret if self.instance.pk else webhooks.new_secret()
        )
        try:
            webhooks.secret_check(secret)
        except webhooks.InvalidSubscription as error:
            raise forms.ValidationError(str(error)) from None
        return secret


class SuperusersOnly:
    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request, *args) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # stop one instead: queued events still name it


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(SuperusersOnly, ModelAdmin):
    form = SubscriptionForm
    list_display = ["url", "event_names", "active", "disabled_reason", "made"]
    list_filter = ["active"]
    search_fields = ["url", "description"]
    ordering = ["-created_at", "-id"]

    @admin.display(description="Events")
    def event_names(self, subscription: WebhookSubscription) -> str:
        return ", ".join(subscription.events)

    @admin.display(description="Made", ordering="created_at")
    def made(self, subscription: WebhookSubscription) -> str:
        return moment(subscription.created_at)

    def save_model(self, request, obj, form, change):
        stopped = change and "active" in form.changed_data and not obj.active
        super().save_model(request, obj, form, change)
        webhooks.forget_subscriptions()
        if stopped:
            webhooks.webhook_subscription_stop(
                subscription=obj, why=f"stopped by {request.user.get_username()}"
            )

    def response_add(self, request, obj, post_url_continue=None):
        """The secret, once, for the receiver's configuration."""
        return TemplateResponse(
            request,
            "admin/recordings_app/webhooksubscription/created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "subscription": obj,
                "title": "Give the receiver this secret",
            },
        )


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ["at", "status_code", "error", "response_excerpt", "duration_ms"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["at", "id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(SuperusersOnly, ModelAdmin):
    list_display = ["event", "subscription", "state", "attempts", "made", "next_try"]
    list_filter = ["state", "event"]
    search_fields = ["message_id", "subscription__url"]
    list_select_related = ["subscription"]
    ordering = ["-created_at", "-id"]
    inlines = [AttemptInline]
    actions = ["redeliver"]
    readonly_fields = [
        "subscription",
        "message_id",
        "event",
        "payload",
        "call_id",
        "state",
        "created_at",
        "next_attempt_at",
        "give_up_at",
        "attempts",
        "delivered_at",
    ]
    fields = readonly_fields

    @admin.display(description="Made", ordering="created_at")
    def made(self, delivery: WebhookDelivery) -> str:
        return moment(delivery.created_at, seconds=True)

    @admin.display(description="Next try", ordering="next_attempt_at")
    def next_try(self, delivery: WebhookDelivery) -> str:
        if delivery.state != WebhookDelivery.State.PENDING:
            return "—"
        return moment(delivery.next_attempt_at, seconds=True)

    def has_add_permission(self, request, *args) -> bool:
        return False

    @admin.action(description="Redeliver the selected (now, and for another day)")
    def redeliver(self, request, queryset):
        for delivery in queryset:
            webhook_deliveries.webhook_redeliver(delivery=delivery)
        messages.success(request, f"{queryset.count()} delivery(ies) queued again.")
