from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection

from .helpers import ROOT


def load_settings(**env: str) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter with exactly this environment."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DEBUG",
            "SECRET_KEY",
            "ALLOWED_HOSTS",
            "PUBLIC_URL",
            "VONAGE_SIGNATURE_SECRET",
            "UNSAFE_ALLOW_UNSIGNED_WEBHOOKS",
        }
    }
    return subprocess.run(
        [sys.executable, "-c", "import callrecorder.settings"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
    )


def test_production_mode_refuses_to_start_without_a_secret_key():
    result = load_settings(DEBUG="false", ALLOWED_HOSTS="calls.example.com")

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in result.stderr


def test_production_mode_refuses_to_start_without_allowed_hosts():
    result = load_settings(DEBUG="false", SECRET_KEY="x" * 50)

    assert result.returncode != 0
    assert "ALLOWED_HOSTS is not set" in result.stderr


def test_production_mode_refuses_to_start_without_the_vonage_signature_secret():
    result = load_settings(
        DEBUG="false", SECRET_KEY="x" * 50, ALLOWED_HOSTS="calls.example.com"
    )

    assert result.returncode != 0
    assert "VONAGE_SIGNATURE_SECRET is not set" in result.stderr


def test_production_mode_may_go_without_signatures_only_by_an_unsafe_setting():
    result = load_settings(
        DEBUG="false",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="calls.example.com",
        UNSAFE_ALLOW_UNSIGNED_WEBHOOKS="true",
    )

    assert result.returncode == 0, result.stderr


def test_production_mode_starts_with_its_secrets_set():
    result = load_settings(
        DEBUG="false",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="calls.example.com",
        VONAGE_SIGNATURE_SECRET="s" * 32,
    )

    assert result.returncode == 0, result.stderr


def test_a_sample_rate_vonage_cannot_send_is_refused_at_startup():
    result = load_settings(CALLRECORDER_SAMPLE_RATE="48000")

    assert "CALLRECORDER_SAMPLE_RATE must be 8000, 16000 or 24000" in result.stderr


@pytest.mark.django_db
@pytest.mark.skipif(
    connection.vendor != "sqlite", reason="SQLite settings; this pass uses PostgreSQL"
)
def test_sqlite_runs_in_wal_mode_with_a_busy_timeout():
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] == 20000


@pytest.mark.parametrize("days", ["thirty", "0", "-5", "1.5"])
def test_a_retention_that_is_not_a_whole_number_of_days_refuses_to_start(days):
    result = load_settings(CALLRECORDER_RETENTION_DAYS=days)

    assert result.returncode != 0
    assert "CALLRECORDER_RETENTION_DAYS must be a whole number of days" in (
        result.stderr
    )


def test_a_retention_in_days_is_accepted():
    result = load_settings(CALLRECORDER_RETENTION_DAYS="90")

    assert result.returncode == 0, result.stderr
