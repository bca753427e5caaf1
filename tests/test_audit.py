"""The access log cannot be quietly rewritten: a keyed chain, anchored outside the DB.

Each tampering case of issue 15 is done here the way an attacker with the
database would: raw SQL, past the model's refusals.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time

import pytest
from botocore.exceptions import ClientError
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from recordings_app.models import AccessLogEntry, CallEvent
from recordings_app.models.access import audit_mac, canonical_fields
from recordings_app.services import access, audit, holds

from .helpers import S3_BUCKET, make_call, s3_client, use_s3

pytestmark = pytest.mark.django_db

TABLE = AccessLogEntry._meta.db_table


@pytest.fixture(autouse=True)
def _commits(django_capture_on_commit_callbacks):
    """Checkpoints follow each append's commit: run them as a real commit would."""
    global committing
    committing = django_capture_on_commit_callbacks


def log_views(user, count: int = 3, first_call: int = 0) -> list[AccessLogEntry]:
    entries = []
    for n in range(first_call, first_call + count):
        with committing(execute=True):
            entries.append(
                access.access_log_append(
                    action=AccessLogEntry.Action.VIEW,
                    call=make_call(n),
                    user=user,
                    ip_address="198.51.100.7",
                )
            )
    return entries


def verify() -> str:
    out = io.StringIO()
    call_command("verify_access_log", stdout=out)
    return out.getvalue()


def sql(statement: str, *params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def checkpoint_lines(settings) -> list[dict]:
    path = settings.CALLRECORDER_AUDIT_CHECKPOINT_DIR / audit.CHECKPOINT_FILE
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_intact_log_verifies_against_its_checkpoint(user, settings):
    entries = log_views(user)
    audit.checkpoints.flush()

    said = verify()

    assert "Access log intact: 3 entries" in said
    assert f"is of entry {entries[-1].pk}" in said


def test_a_rewritten_entry_with_the_chain_recomputed_without_the_key_is_caught(
    user,
):
    first, second, third = log_views(user)
    # What an attacker without the key can do: the old unkeyed SHA-256 scheme.
    forged = hashlib.sha256(f"{first.prev_hash}|tampered".encode()).hexdigest()
    sql(
        f"UPDATE {TABLE} SET username = 'mallory', entry_hash = %s WHERE id = %s",
        forged,
        first.pk,
    )

    with pytest.raises(CommandError, match=f"entry {first.pk} was altered"):
        verify()


def test_a_rewritten_entry_with_the_chain_recomputed_with_the_key_is_caught(
    user, settings
):
    entries = log_views(user)
    audit.checkpoints.flush()
    # An insider with the key rewrites the first entry and recomputes the chain.
    sql(f"UPDATE {TABLE} SET username = 'mallory' WHERE id = %s", entries[0].pk)
    prev = audit.GENESIS_HASH
    for entry in AccessLogEntry.objects.order_by("id"):
        new_hash = audit_mac(f"{prev}|{canonical_fields(entry)}")
        sql(
            f"UPDATE {TABLE} SET prev_hash = %s, entry_hash = %s WHERE id = %s",
            prev,
            new_hash,
            entry.pk,
        )
        prev = new_hash

    with pytest.raises(CommandError) as caught:
        verify()

    said = re.search(
        rf"{audit.CHECKPOINT_FILE}:1 \(written .*\) disagrees: entry (\d+) had hash"
        r".*the log was rewritten",
        str(caught.value),
    )
    assert said and int(said[1]) == checkpoint_lines(settings)[0]["seq"]


def test_a_removed_last_entry_is_caught_by_the_checkpoint(user):
    entries = log_views(user)
    audit.checkpoints.flush()
    sql(f"DELETE FROM {TABLE} WHERE id = %s", entries[-1].pk)

    with pytest.raises(CommandError) as caught:
        verify()

    assert f"says entry {entries[-1].pk} existed" in str(caught.value)
    assert f"the log ends at entry {entries[-2].pk}" in str(caught.value)


def test_an_emptied_log_is_caught(user):
    log_views(user)
    audit.checkpoints.flush()
    sql(f"DELETE FROM {TABLE}")

    with pytest.raises(CommandError, match="but the log is empty: entries were"):
        verify()


def test_a_torn_or_made_up_line_is_reported_and_the_signed_ones_still_count(
    user, settings
):
    entries = log_views(user)
    audit.checkpoints.flush()
    path = settings.CALLRECORDER_AUDIT_CHECKPOINT_DIR / audit.CHECKPOINT_FILE
    # One signed line or two: the first append's timer may run before or
    # after the others (the checkpoints coalesce); the lines after are ours.
    signed = len(path.read_text().splitlines())
    with open(path, "a") as handle:
        handle.write(json.dumps({"seq": 99, "hash": "0" * 64, "at": "x", "mac": "y"}))
        handle.write('\n{"seq": 3, "ha')  # a write a full disk cut short
    out, err = io.StringIO(), io.StringIO()

    call_command("verify_access_log", stdout=out, stderr=err)
    sql(f"DELETE FROM {TABLE} WHERE id = %s", entries[-1].pk)

    assert "Access log intact: 3 entries" in out.getvalue()
    assert signed >= 1
    assert (
        f":{signed + 1}: not a checkpoint signed with the audit key" in err.getvalue()
    )
    assert f":{signed + 2}: not a checkpoint signed" in err.getvalue()
    with pytest.raises(CommandError, match="entries were removed"):
        verify()  # the signed checkpoints still catch a removal


def test_entries_with_every_checkpoint_deleted_do_not_verify(user, settings):
    log_views(user)
    audit.checkpoints.flush()
    (settings.CALLRECORDER_AUDIT_CHECKPOINT_DIR / audit.CHECKPOINT_FILE).unlink()

    with pytest.raises(CommandError, match="3 entries but no signed checkpoint"):
        verify()


def wait_for_lines(settings, count: int, timeout: float = 5.0) -> list[dict]:
    path = settings.CALLRECORDER_AUDIT_CHECKPOINT_DIR / audit.CHECKPOINT_FILE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(lines := checkpoint_lines(settings)) >= count:
            return lines
        time.sleep(0.02)
    return checkpoint_lines(settings) if path.exists() else []


def test_the_first_entry_after_a_quiet_minute_is_checkpointed_at_once(user, settings):
    settings.CALLRECORDER_AUDIT_CHECKPOINT_SECONDS = 1.0
    began = time.monotonic()
    [first] = log_views(user, 1)
    written_at_once = wait_for_lines(settings, 1)
    at_once = time.monotonic() - began
    second, third = log_views(user, 2, first_call=1)  # within the interval

    held_back = checkpoint_lines(settings)
    written_later = wait_for_lines(settings, 2)

    assert [line["seq"] for line in written_at_once] == [first.pk]
    assert at_once < 0.9  # not held back for the interval
    assert [line["seq"] for line in held_back] == [first.pk]
    assert [line["seq"] for line in written_later] == [first.pk, third.pk]
    path = settings.CALLRECORDER_AUDIT_CHECKPOINT_DIR / audit.CHECKPOINT_FILE
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_a_checkpoint_that_fails_to_write_is_tried_again(user, settings, monkeypatch):
    settings.CALLRECORDER_AUDIT_CHECKPOINT_SECONDS = 0.3
    failures = iter([False])
    write = audit.checkpoint_write
    monkeypatch.setattr(
        audit, "checkpoint_write", lambda *head: next(failures, None) or write(*head)
    )

    [entry] = log_views(user, 1)

    assert [line["seq"] for line in wait_for_lines(settings, 1)] == [entry.pk]


def test_checkpoints_go_to_s3_and_a_removed_entry_is_named_there(
    user, settings, s3_endpoint, monkeypatch
):
    use_s3(s3_endpoint, settings, monkeypatch)
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_S3_REGION_NAME", "us-east-1")
    settings.CALLRECORDER_AUDIT_CHECKPOINT_S3 = f"s3://{S3_BUCKET}/audit/"
    settings.CALLRECORDER_AUDIT_CHECKPOINT_DIR = None  # S3 only
    [entry] = log_views(user, 1)
    audit.checkpoints.flush()
    sql(f"DELETE FROM {TABLE}")

    listed = s3_client(s3_endpoint).list_objects_v2(Bucket=S3_BUCKET, Prefix="audit/")
    with pytest.raises(CommandError, match=rf"checkpoint s3://{S3_BUCKET}/audit/0+"):
        verify()
    assert listed["KeyCount"] == 1


def test_an_unkeyed_chain_from_before_the_upgrade_is_keyed_if_intact(user):
    from importlib import import_module

    migration = import_module(
        "recordings_app.migrations.0012_access_log_keyed_and_wider"
    )
    entries = log_views(user)
    prev = audit.GENESIS_HASH
    for entry in entries:  # as the chain was before: unkeyed SHA-256
        entry.prev_hash = prev
        entry.entry_hash = migration._old_hash(entry)
        sql(
            f"UPDATE {TABLE} SET prev_hash = %s, entry_hash = %s WHERE id = %s",
            entry.prev_hash,
            entry.entry_hash,
            entry.pk,
        )
        prev = entry.entry_hash
    with pytest.raises(CommandError):
        verify()

    state = MigrationExecutor(connection).loader.project_state(
        ("recordings_app", "0012_access_log_keyed_and_wider")
    )
    migration.key_the_chain(state.apps, None)

    assert "Access log intact: 3 entries" in verify()


def test_the_admin_deletes_no_event_of_a_call_and_no_access_log_entry(
    admin_client, admin_user
):
    call = make_call(1)
    holds.legal_hold_set(call=call, on=True, by=admin_user)
    event = CallEvent.objects.get(call=call)
    entry = AccessLogEntry.objects.get()

    event_delete = admin_client.post(
        reverse("admin:recordings_app_callevent_delete", args=[event.pk]),
        {"post": "yes"},
    )
    entry_delete = admin_client.post(
        reverse("admin:recordings_app_accesslogentry_delete", args=[entry.pk]),
        {"post": "yes"},
    )

    assert (event_delete.status_code, entry_delete.status_code) == (403, 403)
    assert CallEvent.objects.filter(pk=event.pk).exists()
    assert AccessLogEntry.objects.filter(pk=entry.pk).exists()


def test_holds_purges_page_views_and_runs_are_logged(
    admin_client, admin_user, settings
):
    from recordings_app.services import keys

    call = make_call(1)
    call_id = call.pk
    holds.legal_hold_set(call=call, on=True, by=admin_user, ip_address="192.0.2.1")
    holds.legal_hold_set(call=call, on=False, by=admin_user)
    admin_client.get(call.get_absolute_url())
    admin_client.get(call.get_absolute_url())  # a reload is the same view
    holds.call_delete(call=call, user=admin_user, ip_address="192.0.2.2")
    settings.CALLRECORDER_ENCRYPTION_KEYS = "k1:" + "A" * 43
    keys.recording_keys_rotate()

    logged = list(
        AccessLogEntry.objects.order_by("id").values_list(
            "action", "username", "call_id"
        )
    )
    assert logged == [
        ("hold-place", admin_user.username, call_id),
        ("hold-release", admin_user.username, call_id),
        ("view", admin_user.username, call_id),
        ("purge", admin_user.username, call_id),
        ("rotate-keys", "manage.py rotate_recording_keys", None),
    ]


def test_checkpoints_in_a_bucket_with_object_lock_are_under_legal_hold(
    user, settings, s3_endpoint, monkeypatch
):
    use_s3(s3_endpoint, settings, monkeypatch)
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_S3_REGION_NAME", "us-east-1")
    s3 = s3_client(s3_endpoint)
    s3.create_bucket(Bucket="audit-locked", ObjectLockEnabledForBucket=True)
    settings.CALLRECORDER_AUDIT_CHECKPOINT_S3 = "s3://audit-locked/log"
    log_views(user, 1)
    audit.checkpoints.flush()

    [item] = s3.list_object_versions(Bucket="audit-locked")["Versions"]
    hold = s3.get_object_legal_hold(
        Bucket="audit-locked", Key=item["Key"], VersionId=item["VersionId"]
    )
    assert hold["LegalHold"]["Status"] == "ON"
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(
            Bucket="audit-locked", Key=item["Key"], VersionId=item["VersionId"]
        )
