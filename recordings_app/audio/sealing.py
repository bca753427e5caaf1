"""Recordings sealed at rest: AES-256-GCM in chunks, each file its own data key.

Plain Python, no Django; the cipher is `cryptography`'s. A stored file is a
run of chunks, each CHUNK bytes of the plain file sealed with AES-GCM and
followed by its 16-byte tag: a Range request decrypts only the chunks it
covers. The data key is random per recording, so its nonces need only
number the chunks; each chunk's associated data says its number and
whether it is the last, so chunks cannot be reordered, dropped or the file
cut short without the tag failing. The data key is kept wrapped (AES key
wrap, RFC 3394) by a key-encryption key from CALLRECORDER_ENCRYPTION_KEYS.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

CHUNK = 64 * 1024
TAG = 16
SEALED_CHUNK = CHUNK + TAG
KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
_CONTEXT = b"callrecorder-recording-v1"


class SealError(Exception):
    """A sealed recording cannot be opened; the message says why and what to do."""


class MissingKey(SealError):
    """The recording was sealed under a key id that is not configured."""


class WrongKey(SealError):
    """The key with the recording's key id is not the one that sealed it."""


class SealBroken(SealError):
    """A chunk's tag does not match: the file was altered, cut short or swapped."""


class BadKeys(ValueError):
    """CALLRECORDER_ENCRYPTION_KEYS cannot be read; the message says why."""


@dataclass(frozen=True)
class WrappedKey:
    """A recording's data key as stored: which key wrapped it, and the wrapping."""

    key_id: str
    wrapped: str  # URL-safe base64 of the RFC 3394 wrapping


class KeyRing:
    """The key-encryption keys: the first wraps new data keys, all unwrap."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        if not keys:
            raise BadKeys("no keys")
        self._keys = dict(keys)
        self.current_id = next(iter(keys))

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        """Read `ID:KEY,ID:KEY` (KEY: 32 bytes, URL-safe base64); the first encrypts."""
        keys: dict[str, bytes] = {}
        for position, item in enumerate(spec.split(","), start=1):
            key_id, colon, encoded = item.strip().partition(":")
            if not colon or not _KEY_ID.fullmatch(key_id):
                raise BadKeys(
                    f"item {position} is not ID:KEY (an id of letters, digits, "
                    "- or _, a colon, then the key)"
                )
            if key_id in keys:
                raise BadKeys(f"key id {key_id!r} is given twice")
            keys[key_id] = _decode_key(key_id, encoded.strip())
        return cls(keys)

    @property
    def ids(self) -> list[str]:
        return list(self._keys)

    def wrap(self, data_key: bytes) -> WrappedKey:
        wrapped = aes_key_wrap(self._keys[self.current_id], data_key)
        return WrappedKey(self.current_id, base64.urlsafe_b64encode(wrapped).decode())

    def unwrap(self, wrapped_key: WrappedKey) -> bytes:
        key = self._keys.get(wrapped_key.key_id)
        if key is None:
            raise MissingKey(
                f"sealed with key {wrapped_key.key_id!r}, which is not in "
                f"CALLRECORDER_ENCRYPTION_KEYS (it has {', '.join(self._keys)})"
            )
        try:
            return aes_key_unwrap(key, base64.urlsafe_b64decode(wrapped_key.wrapped))
        except (InvalidUnwrap, ValueError, binascii.Error):
            raise WrongKey(
                f"the key named {wrapped_key.key_id!r} in "
                "CALLRECORDER_ENCRYPTION_KEYS is not the one this recording was "
                "sealed with"
            ) from None


def _decode_key(key_id: str, encoded: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES or not encoded:
        raise BadKeys(
            f"key {key_id!r} is not 32 bytes in URL-safe base64 "
            "(manage.py new_recording_key prints one)"
        )
    return key


def new_key_spec() -> str:
    """A fresh `ID:KEY` for CALLRECORDER_ENCRYPTION_KEYS."""
    key = base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()
    return f"k{secrets.token_hex(4)}:{key}"


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def sealed_size(plain_size: int) -> int:
    """Bytes on disk for a plain file of plain_size (an empty one is one chunk)."""
    chunks = max(1, -(-plain_size // CHUNK))
    return plain_size + chunks * TAG


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def _associated(index: int, last: bool) -> bytes:
    return _CONTEXT + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    """Up to size bytes; fewer only at the end (storages may return short reads)."""
    parts, wanted = [], size
    while wanted > 0 and (part := stream.read(wanted)):
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def sealed_chunks(source: BinaryIO, data_key: bytes) -> Iterator[bytes]:
    """Seal a plain file chunk by chunk (one chunk of look-ahead marks the last)."""
    cipher = AESGCM(data_key)
    index, chunk = 0, _read_exactly(source, CHUNK)
    while True:
        following = _read_exactly(source, CHUNK) if len(chunk) == CHUNK else b""
        last = not following
        yield cipher.encrypt(_nonce(index), chunk, _associated(index, last))
        if last:
            return
        index, chunk = index + 1, following


class SeekableReader(io.RawIOBase):
    """A read-only raw stream over `size` bytes that keeps its own position;
    subclasses say how to fill a buffer from there (readinto)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}
        self._position = max(0, base[whence] + offset)
        return self._position


class SealedReader(SeekableReader):
    """A sealed file read as the plain one: seekable, one chunk decrypted at a time."""

    def __init__(self, raw: BinaryIO, data_key: bytes, *, plain_size: int) -> None:
        super().__init__(plain_size)
        self._raw = raw
        self._cipher = AESGCM(data_key)
        self._last_index = max(0, -(-plain_size // CHUNK) - 1)
        self._cached: tuple[int, bytes] | None = None

    def readinto(self, buffer) -> int:
        """Fill the buffer, short only at the end (decoders take short reads as EOF)."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._position < self._size:
            index, offset = divmod(self._position, CHUNK)
            chunk = self._chunk(index)
            count = min(len(view) - filled, len(chunk) - offset)
            view[filled : filled + count] = chunk[offset : offset + count]
            filled += count
            self._position += count
        return filled

    def _chunk(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        self._raw.seek(index * SEALED_CHUNK)
        sealed = _read_exactly(self._raw, SEALED_CHUNK)
        try:
            plain = self._cipher.decrypt(
                _nonce(index), sealed, _associated(index, index == self._last_index)
            )
        except (InvalidTag, ValueError):
            raise SealBroken(
                f"chunk {index} does not decrypt: the stored file was altered or "
                "cut short"
            ) from None
        expected = min(CHUNK, self._size - index * CHUNK)
        if len(plain) != expected:
            raise SealBroken(f"chunk {index} holds {len(plain)} bytes, not {expected}")
        self._cached = (index, plain)
        return plain

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()
