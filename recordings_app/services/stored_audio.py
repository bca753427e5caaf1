"""A recording's file as stored: encoded in its format, sealed when keys are set.

Both ways through here: a WAV made into the file that goes to storage, and
a stored file opened again as the plain one (for playing, downloading,
converting). The storage API only: the bucket may be remote.
"""

from __future__ import annotations

import functools
import io
import shutil
import tempfile
import time
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


def stored_form(
    *, wav_path: Path, to: str, wav_sha256: str, encoded: bool = False
) -> StoredForm:
    """Encode a WAV (unless `to` is wav) and seal it (if keys are set).

    With encoded, the file is already in format `to` and is only sealed
    (no second lossy pass). Work files go beside it (0600;
    discard_work_files removes them) and a retry overwrites them; the file
    itself is left as it is.
    """
    name = f"{wav_path.stem}.{codecs.EXTENSIONS[to]}"
    plain, sha256 = wav_path, wav_sha256
    if to != codecs.WAV and not encoded:
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


def _work_path(wav_path: Path, name: str) -> Path:
    """stem.work.flac for stem.flac: beside the spool, named from its stem."""
    return wav_path.with_name(name.replace(".", ".work.", 1))


def _work_file(wav_path: Path, name: str) -> Path:
    path = _work_path(wav_path, name)
    path.unlink(missing_ok=True)  # left by an attempt that failed
    return path


def discard_work_files(wav_path: Path) -> None:
    """Remove what stored_form made beside this WAV (it never removes the WAV).

    By name, not by listing the folder: the spool folder holds every live
    call's files, and a glob per stored call costs more than storing it.
    """
    for extension in codecs.EXTENSIONS.values():
        name = f"{wav_path.stem}.{extension}"
        for work_name in (name, f"{name}.sealed"):
            _work_path(wav_path, work_name).unlink(missing_ok=True)


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
    if hasattr(raw, "obj"):  # an S3 object (django-storages' S3File)
        raw = io.BufferedReader(_RangedObject(raw.obj), buffer_size=_S3_READ)
    if key is None:
        return raw
    return sealing.SealedReader(raw, key, plain_size=recording.size_bytes)


# Bytes fetched per ranged GET: a seek costs one such request, a whole
# download one request per MiB.
_S3_READ = 1024 * 1024


class _RangedObject(sealing.SeekableReader):
    """An S3 object read with ranged GETs: a seek fetches only what is read next.

    django-storages' S3File downloads the whole object on its first read,
    which for an hour-long call is 115 MB for every seek of the player.
    """

    def __init__(self, obj) -> None:
        super().__init__(obj.content_length)  # loaded (HEAD) when it was opened
        self._obj = obj

    def readinto(self, buffer) -> int:
        if self._position >= self._size or not len(buffer):
            return 0
        last = min(self._position + len(buffer), self._size) - 1
        data = self._obj.get(Range=f"bytes={self._position}-{last}")["Body"].read()
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def recording_pcm(recording: Recording) -> Iterator[bytes]:
    """The recording's 16-bit PCM, decoded block by block from whatever is stored."""
    with recording_open(recording) as stream:
        yield from codecs.pcm_blocks(stream, sample_count=recording.sample_count)


# A work folder untouched this long was left by a killed run: the longest
# conversion (a 2-hour call to Opus) takes under 7 minutes.
WORK_FOLDER_GRACE_SECONDS = 6 * 3600


def work_folder() -> Path:
    """A private folder for one conversion's plain audio, under SPOOL_DIR.

    Named .work-*: recover_recordings removes those a killed run left.
    """
    settings.SPOOL_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".work-", dir=settings.SPOOL_DIR))


def work_folders_sweep(*, grace_seconds: float) -> int:
    """Remove work folders nobody touched for grace_seconds (a run was killed)."""
    if not settings.SPOOL_DIR.is_dir():
        return 0
    cutoff = time.time() - grace_seconds
    removed = 0
    for folder in settings.SPOOL_DIR.glob(".work-*"):
        if folder.is_dir() and folder.stat().st_mtime <= cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed
