from __future__ import annotations

import io
import itertools
import json
import os
import random
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from recordings_app.audio import peaks as audio_peaks
from recordings_app.audio import spool
from recordings_app.audio.pcm import frame_bytes
from recordings_app.audio.spool import WAV_HEADER_SIZE, SpoolWriter

CALL_UUID = "aaaaaaaa-1111-2222-3333-444444444444"
CONVERSATION_UUID = "CON-bbbbbbbb-1111-2222-3333-444444444444"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def pcm(length: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(length)


def spool_writer(spool_dir: Path, **overrides) -> SpoolWriter:
    options = {
        "call_uuid": CALL_UUID,
        "conversation_uuid": CONVERSATION_UUID,
        "sample_rate": 16000,
    }
    return SpoolWriter(spool_dir, **{**options, **overrides})


def wav_contents(path: Path) -> tuple[int, int, int, int, bytes]:
    with wave.open(str(path), "rb") as wav:
        return (
            wav.getframerate(),
            wav.getsampwidth(),
            wav.getnchannels(),
            wav.getnframes(),
            wav.readframes(wav.getnframes()),
        )


@pytest.mark.parametrize(
    ("sample_rate", "expected"), [(8000, 320), (16000, 640), (24000, 960)]
)
def test_one_frame_holds_20_ms_of_16_bit_mono_audio(sample_rate, expected):
    assert frame_bytes(sample_rate) == expected


@pytest.mark.parametrize("sample_rate", [8000, 16000, 24000])
def test_spool_is_a_wav_holding_exactly_the_audio_received(tmp_path, sample_rate):
    data = pcm(frame_bytes(sample_rate) * 50, seed=sample_rate)  # one second
    writer = spool_writer(tmp_path, sample_rate=sample_rate)
    for start in range(0, len(data), frame_bytes(sample_rate)):
        writer.write(data[start : start + frame_bytes(sample_rate)])

    finished = writer.close()

    assert wav_contents(finished.path) == (sample_rate, 2, 1, sample_rate, data)
    assert finished.sample_count == sample_rate
    assert finished.frame_count == 50
    assert finished.duration_seconds == 1.0
    assert finished.size_bytes == WAV_HEADER_SIZE + len(data)
    assert not finished.trailing_byte_dropped


def test_odd_trailing_byte_is_carried_to_the_next_frame(tmp_path):
    sizes = [321, 319, 1, 1, 639, 3, 640, 2]  # 1926 bytes: every sample whole
    data = pcm(sum(sizes))
    writer = spool_writer(tmp_path)
    offset = 0
    for size in sizes:
        writer.write(data[offset : offset + size])
        offset += size

    finished = writer.close()

    *_, sample_count, frames = wav_contents(finished.path)
    assert frames == data
    assert sample_count == finished.sample_count == len(data) // 2
    assert finished.frame_count == len(sizes)
    assert finished.bytes_received == len(data)
    assert finished.odd_byte_carries == 3
    assert not finished.trailing_byte_dropped


def test_odd_final_byte_is_reported_as_dropped(tmp_path):
    data = pcm(641)
    writer = spool_writer(tmp_path)
    writer.write(data[:320])
    writer.write(data[320:])

    finished = writer.close()

    *_, sample_count, frames = wav_contents(finished.path)
    assert frames == data[:-1]
    assert sample_count == finished.sample_count == 320
    assert finished.bytes_received == 641
    assert finished.trailing_byte_dropped


def test_each_writer_for_the_same_call_gets_a_file_of_its_own(tmp_path):
    first = spool_writer(tmp_path)
    second = spool_writer(tmp_path)  # a reconnect of the same call
    first.write(pcm(640, seed=1))
    second.write(pcm(640, seed=2))

    first_finished, second_finished = first.close(), second.close()

    assert first_finished.path != second_finished.path
    assert first_finished.meta_path != second_finished.meta_path
    assert wav_contents(first_finished.path)[-1] == pcm(640, seed=1)
    assert wav_contents(second_finished.path)[-1] == pcm(640, seed=2)


def test_a_spool_is_never_opened_over_an_existing_one(tmp_path, monkeypatch):
    """Even if the random part of the name repeats within the same second."""
    frozen = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return frozen

    monkeypatch.setattr(spool, "datetime", FrozenDatetime)
    monkeypatch.setattr(spool.secrets, "token_hex", lambda nbytes: "00000000")
    first = spool_writer(tmp_path)
    first.write(pcm(640))
    first_meta = first.meta_path.read_text()

    with pytest.raises(FileExistsError):
        spool_writer(tmp_path, conversation_uuid="CON-other")

    finished = first.close()
    assert finished.meta_path.read_text() == first_meta
    assert wav_contents(finished.path)[-1] == pcm(640)


def test_metadata_beside_the_spool_is_written_when_it_opens(tmp_path):
    before = datetime.now(UTC)
    writer = spool_writer(tmp_path, sample_rate=24000)

    meta = json.loads(writer.meta_path.read_text())

    assert writer.meta_path.parent == writer.path.parent == tmp_path
    assert set(meta) == {
        "call_uuid",
        "conversation_uuid",
        "sample_rate",
        "started_at",
        "audio_file",
    }
    assert meta["call_uuid"] == CALL_UUID
    assert meta["conversation_uuid"] == CONVERSATION_UUID
    assert meta["sample_rate"] == 24000
    assert meta["audio_file"] == writer.path.name
    started_at = datetime.fromisoformat(meta["started_at"])
    assert started_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= started_at <= datetime.now(UTC)
    writer.close()


def test_buffered_audio_reaches_the_disk_once_flush_seconds_have_passed(tmp_path):
    clock = FakeClock()
    writer = spool_writer(tmp_path, flush_seconds=1.0, clock=clock)
    frame = pcm(640)

    clock.now = 0.5
    writer.write(frame)
    clock.now = 1.0
    writer.write(frame)

    assert os.stat(writer.path).st_size == WAV_HEADER_SIZE + 2 * len(frame)
    assert writer.path.read_bytes()[WAV_HEADER_SIZE:] == frame * 2
    writer.close()


def test_buffered_audio_stays_off_the_disk_until_flush_seconds_have_passed(
    tmp_path,
):
    clock = FakeClock()
    writer = spool_writer(tmp_path, flush_seconds=1.0, clock=clock)
    frame = pcm(640)

    clock.now = 0.999
    writer.write(frame)
    assert os.stat(writer.path).st_size == 0

    clock.now = 1.0
    writer.write(frame)
    flushed_size = os.stat(writer.path).st_size
    assert flushed_size == WAV_HEADER_SIZE + 2 * len(frame)

    clock.now = 1.999  # the next flush is due flush_seconds after the last one
    writer.write(frame)
    assert os.stat(writer.path).st_size == flushed_size

    clock.now = 2.0
    writer.write(frame)
    assert os.stat(writer.path).st_size == WAV_HEADER_SIZE + 4 * len(frame)
    writer.close()


def test_closing_twice_returns_the_same_finished_spool(tmp_path):
    writer = spool_writer(tmp_path)
    writer.write(pcm(640))
    finished = writer.close()
    closed_bytes = finished.path.read_bytes()

    assert writer.close() is finished
    assert finished.path.read_bytes() == closed_bytes
    assert wav_contents(finished.path)[-1] == pcm(640)


def test_discard_removes_the_spool_and_its_metadata(tmp_path):
    writer = spool_writer(tmp_path)
    finished = writer.close()
    assert finished.path.exists()
    assert finished.meta_path.exists()

    finished.discard()

    assert not finished.path.exists()
    assert not finished.meta_path.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("call_uuid", "conversation_uuid"),
    [
        ("../../etc/passwd", CONVERSATION_UUID),
        ("{tmp_path}/etc/passwd", CONVERSATION_UUID),
        ("..", CONVERSATION_UUID),
        ("../..\\..\\etc\\passwd", CONVERSATION_UUID),
        ("", "../../etc/passwd"),
    ],
)
def test_hostile_call_uuid_cannot_escape_the_spool_dir(
    tmp_path, call_uuid, conversation_uuid
):
    """The targets exist inside tmp_path, so an escape would land there, not in /etc."""
    call_uuid = call_uuid.format(tmp_path=tmp_path)
    (tmp_path / "etc").mkdir()
    spool_dir = tmp_path / "srv" / "spool"
    writer = spool_writer(
        spool_dir, call_uuid=call_uuid, conversation_uuid=conversation_uuid
    )
    writer.write(pcm(640))
    finished = writer.close()

    assert finished.path.resolve().parent == spool_dir.resolve()
    assert finished.meta_path.resolve().parent == spool_dir.resolve()
    written = {path for path in tmp_path.rglob("*") if path.is_file()}
    assert written == {finished.path, finished.meta_path}
    assert json.loads(finished.meta_path.read_text())["call_uuid"] == call_uuid


def wav_file(samples, rate: int = 16000) -> io.BytesIO:
    """An in-memory 16-bit mono WAV of the given samples."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    buffer.seek(0)
    return buffer


def tone(seconds: float, amplitude: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * 440 * t))


def test_silence_draws_a_flat_waveform():
    peaks = audio_peaks.wav_peaks(wav_file(np.zeros(16000 * 3)))

    assert len(peaks) == audio_peaks.PEAK_SLICES
    assert set(peaks) == {0}


def test_a_full_scale_tone_reaches_the_top_of_the_waveform():
    peaks = audio_peaks.wav_peaks(wav_file(tone(2, 32767)))

    assert min(peaks) >= 990
    assert max(peaks) == 1000


def test_a_loud_second_half_shows_in_the_second_half_of_the_waveform():
    quiet_then_loud = np.concatenate([tone(5, 1000), tone(5, 30000)])

    peaks = audio_peaks.wav_peaks(wav_file(quiet_then_loud), slices=100)

    assert len(peaks) == 100
    assert max(peaks[:50]) <= 31  # 1000 / 32768 of full scale
    assert min(peaks[50:]) >= 900


def test_peaks_are_bounded_whatever_the_length_and_fewer_for_very_short_audio():
    assert len(audio_peaks.wav_peaks(wav_file(np.zeros(16000 * 61)))) == 1000
    assert len(audio_peaks.wav_peaks(wav_file(np.zeros(16000 * 60 + 7)))) == 1000
    assert len(audio_peaks.wav_peaks(wav_file(np.zeros(1999)))) == 1000
    assert len(audio_peaks.wav_peaks(wav_file(np.ones(250)))) == 250
    assert audio_peaks.wav_peaks(wav_file([])) == []


@pytest.mark.parametrize("chunk", [1000, 4093, 1024 * 1024])
def test_each_peak_is_the_loudest_sample_of_its_slice_however_it_is_read(
    monkeypatch, chunk
):
    samples = np.random.default_rng(1).integers(-32768, 32768, 16000 * 4 + 3)
    samples[12345] = -32768  # full scale the other way
    bounds = [k * len(samples) // 300 for k in range(301)]
    slices = [np.abs(samples[a:b]) for a, b in itertools.pairwise(bounds)]
    expected = [min(round(s.max() * 1000 / 32768), 1000) for s in slices]
    monkeypatch.setattr(audio_peaks, "_PEAK_CHUNK_SAMPLES", chunk)

    assert audio_peaks.wav_peaks(wav_file(samples), slices=300) == expected


def test_the_spool_of_a_call_gives_its_waveform(tmp_path):
    writer = spool_writer(tmp_path)
    loud = np.full(320, 16384, dtype="<i2").tobytes()
    for _ in range(50):
        writer.write(bytes(640))  # a second of silence
    for _ in range(50):
        writer.write(loud)  # then a second at half scale
    finished = writer.close()

    with open(finished.path, "rb") as handle:
        peaks = audio_peaks.wav_peaks(handle, slices=10)

    assert peaks == [0] * 5 + [500] * 5


def test_a_file_that_is_not_a_wav_has_no_waveform():
    with pytest.raises(ValueError, match="not a PCM WAV"):
        audio_peaks.wav_peaks(io.BytesIO(b"not audio at all"))
