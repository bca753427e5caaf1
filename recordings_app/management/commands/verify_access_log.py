"""manage.py verify_access_log: prove no access log entry was removed or altered."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from recordings_app.services.access import BrokenChain, access_log_verify


class Command(BaseCommand):
    help = "Walk the access log's hash chain and report the first broken link."

    def handle(self, *args, **options) -> None:
        try:
            count = access_log_verify()
        except BrokenChain as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            self.style.SUCCESS(f"Access log intact: {count} entries, chain unbroken.")
        )
