"""manage.py rotate_recording_keys: rewrap every data key under the newest key.

Only the wrapped data keys change (no audio is re-encrypted), so it is
quick whatever the size of the archive. Afterwards the older keys can be
removed from CALLRECORDER_ENCRYPTION_KEYS.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from recordings_app.services import keys


class Command(BaseCommand):
    help = (
        "Rewrap every recording's data key under the first key of "
        "CALLRECORDER_ENCRYPTION_KEYS."
    )

    def handle(self, *args, **options) -> None:
        try:
            report = keys.recording_keys_rotate()
        except keys.NoKeys as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Rewrapped {report.rewrapped} recording key(s) under {report.key_id!r}; "
            f"{report.current} were under it already."
        )
        for failure in report.failures:
            self.stderr.write(failure)
        if report.failures:
            raise CommandError(
                f"{len(report.failures)} recording(s) not rewrapped: their key is "
                "missing or wrong (see above); keep the old keys until they are"
            )
