"""manage.py simulate_call: play phone calls into a running server, as Vonage does."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from functools import partial
from pathlib import Path

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from recordings_app.audio.pcm import SUPPORTED_SAMPLE_RATES
from recordings_app.simulator import SimulationError
from recordings_app.simulator.caller import CallPlan, SimulatedCall, play_call
from recordings_app.simulator.sounds import beep_tone, load_wav, speak

DTMF_KEYS = set("0123456789*#")


class Command(BaseCommand):
    help = (
        "Play simulated phone calls into a running callrecorder exactly as "
        "Vonage does: answer webhook, NCCO, WebSocket audio, DTMF, events."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url",
            default="http://127.0.0.1:8000",
            help="base URL of the server (default: %(default)s)",
        )
        parser.add_argument(
            "--seconds",
            type=float,
            default=5.0,
            help="length of the generated audio (default: %(default)s)",
        )
        parser.add_argument(
            "--rate",
            type=int,
            choices=SUPPORTED_SAMPLE_RATES,
            help="sample rate to stream at (default: the rate the NCCO asks for)",
        )
        parser.add_argument(
            "--calls", type=int, default=1, help="concurrent calls (default: 1)"
        )
        parser.add_argument(
            "--fast",
            action="store_true",
            help="send frames as fast as the server takes them, not in real time",
        )
        source = parser.add_mutually_exclusive_group()
        source.add_argument(
            "--wav", type=Path, help="16-bit PCM WAV file to play (resampled to fit)"
        )
        source.add_argument(
            "--say", metavar="TEXT", help="speak TEXT with espeak-ng instead of a tone"
        )
        parser.add_argument(
            "--dtmf", default="", help="keys pressed during the call, e.g. 123#"
        )
        parser.add_argument("--from", dest="from_number", default="447700900123")
        parser.add_argument("--to", dest="to_number", default="447700900000")

    def handle(self, *args, **options) -> None:
        if options["calls"] < 1:
            raise CommandError("--calls must be at least 1")
        if options["seconds"] <= 0:
            raise CommandError("--seconds must be more than 0")
        if set(options["dtmf"]) - DTMF_KEYS:
            raise CommandError("--dtmf takes only the keys 0-9, * and #")
        with tempfile.TemporaryDirectory() as scratch:
            audio = self.audio_source(options, Path(scratch))
            try:
                calls = asyncio.run(self.play_all(options, audio))
            except SimulationError as error:
                raise CommandError(str(error)) from None
            except httpx.HTTPError as error:
                raise CommandError(
                    f"cannot reach the server at {options['url']}: {error}"
                ) from None
        for call in calls:
            seconds = len(call.audio) / 2 / call.sample_rate
            self.stdout.write(
                f"call {call.uuid}: {call.frames_sent} frames "
                f"({seconds:.1f} s at {call.sample_rate} Hz), "
                f"socket closed {call.close_code}\n  page: {call.page_url}"
            )
        self.stdout.write(self.style.SUCCESS(f"{len(calls)} call(s) recorded."))

    def audio_source(self, options: dict, scratch: Path):
        """A function from sample rate to PCM bytes, for the rate the NCCO asks."""
        if options["say"]:
            try:
                wav = speak(options["say"], scratch / "speech.wav")
            except SimulationError as error:
                raise CommandError(str(error)) from None
            return partial(load_wav, wav)
        if options["wav"]:
            try:  # read it now, so a bad file is reported before any call
                load_wav(options["wav"], 16000)
            except SimulationError as error:
                raise CommandError(str(error)) from None
            return partial(load_wav, options["wav"])
        return partial(beep_tone, seconds=options["seconds"])

    async def play_all(self, options: dict, audio) -> list[SimulatedCall]:
        count = options["calls"]
        plans = [
            CallPlan(
                audio=audio,
                from_number=str(int(options["from_number"]) + n)
                if options["from_number"].isdigit()
                else options["from_number"],
                to_number=options["to_number"],
                dtmf=options["dtmf"],
                realtime=not options["fast"],
                sample_rate=options["rate"],
                signature_secret=settings.VONAGE_SIGNATURE_SECRET,
            )
            for n in range(count)
        ]
        expected_frames = count * int(options["seconds"] * 50)
        with tqdm(
            total=None if options["wav"] or options["say"] else expected_frames,
            unit="frame",
            desc=f"{count} call(s)",
            disable=None,  # only on a terminal
            file=sys.stderr,
        ) as progress:
            limits = httpx.Limits(max_connections=max(10, count))
            async with httpx.AsyncClient(timeout=30, limits=limits) as http:
                return await asyncio.gather(
                    *(
                        play_call(http, options["url"], plan, on_frame=progress.update)
                        for plan in plans
                    )
                )
