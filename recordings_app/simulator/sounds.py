"""What a simulated caller says: a beeping tone, a WAV file, espeak-ng speech.

Each gives 16-bit little-endian mono PCM at the rate the NCCO asks for.
"""

from __future__ import annotations

import array
import math
import subprocess
import sys
import wave
from pathlib import Path

from ..audio.pcm import SAMPLE_WIDTH
from . import SimulationError


def _to_little_endian(samples: array.array) -> bytes:
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def beep_tone(sample_rate: int, seconds: float, frequency: float = 440.0) -> bytes:
    """A tone that beeps twice a second: easy to hear, easy to check by ear."""
    count = int(sample_rate * seconds)
    samples = array.array("h", bytes(count * SAMPLE_WIDTH))
    for i in range(count):
        beeping = (i * 2 // sample_rate) % 2 == 0
        value = math.sin(2 * math.pi * frequency * i / sample_rate) if beeping else 0
        samples[i] = int(12000 * value)
    return _to_little_endian(samples)


class AudioFormatError(SimulationError):
    """A WAV file the simulator cannot turn into 16-bit mono PCM."""


def _resample(samples: array.array, from_rate: int, to_rate: int) -> array.array:
    """Linear interpolation: plenty for a test call, no extra dependency."""
    if from_rate == to_rate or not samples:
        return samples
    count = max(1, int(len(samples) * to_rate / from_rate))
    step = from_rate / to_rate
    last = len(samples) - 1
    out = array.array("h", bytes(count * SAMPLE_WIDTH))
    for i in range(count):
        position = i * step
        left = min(int(position), last)
        right = min(left + 1, last)
        fraction = position - left
        out[i] = int(samples[left] + (samples[right] - samples[left]) * fraction)
    return out


def load_wav(path: Path, sample_rate: int) -> bytes:
    """Read a 16-bit PCM WAV (mono or stereo, any rate) as mono PCM at sample_rate."""
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels, rate = (
                wav.getsampwidth(),
                wav.getnchannels(),
                wav.getframerate(),
            )
            data = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as error:
        reason = str(error) or "too short"
        raise AudioFormatError(f"{path} is not a PCM WAV file ({reason})") from None
    except OSError as error:
        raise AudioFormatError(f"cannot read {path}: {error.strerror}") from None
    if width != SAMPLE_WIDTH:
        raise AudioFormatError(
            f"{path} has {8 * width}-bit samples; convert it to 16-bit PCM, "
            f"for example: sox {path} -b 16 out.wav"
        )
    if channels not in (1, 2):
        raise AudioFormatError(f"{path} has {channels} channels; use mono or stereo")
    samples = array.array("h", data)
    if sys.byteorder == "big":
        samples.byteswap()
    if channels == 2:
        samples = array.array(
            "h", ((samples[i] + samples[i + 1]) // 2 for i in range(0, len(samples), 2))
        )
    return _to_little_endian(_resample(samples, rate, sample_rate))


def speak(text: str, path: Path) -> Path:
    """Write text spoken by espeak-ng to a WAV file (for demos: a voice, not a beep)."""
    try:
        subprocess.run(
            ["espeak-ng", "-s", "150", "-w", str(path), text],
            check=True,
            capture_output=True,
        )
    except FileNotFoundError:
        raise SimulationError(
            "espeak-ng is not installed (apt-get install espeak-ng)"
        ) from None
    except subprocess.CalledProcessError as error:
        raise SimulationError(
            f"espeak-ng failed: {error.stderr.decode()[:200]}"
        ) from None
    return path
