"""manage.py recover_recordings: turn orphaned spools into recordings.

Run it before the server starts (make run does) and from time to time in
production: a spool is orphaned when its server died mid-call or storage
failed when the call ended. Live calls are never touched: their writer holds
a lock on the spool, and a spool written within the grace period is left.
With CALLRECORDER_RETENTION_DAYS set, it then purges calls past retention.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from recordings_app.audio.spool import (
    BrokenSpool,
    SpoolGone,
    SpoolInUse,
    orphaned_spools,
)
from recordings_app.services import archive, recordings, retention, stored_audio

logger = logging.getLogger("recordings_app.recovery")


class Command(BaseCommand):
    help = "Store every orphaned spool older than the grace period as a recording."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace",
            type=float,
            default=settings.CALLRECORDER_RECOVERY_GRACE_SECONDS,
            metavar="SECONDS",
            help="leave spools written within this many seconds (default: %(default)s)",
        )

    def handle(self, *args, grace: float, **options) -> None:
        failures = 0
        recovered = 0
        for meta_path in orphaned_spools(settings.SPOOL_DIR, grace_seconds=grace):
            try:
                recording = recordings.recording_recover(meta_path=meta_path)
            except (SpoolInUse, SpoolGone):
                continue  # a live call, or another run just finished it
            except BrokenSpool as error:
                failures += 1
                self.stderr.write(f"cannot recover {meta_path.name}: {error}")
                continue
            except Exception as error:  # storage down: keep the spool, try later
                failures += 1
                logger.exception("recovery of %s failed; spool kept", meta_path.name)
                self.stderr.write(f"recovery of {meta_path.name} failed: {error}")
                continue
            if recording is None:
                self.stdout.write(f"{meta_path.name}: no audio, spool removed")
                continue
            recovered += 1
            self.stdout.write(
                f"recovered call {recording.call.uuid or recording.call_id}: "
                f"{recording.duration_seconds:.1f} s -> {recording.file.name}"
            )
        self.stdout.write(f"{recovered} recording(s) recovered.")
        swept = stored_audio.work_folders_sweep(
            grace_seconds=stored_audio.WORK_FOLDER_GRACE_SECONDS
        )
        if swept:
            self.stdout.write(
                f"{swept} work folder(s) of killed conversions removed "
                "(the recordings were left as they were)."
            )
        # make run runs this at start: the moment for automatic retention too.
        purged = retention.retention_purge_if_due()
        if purged is not None:
            self.stdout.write(
                f"Retention ({settings.CALLRECORDER_RETENTION_DAYS} days): "
                f"{purged.deleted_calls} call(s) purged"
                + ("; more are left for the next runs." if purged.more else ".")
            )
            for failure in purged.failures:
                self.stderr.write(f"retention: {failure}")
        archived = archive.archive_if_due()
        if archived is not None:
            self.stdout.write(
                f"Archive ({settings.CALLRECORDER_ARCHIVE_AFTER_DAYS} days): "
                f"{archived.converted} recording(s) converted to {archived.to}"
                + ("; more are left for the next runs." if archived.more else ".")
            )
            for failure in archived.failures:
                self.stderr.write(f"archive: {failure}")
        if failures:
            raise CommandError(
                f"{failures} spool(s) could not be recovered; they are kept"
            )
