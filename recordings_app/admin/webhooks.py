"""Webhooks out in the admin: subscriptions (their secret made for them),
deliveries newest first with every attempt, and "redeliver"."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from ..models import (
    WEBHOOK_EVENTS,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from ..services import webhooks
from .columns import ModelAdmin, moment


class SubscriptionForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=WEBHOOK_EVENTS, widget=forms.CheckboxSelectMultiple
    )
    secret = forms.CharField(
        required=False,
        help_text="whsec_… for the receiver; leave empty to have one made.",
    )

    class Meta:
        model = WebhookSubscription
        fields = ["url", "events", "secret", "description", "active"]

    def clean_secret(self):
        secret = self.cleaned_data["secret"] or (
            self.instance.secret if self.instance.pk else webhooks.new_secret()
        )
        try:
            webhooks.secret_check(secret)
        except webhooks.InvalidSubscription as error:
            raise forms.ValidationError(str(error)) from None
        return secret


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ModelAdmin):
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
        super().save_model(request, obj, form, change)
        webhooks.forget_subscriptions()


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
class WebhookDeliveryAdmin(ModelAdmin):
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

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Redeliver the selected (now, and for another day)")
    def redeliver(self, request, queryset):
        for delivery in queryset:
            webhooks.webhook_redeliver(delivery=delivery)
        messages.success(request, f"{queryset.count()} delivery(ies) queued again.")
