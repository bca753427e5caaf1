"""Recordings stored as FLAC or Opus, and sealed at rest: stored, played, downloaded.

The audio is real speech (../shared/audio), where compression is judged.
"""

from __future__ import annotations

import hashlib
import io
import shutil

import numpy as np
import pytest
import soundfile
from django.urls import reverse

from recordings_app.audio import codecs, sealing
from recordings_app.models import AccessLogEntry, Recording
from recordings_app.services import recordings, stored_audio

from .helpers import body, make_call, record, speech

pytestmark = pytest.mark.django_db

SPEECH = speech()  # 44 s of a man reading Dickens


def wav_file(pcm: bytes, rate: int = 16000) -> bytes:
    return codecs.wav_header(sample_rate=rate, sample_count=len(pcm) // 2) + pcm


def stored_bytes(recording: Recording) -> bytes:
    with recording.file.storage.open(recording.file.name, "rb") as handle:
        return handle.read()


def get(client, name: str, recording: Recording, **headers):
    response = client.get(reverse(f"recordings:{name}", args=[recording.pk]), **headers)
    return response, body(response) if response.streaming else response.content


@pytest.fixture
def keys(settings) -> str:
    settings.CALLRECORDER_ENCRYPTION_KEYS = sealing.new_key_spec()
    return settings.CALLRECORDER_ENCRYPTION_KEYS


def test_flac_stores_speech_in_under_half_the_bytes_and_decodes_bit_exact(
    settings, user_client
):
    settings.CALLRECORDER_STORAGE_FORMAT = "flac"

    recording = record(make_call(1), SPEECH, settings.SPOOL_DIR)

    stored = stored_bytes(recording)
    assert recording.format == "flac" and recording.file.name.endswith(".flac")
    assert stored[:4] == b"fLaC"
    assert len(stored) == recording.size_bytes < 0.5 * len(wav_file(SPEECH))
    decoded, rate = soundfile.read(io.BytesIO(stored), dtype="<i2")
    assert rate == 16000 and decoded.tobytes() == SPEECH
    assert recording.pcm_sha256 == hashlib.sha256(SPEECH).hexdigest()
    assert recording.sha256 == hashlib.sha256(stored).hexdigest()


def test_the_pcm_hash_is_the_same_in_wav_and_flac(settings):
    as_wav = record(make_call(1), SPEECH, settings.SPOOL_DIR)
    settings.CALLRECORDER_STORAGE_FORMAT = "flac"
    as_flac = record(make_call(2), SPEECH, settings.SPOOL_DIR)

    assert as_wav.pcm_sha256 == as_flac.pcm_sha256
    assert as_wav.sha256 != as_flac.sha256


def test_download_wav_of_a_flac_recording_is_the_recorded_wav(settings, user_client):
    as_wav = record(make_call(1), SPEECH, settings.SPOOL_DIR)
    settings.CALLRECORDER_STORAGE_FORMAT = "flac"
    as_flac = record(make_call(2), SPEECH, settings.SPOOL_DIR)

    response, downloaded = get(user_client, "recording_download", as_flac)

    assert response.status_code == 200
    assert response["Content-Type"] == "audio/wav"
    assert response["Content-Disposition"].endswith('.wav"')
    assert int(response["Content-Length"]) == len(downloaded)
    assert downloaded == stored_bytes(as_wav) == wav_file(SPEECH)


def test_the_player_gets_the_flac_with_seeking_and_original_is_the_file(
    settings, user_client
):
    settings.CALLRECORDER_STORAGE_FORMAT = "flac"
    recording = record(make_call(1), SPEECH, settings.SPOOL_DIR)
    stored = stored_bytes(recording)

    response, part = get(
        user_client, "recording_media", recording, HTTP_RANGE="bytes=1000-70999"
    )
    original_response, original = get(user_client, "recording_original", recording)

    assert response.status_code == 206
    assert response["Content-Type"] == "audio/flac"
    assert response["Content-Range"] == f"bytes 1000-70999/{len(stored)}"
    assert part == stored[1000:71000]
    assert original == stored
    assert original_response["Content-Disposition"].endswith('.flac"')


def test_opus_is_about_20_kbit_s_and_decodes_to_the_recorded_length(
    settings, user_client
):
    settings.CALLRECORDER_STORAGE_FORMAT = "opus"

    recording = record(make_call(1), SPEECH, settings.SPOOL_DIR)
    response, downloaded = get(user_client, "recording_download", recording)

    stored = stored_bytes(recording)
    kbit_s = len(stored) * 8 / recording.duration_seconds / 1000
    assert stored[:4] == b"OggS" and 12 < kbit_s < 28
    assert downloaded[:44] == wav_file(SPEECH)[:44]  # the recorded length
    assert len(downloaded) == len(wav_file(SPEECH))
    # Lossy, but the same speech: the decoded waveform follows the original.
    original = np.frombuffer(SPEECH, "<i2").astype(float)
    decoded = np.frombuffer(downloaded[44:], "<i2").astype(float)
    assert np.corrcoef(original, decoded)[0, 1] > 0.9
    assert recording.pcm_sha256 == hashlib.sha256(SPEECH).hexdigest()


def test_the_call_page_offers_both_downloads_and_both_hashes(settings, user_client):
    settings.CALLRECORDER_STORAGE_FORMAT = "flac"
    recording = record(make_call(1), SPEECH, settings.SPOOL_DIR)

    page = user_client.get(recording.call.get_absolute_url()).content.decode()

    assert f'href="{recording.get_download_url()}" download>Download WAV' in page
    assert recording.get_download_url().endswith(".wav")
    assert "Download original (FLAC)" in page
    assert recording.pcm_sha256 in page and recording.sha256 in page


@pytest.mark.parametrize("storage_format, sealed", [("flac", False), ("wav", True)])
def test_the_waveform_comes_back_from_a_flac_or_a_sealed_file(
    settings, storage_format, sealed
):
    settings.CALLRECORDER_STORAGE_FORMAT = storage_format
    settings.CALLRECORDER_ENCRYPTION_KEYS = sealing.new_key_spec() if sealed else ""
    recording = record(make_call(1), SPEECH, settings.SPOOL_DIR)

    assert recordings.recording_peaks(recording=recording) == recording.peaks
    assert max(recording.peaks) > 100


# --- sealed at rest ---------------------------------------------------------


@pytest.mark.parametrize("storage_format", ["wav", "flac"])
def test_a_sealed_recording_holds_no_header_and_plays_the_same(
    settings, user_client, keys, storage_format
):
    settings.CALLRECORDER_STORAGE_FORMAT = storage_format
    recording = record(make_call(1), SPEECH, settings.SPOOL_DIR)

    sealed = stored_bytes(recording)
    response, downloaded = get(user_client, "recording_download", recording)

    assert recording.sealed and recording.file.name.endswith(".sealed")
    assert not any(magic in sealed for magic in (b"RIFF", b"fLaC", b"OggS"))
    assert SPEECH[20000:20064] not in sealed
    assert len(sealed) == sealing.sealed_size(recording.size_bytes)
    assert downloaded == wav_file(SPEECH)


def test_a_range_in_the_middle_of_a_sealed_file_crosses_chunks(
    settings, user_client, keys
):
    recording = record(make_call(1), SPEECH, settings.SPOOL_DIR)
    plain = wav_file(SPEECH)
    start, end = 3 * sealing.CHUNK - 5, 5 * sealing.CHUNK + 7

    response, part = get(
        user_client, "recording_media", recording, HTTP_RANGE=f"bytes={start}-{end}"
    )

    assert response.status_code == 206
    assert part == plain[start : end + 1]


def test_a_missing_or_wrong_key_is_a_clear_error_never_noise(
    settings, user_client, keys, caplog
):
    recording = record(make_call(1), SPEECH, settings.SPOOL_DIR)
    key_id = keys.partition(":")[0]

    settings.CALLRECORDER_ENCRYPTION_KEYS = sealing.new_key_spec()  # another id
    missing, missing_text = get(user_client, "recording_media", recording)
    settings.CALLRECORDER_ENCRYPTION_KEYS = (
        f"{key_id}:{sealing.new_key_spec().partition(':')[2]}"  # same id, not it
    )
    wrong, wrong_text = get(user_client, "recording_download", recording)
    settings.CALLRECORDER_ENCRYPTION_KEYS = ""
    unset, unset_text = get(user_client, "recording_original", recording)

    assert (missing.status_code, wrong.status_code, unset.status_code) == (503,) * 3
    assert "its encryption key is not in this server's configuration" in (
        missing_text.decode()
    )
    assert "the configured key is not the one it was sealed with" in (
        wrong_text.decode()
    )
    assert "its encryption key is not in this server's configuration" in (
        unset_text.decode()
    )
    # Which key is missing is for the administrator (the log), not the page.
    assert key_id not in missing_text.decode()
    assert f"key '{key_id}', which is not in CALLRECORDER_ENCRYPTION_KEYS" in (
        caplog.text
    )


@pytest.mark.parametrize("storage_format", ["wav", "flac", "opus"])
@pytest.mark.parametrize("where", ["first chunk", "a middle chunk"])
def test_a_damaged_sealed_file_is_refused_never_played_as_silence(
    settings, user_client, keys, storage_format, where
):
    settings.CALLRECORDER_STORAGE_FORMAT = storage_format
    recording = record(make_call(1), SPEECH, settings.SPOOL_DIR)
    offset = 10 if where == "first chunk" else recording.size_bytes // 2
    with open(recording.file.path, "r+b") as handle:
        handle.seek(offset)
        handle.write(bytes(b ^ 0xFF for b in handle.read(3)))

    played, played_text = get(user_client, "recording_media", recording)
    wav, wav_text = get(user_client, "recording_download", recording)

    if where == "first chunk" or storage_format != "wav":
        # Refused before a byte is sent (FLAC and Opus decode a block first).
        assert wav.status_code == 503
        assert "the stored file is damaged" in wav_text.decode()
        assert not AccessLogEntry.objects.filter(action="download").exists()
    else:  # a WAV's bytes stop short at the damaged chunk
        assert len(wav_text) < len(wav_file(SPEECH))
    if where == "first chunk":
        assert played.status_code == 503
    else:
        assert len(played_text) < recording.size_bytes


def test_sealed_files_are_streamed_by_the_app_even_with_x_accel_redirect(
    settings, user_client, keys
):
    settings.RECORDINGS_DELIVERY = "x-accel-redirect"
    sealed = record(make_call(1), SPEECH, settings.SPOOL_DIR)
    settings.CALLRECORDER_ENCRYPTION_KEYS = keys + "," + sealing.new_key_spec()

    response, played = get(user_client, "recording_media", sealed)

    assert "X-Accel-Redirect" not in response
    assert played == wav_file(SPEECH)


def test_rotation_rewraps_every_key_and_the_old_key_can_then_go(
    settings, user_client, keys
):
    from django.core.management import call_command

    first = record(make_call(1), SPEECH, settings.SPOOL_DIR)
    before = stored_bytes(first)
    newest = sealing.new_key_spec()
    settings.CALLRECORDER_ENCRYPTION_KEYS = f"{newest},{keys}"
    second = record(make_call(2), SPEECH[:32000], settings.SPOOL_DIR)
    out = io.StringIO()

    call_command("rotate_recording_keys", stdout=out)
    settings.CALLRECORDER_ENCRYPTION_KEYS = newest  # the old key dropped
    first.refresh_from_db()
    _, played = get(user_client, "recording_download", first)

    assert "Rewrapped 1 recording key(s)" in out.getvalue()
    assert "1 were under it already" in out.getvalue()
    assert {r.key_id for r in (first, second)} == {newest.partition(":")[0]}
    assert stored_bytes(first) == before  # no audio re-encrypted
    assert played == wav_file(SPEECH)


def test_a_purged_recording_cannot_be_read_from_a_backup_copy(settings, keys, tmp_path):
    from django.utils import timezone

    from recordings_app.services.retention import purge_calls_older_than

    recording = record(make_call(1), SPEECH, settings.SPOOL_DIR)
    backup = tmp_path / "backup.sealed"
    shutil.copyfile(recording.file.path, backup)
    ring = sealing.KeyRing.parse(keys)
    wrapped = sealing.WrappedKey(recording.key_id, recording.wrapped_key)

    def open_backup(data_key: bytes) -> bytes:
        with open(backup, "rb") as raw:
            reader = sealing.SealedReader(
                raw, data_key, plain_size=recording.size_bytes
            )
            return reader.read(4)

    assert open_backup(ring.unwrap(wrapped)) == b"RIFF"  # while the row lives

    purge_calls_older_than(timezone.now(), dry_run=False)

    # The only copy of the wrapped data key went with the row: nothing in
    # the database, nor in the spool folder, keeps it.
    assert not Recording.objects.filter(wrapped_key=recording.wrapped_key).exists()
    assert not any(
        recording.wrapped_key in path.read_text(errors="ignore")
        for path in settings.SPOOL_DIR.rglob("*")
        if path.is_file()
    )
    # And the key-encryption key alone opens nothing.
    with pytest.raises(sealing.SealBroken):
        open_backup(ring._keys[recording.key_id])


def test_a_sealed_recording_whose_row_failed_is_recovered_and_plays(
    settings, user_client, keys, monkeypatch
):
    from recordings_app.audio.spool import SpoolWriter, orphaned_spools

    call = make_call(1)
    spool = SpoolWriter(
        settings.SPOOL_DIR,
        call_uuid=call.uuid,
        conversation_uuid="CON-1",
        sample_rate=16000,
    )
    spool.write(SPEECH)
    finished = spool.close()

    def database_down(self, *args, **kwargs):
        raise OSError("the database went away")

    monkeypatch.setattr(Recording, "save", database_down)
    with pytest.raises(OSError):
        recordings.recording_finalize(call=call, spool=finished)
    monkeypatch.undo()

    [meta] = orphaned_spools(settings.SPOOL_DIR, grace_seconds=-1)
    recovered = recordings.recording_recover(meta_path=meta)
    _, played = get(user_client, "recording_download", recovered)

    assert recovered.sealed and played == wav_file(SPEECH)
    assert list(settings.SPOOL_DIR.iterdir()) == []


def test_stored_form_leaves_no_work_file_and_keeps_the_spool(settings, keys, tmp_path):
    wav_path = tmp_path / "call.wav"
    wav_path.write_bytes(wav_file(SPEECH))

    form = stored_audio.stored_form(wav_path=wav_path, to="flac", wav_sha256="")

    assert form.name == "call.flac.sealed"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "call.wav",
        "call.work.flac.sealed",
    ]
    assert oct(form.path.stat().st_mode & 0o777) == "0o600"
