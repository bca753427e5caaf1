"""manage.py archive_recordings --older-than 30d --to flac|opus [--yes].

A dry run by default: it says what would be converted. Each recording is
converted in place (new file stored, row updated, old file deleted, in that
order). Legal hold stops Opus (lossy), not FLAC. CALLRECORDER_ARCHIVE_AFTER_DAYS
does it automatically (services.archive.archive_if_due).
"""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from recordings_app.services import archive

from .purge_recordings import parse_age


class Command(BaseCommand):
    help = (
        "Convert recordings started longer ago than --older-than to FLAC (lossless) "
        "or Opus (lossy). A dry run unless --yes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=parse_age,
            required=True,
            metavar="AGE",
            help="e.g. 12h, 30d, 2w",
        )
        parser.add_argument("--to", choices=["flac", "opus"], required=True)
        parser.add_argument(
            "--yes",
            action="store_true",
            help="really convert (without it, only say what would be converted)",
        )

    def handle(self, *args, older_than: timedelta, to: str, yes: bool, **options):
        cutoff = timezone.now() - older_than
        report = archive.archive_recordings(cutoff=cutoff, to=to, dry_run=not yes)
        self.stdout.write(
            f"Recordings started before {cutoff:%Y-%m-%d %H:%M:%S %Z} "
            f"that can become {to}:"
        )
        if report.held:
            self.stdout.write(
                f"  ({report.held} on legal hold are kept as they are: Opus is lossy)"
            )
        if not report.recordings:
            self.stdout.write("Nothing to convert.")
            return
        self.stdout.write(
            f"  {report.recordings} recording(s), {filesizeformat(report.bytes)} "
            f"({report.bytes} bytes)"
        )
        if not yes:
            self.stdout.write(
                "Dry run: nothing was converted. Run again with --yes to convert them."
            )
            return
        self.stdout.write(
            f"Converted {report.converted} recording(s): "
            f"{filesizeformat(report.bytes_before)} -> "
            f"{filesizeformat(report.bytes_after)}."
        )
        for failure in report.failures:
            self.stderr.write(failure)
        if report.failures:
            raise CommandError(
                f"{len(report.failures)} failure(s): those recordings are kept "
                "as they were"
            )
