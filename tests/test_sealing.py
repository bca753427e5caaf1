"""Sealed recordings (audio.sealing): AES-256-GCM chunks under a data key of their own.

Plain-module tests: no Django, no database.
"""

from __future__ import annotations

import base64
import io
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recordings_app.audio import sealing
from recordings_app.audio.sealing import (
    CHUNK,
    BadKeys,
    KeyRing,
    MissingKey,
    SealBroken,
    SealedReader,
    WrongKey,
)

from .helpers import speech

PLAIN = random.Random(5).randbytes(3 * CHUNK + 1234)


def seal(plain: bytes, key: bytes) -> bytes:
    return b"".join(sealing.sealed_chunks(io.BytesIO(plain), key))


def reader(sealed: bytes, key: bytes, size: int) -> SealedReader:
    return SealedReader(io.BytesIO(sealed), key, plain_size=size)


def test_a_sealed_file_reads_back_as_the_plain_one() -> None:
    key = sealing.new_data_key()
    sealed = seal(PLAIN, key)

    assert len(sealed) == sealing.sealed_size(len(PLAIN))
    assert reader(sealed, key, len(PLAIN)).read() == PLAIN


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=len(PLAIN) + 10),
    length=st.integers(min_value=0, max_value=2 * CHUNK + 10),
)
def test_any_range_reads_the_same_bytes_across_chunk_boundaries(
    start: int, length: int
) -> None:
    key = b"k" * 32
    sealed = SEALED_ONCE.setdefault(key, seal(PLAIN, key))
    stream = reader(sealed, key, len(PLAIN))
    stream.seek(start)

    assert stream.read(length) == PLAIN[start : start + length]


SEALED_ONCE: dict[bytes, bytes] = {}


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK])
def test_files_of_every_size_round_trip(size: int) -> None:
    key = sealing.new_data_key()
    plain = PLAIN[:size]

    assert reader(seal(plain, key), key, size).read() == plain


def test_the_sealed_bytes_hold_no_header_and_no_run_of_the_audio() -> None:
    audio = speech()
    for header in (b"RIFF", b"fLaC", b"OggS"):
        plain = header + audio[: 4 * CHUNK]
        sealed = seal(plain, sealing.new_data_key())
        assert header not in sealed
        # No 16-byte run of the plain file appears anywhere in the sealed one.
        runs = {plain[i : i + 16] for i in range(0, len(plain) - 16, 7)}
        assert not any(sealed[i : i + 16] in runs for i in range(len(sealed) - 16))


def test_a_changed_byte_a_dropped_chunk_or_a_cut_short_file_is_an_error() -> None:
    key = sealing.new_data_key()
    sealed = seal(PLAIN, key)
    flipped = bytearray(sealed)
    flipped[CHUNK + 100] ^= 1
    dropped = sealed[: sealing.SEALED_CHUNK] + sealed[2 * sealing.SEALED_CHUNK :]
    swapped = (
        sealed[sealing.SEALED_CHUNK : 2 * sealing.SEALED_CHUNK]
        + sealed[: sealing.SEALED_CHUNK]
        + sealed[2 * sealing.SEALED_CHUNK :]
    )
    cut = sealed[: 3 * sealing.SEALED_CHUNK]  # the last chunk gone
    for damaged in (bytes(flipped), dropped, swapped, cut):
        with pytest.raises(SealBroken, match="does not decrypt|holds"):
            reader(damaged, key, len(PLAIN)).read()


def test_another_data_key_reads_nothing() -> None:
    sealed = seal(PLAIN, sealing.new_data_key())

    with pytest.raises(SealBroken):
        reader(sealed, sealing.new_data_key(), len(PLAIN)).read(10)


def spec(key_id: str) -> tuple[str, bytes]:
    key = random.Random(key_id).randbytes(32)
    return f"{key_id}:{base64.urlsafe_b64encode(key).decode()}", key


def test_the_first_key_wraps_and_every_key_unwraps() -> None:
    new, _ = spec("new")
    old, _ = spec("old")
    data_key = sealing.new_data_key()
    wrapped_by_old = KeyRing.parse(old).wrap(data_key)

    ring = KeyRing.parse(f"{new},{old}")

    assert ring.current_id == "new"
    assert ring.wrap(data_key).key_id == "new"
    assert ring.unwrap(wrapped_by_old) == data_key
    assert ring.unwrap(ring.wrap(data_key)) == data_key


def test_a_missing_or_wrong_key_is_a_clear_error() -> None:
    data_key = sealing.new_data_key()
    wrapped = KeyRing.parse(spec("a")[0]).wrap(data_key)
    impostor = spec("b")[0].replace("b:", "a:")  # another key named a

    with pytest.raises(MissingKey, match=r"'a', which is not in .*\(it has b\)"):
        KeyRing.parse(spec("b")[0]).unwrap(wrapped)
    with pytest.raises(WrongKey, match="not the one this recording was sealed with"):
        KeyRing.parse(impostor).unwrap(wrapped)


@pytest.mark.parametrize(
    "value, reason",
    [
        ("", "item 1 is not ID:KEY"),
        ("justakey", "item 1 is not ID:KEY"),
        ("a:" + base64.urlsafe_b64encode(b"x" * 16).decode(), "not 32 bytes"),
        ("a:not base64!", "not 32 bytes"),
        ("a b:" + base64.urlsafe_b64encode(b"x" * 32).decode(), "item 1"),
        (f"{spec('a')[0]},{spec('a')[0]}", "given twice"),
    ],
)
def test_bad_key_settings_say_what_is_wrong(value: str, reason: str) -> None:
    with pytest.raises(BadKeys, match=reason):
        KeyRing.parse(value)


def test_a_new_key_spec_is_accepted_and_unpadded_keys_too() -> None:
    printed = sealing.new_key_spec()
    unpadded = printed.rstrip("=")

    assert KeyRing.parse(printed).ids == [printed.partition(":")[0]]
    assert KeyRing.parse(unpadded).ids == KeyRing.parse(printed).ids
