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


def checkpoint_write(seq: int, entry_hash: str) -> bool:
    """Write one checkpoint to every place configured; False (logged) if one failed."""
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
    written = True
    folder = settings.CALLRECORDER_AUDIT_CHECKPOINT_DIR
    if folder is not None:
        try:
            _append(folder, line)
        except OSError:
            written = False
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
            written = False
            logger.exception("access log checkpoint not written to S3")
    return written


def _append(folder, line: str) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    descriptor = os.open(folder / CHECKPOINT_FILE, flags, 0o600)
    try:
        os.write(descriptor, line.encode())  # one write: lines never interleave
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


_BUCKET_LOCKS: dict[tuple[str | None, str], bool] = {}


def _locks(bucket: str) -> bool:
    """Whether the bucket has Object Lock: then each checkpoint is put under a
    legal hold, which no delete gets past until someone allowed to lifts it.
    Asked once per bucket; an error is not remembered (asked again next time)."""
    key = (os.environ.get("AWS_S3_ENDPOINT_URL"), bucket)
    if key not in _BUCKET_LOCKS:
        try:
            found = _s3().get_object_lock_configuration(Bucket=bucket)
        except Exception as error:
            code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
            if code != "ObjectLockConfigurationNotFoundError":
                raise
            found = {"ObjectLockConfiguration": {}}
        config = found["ObjectLockConfiguration"]
        _BUCKET_LOCKS[key] = config.get("ObjectLockEnabled") == "Enabled"
    return _BUCKET_LOCKS[key]


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
    from botocore.config import Config

    # Short timeouts: a checkpoint is written off the request, but a hung
    # bucket must not hold the next one up for long.
    timeouts = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3})
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=region, config=timeouts
    )


class CheckpointSchedule:
    """This process's checkpoints: at once after a quiet interval, else within one.

    Writes happen in a timer thread, never on the request or socket that
    appended (an fsync, an S3 round trip). A write that fails keeps its head
    for the next try, an interval later.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the state below
        self._writing = threading.Lock()  # one write at a time
        self._last_written: float | None = None
        self._pending: tuple[int, str] | None = None
        self._timer: threading.Timer | None = None

    def appended(self, seq: int, entry_hash: str) -> None:
        """An entry committed: checkpoint it now, or within the interval."""
        with self._lock:
            if self._pending is None or seq > self._pending[0]:
                self._pending = (seq, entry_hash)
            if self._timer is None:
                now = time.monotonic()
                interval = settings.CALLRECORDER_AUDIT_CHECKPOINT_SECONDS
                since = None if self._last_written is None else now - self._last_written
                self._start_timer(0 if since is None else max(0, interval - since))

    def _start_timer(self, wait: float) -> None:
        self._timer = threading.Timer(wait, self._write_pending)
        self._timer.daemon = True
        self._timer.start()

    def _take(self) -> tuple[int, str] | None:
        with self._lock:
            head, self._pending = self._pending, None
            return head

    def _write_pending(self) -> None:
        with self._writing:
            head = self._take()
            written = head is None or checkpoint_write(*head)
        with self._lock:
            self._timer = None
            self._last_written = time.monotonic()
            if not written and self._pending is None:
                self._pending = head  # tried again an interval later
            if self._pending is not None:
                self._start_timer(settings.CALLRECORDER_AUDIT_CHECKPOINT_SECONDS)

    def flush(self) -> None:
        """Write what is waiting, now, in this thread (at exit; in tests)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        with self._writing:  # after a write in progress
            head = self._take()
            if head is not None:
                checkpoint_write(*head)
        with self._lock:
            self._last_written = time.monotonic()

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
    checkpoints: int  # signed ones, each agreeing with the log
    latest: Checkpoint | None  # the one with the highest entry number
    unsigned: list[str]  # lines that are not checkpoints (torn, made up): where


def access_log_verify() -> Verified:
    """Walk the keyed chain, then hold it against every checkpoint; or BrokenChain.

    A line that is not a signed checkpoint (a write torn by a full disk, or
    one made up) proves nothing and is reported, not held against the log.
    Entries with no signed checkpoint at all cannot be vouched for: that
    fails too (the checkpoints were deleted, or never written).
    """
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
    signed = [checkpoint for checkpoint in found if checkpoint.signed]
    stored = dict(
        AccessLogEntry.objects.filter(pk__in={c.seq for c in signed}).values_list(
            "pk", "entry_hash"
        )
    )
    for checkpoint in signed:
        _check(checkpoint, stored.get(checkpoint.seq), last_id)
    if count and not signed:
        raise BrokenChain(
            f"the log has {count} entries but no signed checkpoint was found "
            f"({_places()}): its end cannot be vouched for; were the "
            "checkpoints deleted?"
        )
    return Verified(
        entries=count,
        checkpoints=len(signed),
        latest=max(signed, key=lambda c: c.seq, default=None),
        unsigned=[checkpoint.where for checkpoint in found if not checkpoint.signed],
    )


def _places() -> str:
    places = []
    if settings.CALLRECORDER_AUDIT_CHECKPOINT_DIR is not None:
        places.append(str(settings.CALLRECORDER_AUDIT_CHECKPOINT_DIR))
    if settings.CALLRECORDER_AUDIT_CHECKPOINT_S3:
        places.append(settings.CALLRECORDER_AUDIT_CHECKPOINT_S3)
    return ", ".join(places) or "no place is configured"


def _check(checkpoint: Checkpoint, stored_hash: str | None, last_id: int) -> None:
    said = f"checkpoint {checkpoint.where} (written {checkpoint.at})"
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
