"""manage.py deliver_webhooks: send the queued webhook events, and keep at it.

Safe to stop at any moment and to run several of: what is queued is in the
database, each delivery is held by one worker at a time, and one stopped
mid-send is sent again (with its webhook-id) once its hold runs out.
"""

from __future__ import annotations

import signal
import time

from django.core.management.base import BaseCommand

from recordings_app.services.webhook_deliveries import webhooks_deliver_due


class Command(BaseCommand):
    help = "Send queued webhook events, retrying for 24 h (--once: what is due now)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true")
        parser.add_argument(
            "--timeout", type=float, default=10.0, help="Seconds a receiver has."
        )
        parser.add_argument(
            "--idle", type=float, default=1.0, help="Seconds between looks when idle."
        )

    def handle(self, *args, **options) -> None:
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        self.stderr.write("Delivering webhooks (Ctrl-C or SIGTERM to stop).")
        try:
            while not stopping:
                tried = webhooks_deliver_due(timeout=options["timeout"])
                if options["once"]:
                    self.stdout.write(f"{tried} delivery attempt(s).")
                    return
                if not tried:
                    time.sleep(options["idle"])
        except KeyboardInterrupt:  # Ctrl-C on make run: a send cut short is resent
            pass
