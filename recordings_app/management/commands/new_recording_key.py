"""manage.py new_recording_key: a fresh ID:KEY for CALLRECORDER_ENCRYPTION_KEYS."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from recordings_app.audio.sealing import new_key_spec


class Command(BaseCommand):
    help = (
        "Print a new 256-bit key with an id, as ID:KEY. Put it first in "
        "CALLRECORDER_ENCRYPTION_KEYS (keep the old ones after it until "
        "rotate_recording_keys has run), and keep a copy somewhere safe: "
        "recordings sealed under it cannot be opened without it."
    )

    def handle(self, *args, **options) -> None:
        self.stdout.write(new_key_spec())
