"""The access log's anchor outside the database: checkpoints of its head, and verify.

A keyed chain alone cannot show that its last entries were removed, or the
whole table emptied, or (by someone holding the key) an entry rewritten
and the chain recomputed. So the head (entry number and hash) is written
where the database cannot reach it: appended to a file (opened O_APPEND:
make it append-only with `chattr +a`, or give it a disk of its own), and/or
to objects under an S3 prefix (Object Lock keeps them). Each checkpoint is
signed with the audit key, so none can be made up either.

A process writes a checkpoint at once for an entry that follows a quiet
interval (CALLRECORDER_AUDIT_CHECKPOINT_SECONDS), and otherwise within one
interval of it: an entry is never unanchored for longer.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from ..models import GENESIS_HASH, AccessLogEntry
from ..models.access import audit_mac

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "access-log-checkpoints.jsonl"


class BrokenChain(Exception):
    """An access log entry was removed or altered; the message says which."""


@dataclass(frozen=True)
class Checkpoint:
    seq: int  # the entry's id
    hash: str
    at: str  # when it was written (ISO 8601, UTC)
    where: str  # file:line or s3://bucket/key, for the report
    signed: bool  # its MAC verifies under the audit key


def _mac(seq: int, entry_hash: str, at: str) -> str:
    return audit_mac(f"checkpoint|{seq}|{entry_hash}|{at}")


def checkpoint_write(seq: int, entry_hash: str) -> None:
    """Write one checkpoint to every place configured (a failure is logged)."""
    at = datetime.now(UTC).isoformat()
    record = {
        "seq": seq,
        "hash": entry_hash,
        "at": at,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "mac": _mac(seq, entry_hash, at),
    }
    line = json.dumps(record, sort_keys=True) + "\n"
    folder = settings.CALLRECORDER_AUDIT_CHECKPOINT_DIR
    if folder is not None:
        try:
            _append(folder, line)
        except OSError:
            logger.exception("access log checkpoint not written to %s", folder)
    if settings.CALLRECORDER_AUDIT_CHECKPOINT_S3:
        try:
            bucket, prefix = _s3_location()
            client = _s3()
            lock = {"ObjectLockLegalHoldStatus": "ON"} if _locks(bucket) else {}
            client.put_object(
                Bucket=bucket,
                Key=f"{prefix}{seq:012d}-{at.replace(':', '')}-{os.getpid()}.json",
                Body=line.encode(),
                ChecksumAlgorithm="SHA256",  # required with Object Lock
                **lock,
            )
        except Exception:
            logger.exception("access log checkpoint not written to S3")


def _append(folder, line: str) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    descriptor = os.open(folder / CHECKPOINT_FILE, flags, 0o600)
    try:
        os.write(descriptor, line.encode())  # one write: lines never interleave
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _locks(bucket: str) -> bool:
    """Whether the bucket has Object Lock: then each checkpoint is put under a
    legal hold, which no delete gets past until someone allowed to lifts it."""
    return _bucket_locks(os.environ.get("AWS_S3_ENDPOINT_URL"), bucket)


@functools.cache
def _bucket_locks(endpoint: str | None, bucket: str) -> bool:
    try:
        found = _s3().get_object_lock_configuration(Bucket=bucket)
    except Exception:  # none configured (or not allowed to ask): no lock
        return False
    return found["ObjectLockConfiguration"].get("ObjectLockEnabled") == "Enabled"


def _s3_location() -> tuple[str, str]:
    bucket, _, prefix = settings.CALLRECORDER_AUDIT_CHECKPOINT_S3[5:].partition("/")
    return bucket, (prefix.rstrip("/") + "/") if prefix else ""


def _s3():
    return _client(
        os.environ.get("AWS_S3_ENDPOINT_URL") or None,
        os.environ.get("AWS_S3_REGION_NAME") or None,
    )


@functools.cache
def _client(endpoint: str | None, region: str | None):
    """One client per endpoint (boto3's clients are thread-safe)."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=region)


class CheckpointSchedule:
    """This process's checkpoints: at once after a quiet interval, else within one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_written: float | None = None
        self._pending: tuple[int, str] | None = None
        self._timer: threading.Timer | None = None

    def appended(self, seq: int, entry_hash: str) -> None:
        """An entry committed: checkpoint it now, or within the interval."""
        interval = settings.CALLRECORDER_AUDIT_CHECKPOINT_SECONDS
        with self._lock:
            if self._pending is None or seq > self._pending[0]:
                self._pending = (seq, entry_hash)
            now = time.monotonic()
            if self._last_written is None or now - self._last_written >= interval:
                self._write_pending(now)
            elif self._timer is None:
                wait = interval - (now - self._last_written)
                self._timer = threading.Timer(wait, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Write what is waiting (the timer calls this; so does shutdown)."""
        with self._lock:
            self._timer = None
            self._write_pending(time.monotonic())

    def _write_pending(self, now: float) -> None:
        if self._pending is not None:
            checkpoint_write(*self._pending)
            self._pending = None
            self._last_written = now

    def reset(self) -> None:
        """Forget everything, writing nothing (tests)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._pending, self._last_written = None, None, None


checkpoints = CheckpointSchedule()
# A server stopping (SIGTERM, a deploy) writes what is waiting first.
atexit.register(checkpoints.flush)


def read_checkpoints() -> list[Checkpoint]:
    """Every checkpoint written, from the folder and the S3 prefix."""
    found = []
    folder = settings.CALLRECORDER_AUDIT_CHECKPOINT_DIR
    paths = sorted(folder.glob("*.jsonl")) if folder and folder.is_dir() else []
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            found.append(_parse(line, f"{path}:{number}"))
    if settings.CALLRECORDER_AUDIT_CHECKPOINT_S3:
        bucket, prefix = _s3_location()
        client = _s3()
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                data = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                found.append(_parse(data.decode(), f"s3://{bucket}/{item['Key']}"))
    return found


def _parse(line: str, where: str) -> Checkpoint:
    try:
        record = json.loads(line)
        seq, entry_hash, at = int(record["seq"]), str(record["hash"]), str(record["at"])
        signed = record.get("mac") == _mac(seq, entry_hash, at)
    except (ValueError, KeyError, TypeError):
        return Checkpoint(0, "", "", where, signed=False)
    return Checkpoint(seq, entry_hash, at, where, signed)


@dataclass(frozen=True)
class Verified:
    entries: int
    checkpoints: int
    latest: Checkpoint | None  # the one with the highest entry number


def access_log_verify() -> Verified:
    """Walk the keyed chain, then hold it against every checkpoint; or BrokenChain."""
    expected_prev, count, last_id = GENESIS_HASH, 0, 0
    for entry in AccessLogEntry.objects.order_by("id").iterator():
        if entry.prev_hash != expected_prev:
            raise BrokenChain(
                f"entry {entry.pk}: the entry before it was removed or altered "
                f"(chain broken after {count} good entries)"
            )
        if entry.compute_hash() != entry.entry_hash:
            raise BrokenChain(
                f"entry {entry.pk} was altered: its contents do not match its "
                "hash under the audit key"
            )
        expected_prev, count, last_id = entry.entry_hash, count + 1, entry.pk
    found = read_checkpoints()
    stored = dict(
        AccessLogEntry.objects.filter(pk__in={c.seq for c in found}).values_list(
            "pk", "entry_hash"
        )
    )
    for checkpoint in found:
        _check(checkpoint, stored.get(checkpoint.seq), last_id)
    latest = max(found, key=lambda c: c.seq, default=None)
    return Verified(entries=count, checkpoints=len(found), latest=latest)


def _check(checkpoint: Checkpoint, stored_hash: str | None, last_id: int) -> None:
    said = f"checkpoint {checkpoint.where} (written {checkpoint.at})"
    if not checkpoint.signed:
        raise BrokenChain(
            f"{checkpoint.where} is not a checkpoint signed with the audit key: "
            "it was made up or altered"
        )
    if stored_hash is None:
        ends = f"ends at entry {last_id}" if last_id else "is empty"
        raise BrokenChain(
            f"{said} says entry {checkpoint.seq} existed, but the log {ends}: "
            "entries were removed"
        )
    if stored_hash != checkpoint.hash:
        raise BrokenChain(
            f"{said} disagrees: entry {checkpoint.seq} had hash "
            f"{checkpoint.hash[:16]}..., the log now holds {stored_hash[:16]}...: "
            "the log was rewritten"
        )
