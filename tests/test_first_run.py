"""What a newcomer meets first: `make admin` for a login, a favicon."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth.hashers import check_password
from django.contrib.staticfiles import finders
from django.urls import reverse

ROOT = Path(__file__).resolve().parent.parent


def make_admin(tmp_path: Path, **login: str) -> subprocess.CompletedProcess:
    """`make admin` with no terminal (as from a script), on a database of its own."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DJANGO_SUPERUSER_")
    }
    env |= {"DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", **login}
    return subprocess.run(
        ["make", "--no-print-directory", "admin"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def logins(tmp_path: Path) -> list[tuple[str, str, int]]:
    database = tmp_path / "db.sqlite3"
    if not database.exists():
        return []
    with sqlite3.connect(database) as db:
        return db.execute(
            "SELECT username, password, is_superuser FROM auth_user"
        ).fetchall()


def test_make_admin_takes_the_login_from_the_environment(tmp_path):
    done = make_admin(
        tmp_path,
        DJANGO_SUPERUSER_USERNAME="alice",
        DJANGO_SUPERUSER_PASSWORD="a-long-pass-phrase-1",
        DJANGO_SUPERUSER_EMAIL="alice@example.com",
    )

    assert done.returncode == 0, done.stderr
    [(username, password, is_superuser)] = logins(tmp_path)
    assert (username, is_superuser) == ("alice", 1)
    assert check_password("a-long-pass-phrase-1", password)


@pytest.mark.parametrize(
    ("login", "says"),
    [
        ({}, "no terminal to ask for a login"),
        ({"DJANGO_SUPERUSER_USERNAME": "alice"}, "DJANGO_SUPERUSER_PASSWORD is not"),
    ],
)
def test_make_admin_that_cannot_make_a_login_says_why_and_fails(tmp_path, login, says):
    done = make_admin(tmp_path, **login)

    assert done.returncode != 0
    assert says in done.stderr
    assert "No login created." in done.stderr
    assert logins(tmp_path) == []


def test_the_favicon_browsers_ask_for_is_the_one_pages_link_to(client):
    response = client.get("/favicon.ico")

    assert reverse("recordings:favicon") == "/favicon.ico"
    assert response.status_code == 301
    assert response["Location"].endswith("recordings_app/favicon.svg")
    assert finders.find("recordings_app/favicon.svg")
    page = client.get(reverse("login")).content.decode()
    assert 'rel="icon"' in page and "recordings_app/favicon.svg" in page
