"""manage.py purge_recordings --older-than 30d [--yes]: retention by hand.

A dry run by default: it says what would go. Calls on legal hold and calls
in progress are never purged. CALLRECORDER_RETENTION_DAYS purges
automatically (see services.retention.retention_purge_if_due).
"""

from __future__ import annotations

import argparse
import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from recordings_app.services import retention

_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_age(value: str) -> timedelta:
    """'12h', '30d', '2w' -> a timedelta; anything else is refused."""
    match = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", value.lower())
    if not match or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an age: use a whole number and h, d or w (12h, 30d, 2w)"
        )
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


class Command(BaseCommand):
    help = (
        "Delete calls (recordings and files) started longer ago than --older-than. "
        "A dry run unless --yes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=parse_age,
            required=True,
            metavar="AGE",
            help="e.g. 12h, 30d, 2w: calls started before now minus this go",
        )
        parser.add_argument(
            "--yes",
            action="store_true",
            help="really delete (without it, only say what would be deleted)",
        )

    def handle(self, *args, older_than: timedelta, yes: bool, **options) -> None:
        cutoff = timezone.now() - older_than
        report = retention.purge_calls_older_than(cutoff, dry_run=not yes)
        self.stdout.write(
            f"Calls started before {cutoff:%Y-%m-%d %H:%M:%S %Z}, "
            "not on legal hold, not in progress:"
        )
        if report.held:
            self.stdout.write(f"  ({report.held} older call(s) on legal hold are kept)")
        if not report.calls:
            self.stdout.write("Nothing to purge.")
            return
        self.stdout.write(
            f"  {report.calls} call(s), {report.recordings} recording(s), "
            f"{filesizeformat(report.bytes)} ({report.bytes} bytes)"
        )
        self.stdout.write(
            f"  oldest {report.oldest:%Y-%m-%d %H:%M}, "
            f"newest {report.newest:%Y-%m-%d %H:%M}"
        )
        if not yes:
            self.stdout.write(
                "Dry run: nothing was deleted. Run again with --yes to delete them."
            )
            return
        self.stdout.write(
            f"Deleted {report.deleted_calls} call(s), "
            f"{report.deleted_recordings} recording(s), "
            f"{filesizeformat(report.deleted_bytes)}."
        )
        for failure in report.failures:
            self.stderr.write(failure)
        if report.failures:
            raise CommandError(
                f"{len(report.failures)} failure(s): the recordings and calls "
                "named above are kept"
            )
