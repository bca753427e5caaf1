"""A recording's file as stored: encoded in its format, sealed when keys are set.

Both ways through here: a WAV made into the file that goes to storage, and
a stored file opened again as the plain one (for playing, downloading,
converting). The storage API only: the bucket may be remote.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from ..audio import codecs, sealing
from ..audio.hashing import file_sha256
from ..audio.spool import private_file
from ..models import Recording


@functools.cache
def _keyring(spec: str) -> sealing.KeyRing | None:
    return sealing.KeyRing.parse(spec) if spec else None


def keyring() -> sealing.KeyRing | None:
    """The configured key-encryption keys; None when encryption is off."""
    return _keyring(settings.CALLRECORDER_ENCRYPTION_KEYS)


@dataclass(frozen=True)
class StoredForm:
    """A file ready for storage, beside the spool, and what a row says of it."""

    path: Path
    name: str  # for storage: the spool's stem, the format's extension, .sealed
    format: str
    size_bytes: int  # of the plain (unsealed) file
    sha256: str  # of the plain file
    key: sealing.WrappedKey | None


def stored_form(*, wav_path: Path, to: str, wav_sha256: str) -> StoredForm:
    """Encode a WAV (unless `to` is wav) and seal it (if keys are set).

    Work files go beside the WAV (0600; discard_work_files removes them)
    and a retry overwrites them; the WAV itself is left as it is.
    """
    name = f"{wav_path.stem}.{codecs.EXTENSIONS[to]}"
    plain, sha256 = wav_path, wav_sha256
    if to != codecs.WAV:
        plain = _work_file(wav_path, name)
        codecs.encode(wav_path, plain, to=to)
        sha256 = file_sha256(plain)
    size = plain.stat().st_size
    keys = keyring()
    if keys is None:
        return StoredForm(plain, name, to, size, sha256, None)
    data_key = sealing.new_data_key()
    sealed = _work_file(wav_path, f"{name}.sealed")
    with open(plain, "rb") as source, open(sealed, "xb", opener=private_file) as out:
        for chunk in sealing.sealed_chunks(source, data_key):
            out.write(chunk)
    if plain != wav_path:
        plain.unlink()
    return StoredForm(sealed, f"{name}.sealed", to, size, sha256, keys.wrap(data_key))


def _work_file(wav_path: Path, name: str) -> Path:
    """stem.work.flac for stem.flac: beside the spool, and found by its stem."""
    path = wav_path.with_name(name.replace(".", ".work.", 1))
    path.unlink(missing_ok=True)  # left by an attempt that failed
    return path


def discard_work_files(wav_path: Path) -> None:
    """Remove what stored_form made beside this WAV (it never removes the WAV)."""
    for path in wav_path.parent.glob(f"{wav_path.stem}.work.*"):
        path.unlink(missing_ok=True)


def recording_open(recording: Recording) -> BinaryIO:
    """The stored file, opened as the plain one (decrypted as read, if sealed).

    Raises sealing.MissingKey or WrongKey before any byte is read: a
    recording whose key is gone is an error, never noise.
    """
    key = None
    if recording.sealed:
        keys = keyring()
        if keys is None:
            raise sealing.MissingKey(
                f"sealed with key {recording.key_id!r}, and "
                "CALLRECORDER_ENCRYPTION_KEYS is not set"
            )
        key = keys.unwrap(sealing.WrappedKey(recording.key_id, recording.wrapped_key))
    raw = recording.file.storage.open(recording.file.name, "rb")
    if key is None:
        return raw
    return sealing.SealedReader(raw, key, plain_size=recording.size_bytes)


def recording_pcm(recording: Recording) -> Iterator[bytes]:
    """The recording's 16-bit PCM, decoded block by block from whatever is stored."""
    with recording_open(recording) as stream:
        yield from codecs.pcm_blocks(stream, sample_count=recording.sample_count)
