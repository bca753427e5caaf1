"""The simulator: its audio sources, and `manage.py simulate_call` against servers."""

from __future__ import annotations

import array
import io
import json
import threading
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from recordings_app.models import Call, CallEvent
from recordings_app.simulator.sounds import AudioFormatError, beep_tone, load_wav

from .helpers import free_port, wait_for_recordings


def write_wav(
    path: Path, *, rate: int, channels: int, width: int, frames: bytes
) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return path


def test_a_mono_wav_at_the_asked_rate_is_played_unchanged(tmp_path):
    pcm = beep_tone(16000, 0.5)
    path = write_wav(tmp_path / "a.wav", rate=16000, channels=1, width=2, frames=pcm)

    assert load_wav(path, 16000) == pcm


def test_a_stereo_wav_at_another_rate_is_mixed_down_and_resampled(tmp_path):
    left = array.array("h", [1000] * 22050)
    right = array.array("h", [3000] * 22050)
    stereo = array.array(
        "h", (s for pair in zip(left, right, strict=True) for s in pair)
    )
    path = write_wav(
        tmp_path / "s.wav", rate=22050, channels=2, width=2, frames=stereo.tobytes()
    )

    pcm = load_wav(path, 8000)

    samples = array.array("h", pcm)
    assert len(samples) == 8000  # one second at the new rate
    assert set(samples) == {2000}  # the average of both channels


def test_an_8_bit_wav_is_refused_with_a_way_to_fix_it(tmp_path):
    path = write_wav(
        tmp_path / "b.wav", rate=8000, channels=1, width=1, frames=b"\x80" * 800
    )

    with pytest.raises(
        AudioFormatError, match="8-bit samples; convert it to 16-bit PCM"
    ):
        load_wav(path, 16000)


def test_a_file_that_is_not_a_wav_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")

    with pytest.raises(AudioFormatError, match="is not a PCM WAV file"):
        load_wav(path, 16000)


@pytest.mark.e2e
def test_simulate_call_records_calls_in_a_running_server_and_says_where(daphne_server):
    out = io.StringIO()

    call_command(
        "simulate_call",
        "--url",
        daphne_server.url,
        "--seconds",
        "1",
        "--calls",
        "2",
        "--fast",
        "--dtmf",
        "9#",
        stdout=out,
    )

    output = out.getvalue()
    assert "2 call(s) recorded." in output
    assert Call.objects.count() == 2
    for call in Call.objects.all():
        assert f"call {call.uuid}: 50 frames (1.0 s at 16000 Hz)" in output
        assert f"page: {daphne_server.url}/calls/uuid/{call.uuid}/" in output
        [recording] = wait_for_recordings(call.uuid)
        assert recording.frame_count == 50
        digits = [e.dtmf_digit for e in CallEvent.objects.filter(call=call)]
        assert [d for d in digits if d] == ["9", "#"]


@pytest.mark.e2e
def test_call_page_link_printed_by_the_simulator_leads_to_the_call(
    daphne_server, user_client
):
    out = io.StringIO()
    call_command(
        "simulate_call",
        "--url",
        daphne_server.url,
        "--seconds",
        "0.2",
        "--fast",
        stdout=out,
    )
    call = Call.objects.get()

    response = user_client.get(f"/calls/uuid/{call.uuid}/")

    assert response.status_code == 302
    assert response["Location"] == call.get_absolute_url()


def test_simulate_call_fails_clearly_when_the_server_is_unreachable():
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(CommandError, match=f"cannot reach the server at {url}"):
        call_command("simulate_call", "--url", url, "--fast", "--seconds", "0.1")


class FakeVonageApp(BaseHTTPRequestHandler):
    """A server that answers the answer webhook wrongly, in a way set per test."""

    answer_body = b"[]"
    answer_status = 200

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(self.answer_status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.answer_body)

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_app():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeVonageApp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_against(server, *, status=200, body) -> None:
    server.RequestHandlerClass = type(
        "Handler", (FakeVonageApp,), {"answer_status": status, "answer_body": body}
    )
    url = f"http://127.0.0.1:{server.server_address[1]}"
    call_command("simulate_call", "--url", url, "--fast", "--seconds", "0.1")


def test_simulate_call_fails_when_the_answer_webhook_errs(fake_app):
    with pytest.raises(CommandError, match="answer webhook answered 500"):
        run_against(fake_app, status=500, body=b"boom")


def test_simulate_call_fails_on_an_ncco_without_a_socket(fake_app):
    ncco = json.dumps([{"action": "talk", "text": "hi"}]).encode()

    with pytest.raises(CommandError, match="the NCCO has no connect action"):
        run_against(fake_app, body=ncco)


def test_simulate_call_fails_when_the_socket_is_refused(fake_app):
    ncco = [
        {
            "action": "connect",
            "endpoint": [
                {
                    "type": "websocket",
                    "uri": f"ws://127.0.0.1:{free_port()}/ws/audio",
                    "content-type": "audio/l16;rate=16000",
                }
            ],
        }
    ]

    with pytest.raises(CommandError, match="could not open the socket"):
        run_against(fake_app, body=json.dumps(ncco).encode())


def test_simulate_call_refuses_keys_a_phone_does_not_have():
    with pytest.raises(CommandError, match="--dtmf takes only the keys"):
        call_command("simulate_call", "--dtmf", "12x")


@pytest.mark.e2e
def test_a_socket_the_server_closes_early_is_reported_with_its_code(daphne_server):
    import asyncio

    import httpx

    from recordings_app.simulator import SimulationError
    from recordings_app.simulator.caller import CallPlan, play_call

    async def play():
        async with httpx.AsyncClient() as http:
            plan = CallPlan(audio=lambda rate: beep_tone(rate, 2.0), sample_rate=99)
            await play_call(http, daphne_server.url, plan)

    with pytest.raises(
        SimulationError,
        match=r"closed the socket after \d+ of \d+ frames \(code 4415\)",
    ):
        asyncio.run(play())


SIGNED = {"VONAGE_SIGNATURE_SECRET": "vonage-signature-secret-0123456789abcdef"}


@pytest.mark.e2e
@pytest.mark.parametrize("daphne_env", [SIGNED])
def test_simulate_call_signs_like_vonage_when_the_secret_is_set(
    daphne_server, settings
):
    settings.VONAGE_SIGNATURE_SECRET = SIGNED["VONAGE_SIGNATURE_SECRET"]

    call_command(
        "simulate_call",
        "--url",
        daphne_server.url,
        "--fast",
        "--seconds",
        "0.5",
        stdout=io.StringIO(),
    )

    [recording] = wait_for_recordings(Call.objects.get().uuid)
    assert recording.frame_count == 25


@pytest.mark.e2e
@pytest.mark.parametrize("daphne_env", [SIGNED])
def test_an_unsigned_simulator_is_turned_away_by_a_signed_server(daphne_server):
    with pytest.raises(CommandError, match="event webhook answered 401"):
        call_command(
            "simulate_call", "--url", daphne_server.url, "--fast", "--seconds", "0.5"
        )
    assert not Call.objects.exists()
