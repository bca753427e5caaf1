"""manage.py verify_access_log: prove no access log entry was removed or altered."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from recordings_app.models import GENESIS_HASH, AccessLogEntry


class Command(BaseCommand):
    help = "Walk the access log's hash chain and report the first broken link."

    def handle(self, *args, **options) -> None:
        expected_prev = GENESIS_HASH
        count = 0
        for entry in AccessLogEntry.objects.order_by("id").iterator():
            if entry.prev_hash != expected_prev:
                raise CommandError(
                    f"entry {entry.pk}: the entry before it was removed or altered "
                    f"(chain broken after {count} good entries)"
                )
            if entry.compute_hash() != entry.entry_hash:
                raise CommandError(
                    f"entry {entry.pk} was altered: its contents do not match its hash"
                )
            expected_prev = entry.entry_hash
            count += 1
        self.stdout.write(
            self.style.SUCCESS(f"Access log intact: {count} entries, chain unbroken.")
        )
