"""Key rotation: every recording's data key rewrapped under the newest key.

Only the wrapped data keys change (no audio is re-encrypted), so it is
quick whatever the size of the archive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..audio.sealing import SealError, WrappedKey
from ..models import AccessLogEntry, Recording
from .access import System, access_log_append
from .stored_audio import keyring


class NoKeys(Exception):
    """CALLRECORDER_ENCRYPTION_KEYS is not set: there is nothing to rotate to."""


@dataclass
class RotationReport:
    key_id: str
    rewrapped: int = 0
    current: int = 0  # already under the newest key
    failures: list[str] = field(default_factory=list)


def recording_keys_rotate() -> RotationReport:
    """Rewrap every recording's data key under the newest key (no audio touched).

    Once done, older keys can be dropped from CALLRECORDER_ENCRYPTION_KEYS.
    """
    keys = keyring()
    if keys is None:
        raise NoKeys("CALLRECORDER_ENCRYPTION_KEYS is not set")
    report = RotationReport(key_id=keys.current_id)
    sealed = Recording.objects.exclude(key_id="")
    report.current = sealed.filter(key_id=keys.current_id).count()
    older = sealed.exclude(key_id=keys.current_id).only("pk", "key_id", "wrapped_key")
    for recording in older.iterator():
        old = WrappedKey(recording.key_id, recording.wrapped_key)
        try:
            new = keys.wrap(keys.unwrap(old))
        except SealError as error:
            report.failures.append(f"recording {recording.pk}: {error}")
            continue
        # Only if nobody rewrapped it meanwhile (another rotation run).
        report.rewrapped += Recording.objects.filter(
            pk=recording.pk, key_id=old.key_id, wrapped_key=old.wrapped
        ).update(key_id=new.key_id, wrapped_key=new.wrapped)
    access_log_append(
        action=AccessLogEntry.Action.ROTATE_KEYS,
        user=System("manage.py rotate_recording_keys"),
        ip_address=None,
        detail={
            "key_id": report.key_id,
            "rewrapped": report.rewrapped,
            "failures": len(report.failures),
        },
    )
    return report
