"""manage.py compute_peaks fills the waveform of recordings stored without one."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from recordings_app.models import Recording

from .helpers import make_call, record

pytestmark = pytest.mark.django_db


def compute_peaks(*args: str) -> str:
    out = io.StringIO()
    call_command("compute_peaks", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def half_silent_half_loud(seconds: int = 2) -> bytes:
    half = 16000 * seconds // 2
    return (
        np.concatenate([np.zeros(half), np.full(half, 16384)]).astype("<i2").tobytes()
    )


def test_a_recording_stored_without_peaks_gets_its_waveform(settings):
    recording = record(make_call(1), half_silent_half_loud(), settings.SPOOL_DIR)
    drawn = recording.peaks
    Recording.objects.update(peaks=[])  # as stored before waveforms were kept

    output = compute_peaks()

    recording.refresh_from_db()
    assert "1 recording(s) given a waveform." in output
    assert recording.peaks == drawn
    assert recording.peaks[:500] == [0] * 500
    assert recording.peaks[500:] == [500] * 500


def test_recordings_that_have_peaks_are_left_alone_unless_asked(settings):
    recording = record(make_call(1), half_silent_half_loud(), settings.SPOOL_DIR)
    Recording.objects.update(peaks=[7])

    assert "0 recording(s)" in compute_peaks()
    recording.refresh_from_db()
    assert recording.peaks == [7]

    assert "1 recording(s)" in compute_peaks("--all")
    recording.refresh_from_db()
    assert len(recording.peaks) == 1000


def test_a_missing_file_is_reported_and_the_others_still_get_peaks(settings):
    lost = record(make_call(1), half_silent_half_loud(), settings.SPOOL_DIR)
    kept = record(make_call(2), half_silent_half_loud(), settings.SPOOL_DIR)
    Recording.objects.update(peaks=[])
    lost.file.storage.delete(lost.file.name)

    with pytest.raises(CommandError, match="1 recording"):
        compute_peaks()

    kept.refresh_from_db()
    lost.refresh_from_db()
    assert len(kept.peaks) == 1000
    assert lost.peaks == []
