from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection

from .helpers import ROOT

STRONG_KEY = "k3Yz-8dQ_rT2vLp9sW1xN4bM7cF0gH6jE5aU2iO8yR3tZ1qX9wV7"
SIGNATURE_SECRET = "0123456789abcdefghijklmnopqrstuv"


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
            "TRUSTED_PROXIES",
            "METRICS_ALLOWED_IPS",
            "TRUST_PROXY_HEADERS",
            "SECURE_SSL_REDIRECT",
            "SECURE_HSTS_SECONDS",
            "CALLRECORDER_REQUIRE_MFA",
            "CALLRECORDER_SESSION_IDLE_MINUTES",
        }
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import callrecorder.settings as s; print(repr(vars(s)))",
        ],
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
    result = load_settings(DEBUG="false", SECRET_KEY=STRONG_KEY)

    assert result.returncode != 0
    assert "ALLOWED_HOSTS is not set" in result.stderr


def test_production_mode_refuses_to_start_without_the_vonage_signature_secret():
    result = load_settings(
        DEBUG="false", SECRET_KEY=STRONG_KEY, ALLOWED_HOSTS="calls.example.com"
    )

    assert result.returncode != 0
    assert "VONAGE_SIGNATURE_SECRET is not set" in result.stderr


def test_production_mode_may_go_without_signatures_only_by_an_unsafe_setting():
    result = load_settings(
        DEBUG="false",
        SECRET_KEY=STRONG_KEY,
        ALLOWED_HOSTS="calls.example.com",
        UNSAFE_ALLOW_UNSIGNED_WEBHOOKS="true",
    )

    assert result.returncode == 0, result.stderr


def test_production_mode_starts_with_its_secrets_set():
    result = load_settings(
        DEBUG="false",
        SECRET_KEY=STRONG_KEY,
        ALLOWED_HOSTS="calls.example.com",
        VONAGE_SIGNATURE_SECRET=SIGNATURE_SECRET,
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


PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": STRONG_KEY,
    "ALLOWED_HOSTS": "calls.example.com",
    "VONAGE_SIGNATURE_SECRET": SIGNATURE_SECRET,
}


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("SECRET_KEY", "x" * 60, "SECRET_KEY is too short or too plain"),
        ("SECRET_KEY", "short-but-varied-key", "SECRET_KEY is too short or too plain"),
        ("VONAGE_SIGNATURE_SECRET", "abc123", "VONAGE_SIGNATURE_SECRET is too short"),
    ],
    ids=["one character", "short", "short signature secret"],
)
def test_production_mode_refuses_short_secrets(setting, value, says):
    result = load_settings(**PRODUCTION | {setting: value})

    assert result.returncode != 0
    assert says in result.stderr


def test_production_mode_redirects_to_https_and_sends_hsts():
    settings = load_settings(**PRODUCTION).stdout

    assert "'SECURE_SSL_REDIRECT': True" in settings
    assert "'SECURE_HSTS_SECONDS': 31536000" in settings
    assert "'SESSION_COOKIE_SECURE': True" in settings


def test_https_redirect_and_hsts_can_be_turned_off():
    settings = load_settings(
        **PRODUCTION | {"SECURE_SSL_REDIRECT": "false", "SECURE_HSTS_SECONDS": "0"}
    ).stdout

    assert "'SECURE_SSL_REDIRECT': False" in settings
    assert "'SECURE_HSTS_SECONDS': 0" in settings


def test_the_old_proxy_switch_says_what_replaced_it():
    result = load_settings(TRUST_PROXY_HEADERS="true")

    assert result.returncode != 0
    assert "TRUSTED_PROXIES" in result.stderr


def test_a_trusted_proxy_that_is_not_an_address_is_refused():
    result = load_settings(TRUSTED_PROXIES="10.0.0.0/8,nginx")

    assert result.returncode != 0
    assert "TRUSTED_PROXIES: 'nginx' is not an address or a CIDR" in result.stderr


def test_metrics_addresses_default_to_loopback_and_set_empty_mean_none():
    assert "'METRICS_ALLOWED_IPS': ['127.0.0.1', '::1']" in load_settings().stdout
    assert "'METRICS_ALLOWED_IPS': []" in load_settings(METRICS_ALLOWED_IPS="").stdout
    refused = load_settings(METRICS_ALLOWED_IPS="10.0.0.0/8,prometheus")
    assert refused.returncode != 0
    assert "METRICS_ALLOWED_IPS: 'prometheus' is not an address" in refused.stderr


def test_production_mode_requires_a_second_factor_for_staff():
    assert "'CALLRECORDER_REQUIRE_MFA': True" in load_settings(**PRODUCTION).stdout


def test_development_asks_for_a_second_factor_only_when_told_to():
    assert "'CALLRECORDER_REQUIRE_MFA': False" in load_settings().stdout
    told = load_settings(CALLRECORDER_REQUIRE_MFA="true").stdout
    assert "'CALLRECORDER_REQUIRE_MFA': True" in told


def test_the_idle_time_sets_how_long_an_unused_session_lasts():
    assert "'SESSION_COOKIE_AGE': 3600" in load_settings().stdout
    shorter = load_settings(CALLRECORDER_SESSION_IDLE_MINUTES="15").stdout
    assert "'SESSION_COOKIE_AGE': 900" in shorter


@pytest.mark.parametrize("minutes", ["0", "an hour", "-5"])
def test_an_idle_time_that_is_not_whole_minutes_is_refused(minutes):
    result = load_settings(CALLRECORDER_SESSION_IDLE_MINUTES=minutes)

    assert result.returncode != 0
    assert "CALLRECORDER_SESSION_IDLE_MINUTES must be a whole number of minutes" in (
        result.stderr
    )


@pytest.mark.parametrize(
    "setting, value, says",
    [
        ("CALLRECORDER_STORAGE_FORMAT", "mp3", "must be wav, flac, opus, not 'mp3'"),
        ("CALLRECORDER_ARCHIVE_FORMAT", "wav", "must be flac or opus, not 'wav'"),
        ("CALLRECORDER_ARCHIVE_AFTER_DAYS", "soon", "whole number of days"),
        ("CALLRECORDER_ENCRYPTION_KEYS", "k1:short", "'k1' is not 32 bytes"),
        ("CALLRECORDER_ENCRYPTION_KEYS", "no-colon", "item 1 is not ID:KEY"),
    ],
)
def test_storage_settings_that_cannot_work_refuse_to_start(setting, value, says):
    result = load_settings(**{setting: value})

    assert result.returncode != 0
    assert says in result.stderr
