"""How long the waveform of a long call takes: audio.peaks.wav_peaks on a 1-hour WAV.

recording_finalize computes the peaks when a call ends, so this is time
added to every hangup. Writes a WAV of noise (115 MB for an hour at 16 kHz)
to a temporary folder, reads it back as finalise does, and prints figures.
Plain Python, no Django, no database:

    .venv/bin/python bench/peaks.py               # 1 hour, 16 kHz, 3 runs
    .venv/bin/python bench/peaks.py --minutes 10 --runs 5
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.path.insert(0, os.getcwd())  # run from the app's directory

import numpy as np  # noqa: E402

from recordings_app.audio.peaks import wav_peaks  # noqa: E402

RATE = 16000


def write_wav(path: Path, minutes: float) -> int:
    """A WAV of noise, written a minute at a time; returns its size in bytes."""
    rng = np.random.default_rng(0)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        left = int(minutes * 60 * RATE)
        while left:
            count = min(left, 60 * RATE)
            wav.writeframes(rng.integers(-20000, 20000, count, dtype="<i2").tobytes())
            left -= count
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "call.wav"
        size = write_wav(path, options.minutes)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        times = []
        for _ in range(options.runs):
            started = time.perf_counter()
            with open(path, "rb") as handle:
                peaks = wav_peaks(handle)
            times.append(time.perf_counter() - started)
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"{options.minutes:g} min at {RATE} Hz ({size / 1e6:.0f} MB WAV) -> "
        f"{len(peaks)} peaks"
    )
    print(
        "wav_peaks: "
        + ", ".join(f"{t:.3f} s" for t in times)
        + f" (best {min(times):.3f} s, {size / 1e6 / min(times):.0f} MB/s; "
        "the file is in the page cache, as it is right after the call)"
    )
    print(f"peak RSS grew by {(rss_after - rss_before) / 1024:.1f} MB while reading")


if __name__ == "__main__":
    main()
