"""audio.codecs: decoding stored audio never hides a read error as silence."""

from __future__ import annotations

import io

import pytest

from recordings_app.audio import codecs

from .helpers import speech

SPEECH = speech("beckett-16k.wav")


class FailsNearTheEnd(io.BytesIO):
    """A stored file whose storage fails on its last few bytes (a bad sector)."""

    def read(self, size: int = -1) -> bytes:
        if (
            self.tell() + (size if size >= 0 else len(self.getvalue()))
            > len(self.getvalue()) - 40
        ):
            raise OSError("read error near the end")
        return super().read(size)


def test_a_read_error_inside_the_decoder_is_raised_even_near_the_end(tmp_path):
    wav = tmp_path / "speech.wav"
    wav.write_bytes(
        codecs.wav_header(sample_rate=16000, sample_count=len(SPEECH) // 2) + SPEECH
    )
    flac = tmp_path / "speech.flac"
    codecs.encode(wav, flac, to="flac")

    with pytest.raises(OSError, match="read error near the end"):
        b"".join(
            codecs.pcm_blocks(
                FailsNearTheEnd(flac.read_bytes()), sample_count=len(SPEECH) // 2
            )
        )
