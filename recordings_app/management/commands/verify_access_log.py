"""manage.py verify_access_log: prove no access log entry was removed or altered.

Walks the keyed chain, then holds it against every checkpoint written
outside the database; exits non-zero naming the first disagreement.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from recordings_app.services.audit import BrokenChain, access_log_verify


class Command(BaseCommand):
    help = (
        "Walk the access log's keyed chain and check it against its checkpoints; "
        "report the first entry removed or altered."
    )

    def handle(self, *args, **options) -> None:
        try:
            verified = access_log_verify()
        except BrokenChain as error:
            raise CommandError(f"Access log NOT intact: {error}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Access log intact: {verified.entries} entries, chain unbroken."
            )
        )
        for where in verified.unsigned:
            self.stderr.write(
                f"{where}: not a checkpoint signed with the audit key (torn by a "
                "failed write, or made up); ignored"
            )
        if verified.latest is None:
            self.stdout.write("No checkpoints yet: the log is empty.")
            return
        self.stdout.write(
            f"{verified.checkpoints} checkpoint(s) agree; the latest "
            f"({verified.latest.at}) is of entry {verified.latest.seq}."
        )
