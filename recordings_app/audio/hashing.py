"""SHA-256 of stored audio, a chunk at a time: memory stays flat for any length.

Plain Python, no Django.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .pcm import WAV_HEADER_SIZE

_HASH_CHUNK = 1024 * 1024


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks: memory stays flat for any length."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def wav_hashes(path: Path) -> tuple[str, str]:
    """SHA-256 of a spool's WAV file and of its PCM (what follows the header).

    One pass, a chunk at a time: memory stays flat for any length.
    """
    whole, pcm = hashlib.sha256(), hashlib.sha256()
    with open(path, "rb") as handle:
        header = handle.read(WAV_HEADER_SIZE)
        whole.update(header)
        while chunk := handle.read(_HASH_CHUNK):
            whole.update(chunk)
            pcm.update(chunk)
    return whole.hexdigest(), pcm.hexdigest()
