"""manage.py add_webhook --url URL --events recording.ready,call.completed [--secret S]

Prints what it subscribed; a secret it made is printed alone on the last
line, for the receiver's configuration.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from recordings_app.services.webhooks import (
    EVENT_NAMES,
    InvalidSubscription,
    webhook_subscription_create,
)


class Command(BaseCommand):
    help = "Send these events to a URL, signed (Standard Webhooks)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", required=True)
        parser.add_argument(
            "--events",
            required=True,
            help=f"Comma-separated, from: {', '.join(EVENT_NAMES)}.",
        )
        parser.add_argument(
            "--secret", default="", help="whsec_… (default: a new one, printed)."
        )
        parser.add_argument("--description", default="")

    def handle(self, *args, **options) -> None:
        events = [name.strip() for name in options["events"].split(",") if name.strip()]
        try:
            subscription = webhook_subscription_create(
                url=options["url"],
                events=events,
                secret=options["secret"],
                description=options["description"],
            )
        except InvalidSubscription as error:
            raise CommandError(str(error)) from None
        self.stderr.write(
            f"Subscription {subscription.pk}: {', '.join(subscription.events)} "
            f"to {subscription.url}, signed (webhook-signature, Standard Webhooks)."
        )
        if not settings.PUBLIC_URL:
            self.stderr.write(
                "PUBLIC_URL is not set: the events' links are paths "
                "(/api/v1/calls/1), not URLs a receiver can follow."
            )
        if not options["secret"]:
            self.stderr.write("Its secret, for the receiver:")
            self.stdout.write(subscription.secret)
