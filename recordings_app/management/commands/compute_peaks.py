"""manage.py compute_peaks: draw the waveform of recordings stored without one.

Recordings finished since waveforms were kept have their peaks already;
older ones get them here, read through the storage API (so it works on S3
as on disk), one recording at a time.
"""

from __future__ import annotations

import logging

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recordings_app import selectors
from recordings_app.services import recordings

logger = logging.getLogger("recordings_app.peaks")


class Command(BaseCommand):
    help = "Compute the waveform peaks of recordings that have none."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--all",
            action="store_true",
            dest="recompute_all",
            help="recompute every recording's peaks, not only missing ones",
        )

    def handle(self, *args, recompute_all: bool, **options) -> None:
        done = failures = 0
        needing = selectors.recordings_needing_peaks(recompute_all=recompute_all)
        for recording in needing.iterator():
            try:
                recordings.recording_peaks_fill(recording=recording)
            except Exception as error:  # a missing file, storage down: go on
                failures += 1
                logger.exception("peaks of recording %s failed", recording.pk)
                self.stderr.write(f"recording {recording.pk}: {error}")
                continue
            done += 1
        self.stdout.write(f"{done} recording(s) given a waveform.")
        if failures:
            raise CommandError(f"{failures} recording(s) could not be read")
