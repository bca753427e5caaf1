"""How fast is the call list with 100,000 calls? (issue 8)

Fills a database with N calls, one recording row each (bulk_create; no
audio files), then times the list page through Django's test Client:
the first page, a deep page, a number search, a status filter and a date
filter. Prints milliseconds (median of --repeat runs) and query counts,
and the plan of each page's slowest query (EXPLAIN ANALYZE on PostgreSQL,
EXPLAIN QUERY PLAN on SQLite).

    .venv/bin/python bench/list_page.py                   # SQLite file in /tmp
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/root \
        .venv/bin/python bench/list_page.py

The database given is migrated and, unless it already holds exactly N
calls, its calls are deleted and refilled: never point it at real data.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callrecorder.settings")
os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/bench-list-page.sqlite3")
os.environ.setdefault("MEDIA_ROOT", tempfile.mkdtemp(prefix="bench-media-"))
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import (  # noqa: E402
    CaptureQueriesContext,
    setup_test_environment,
)
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from recordings_app.models import Call, Recording  # noqa: E402

STATUSES = ["completed"] * 14 + ["failed", "busy", "unanswered", "rejected"]
BATCH = 5000


def fill(count: int, *, seed: int = 8) -> None:
    """Replace every call with `count` made-up ones over the past year."""
    rng = random.Random(seed)
    Recording.objects.all().delete()
    Call.objects.all().delete()
    now = timezone.now()
    # Oldest first, as calls arrive: rows lie on disk in the order they started.
    ages = sorted((rng.randrange(365 * 86400) for _ in range(count)), reverse=True)
    for start in range(0, count, BATCH):
        calls = []
        for n in range(start, min(start + BATCH, count)):
            started = now - timedelta(seconds=ages[n])
            duration = rng.randrange(5, 900)
            calls.append(
                Call(
                    uuid=f"bench-{n:08d}-{rng.getrandbits(64):016x}",
                    conversation_uuid=f"CON-bench-{n:08d}",
                    from_number=f"447{rng.randrange(10**9):09d}",
                    to_number="447700900000",
                    direction="inbound",
                    status=rng.choice(STATUSES),
                    started_at=started,
                    ended_at=started + timedelta(seconds=duration),
                    duration_seconds=duration,
                )
            )
        calls = Call.objects.bulk_create(calls)
        Recording.objects.bulk_create(
            Recording(
                call=call,
                file=f"recordings/bench/{call.uuid}.wav",
                sample_rate=16000,
                sample_count=call.duration_seconds * 16000,
                frame_count=call.duration_seconds * 50,
                expected_frame_count=call.duration_seconds * 50,
                size_bytes=call.duration_seconds * 32000 + 44,
                started_at=call.started_at,
                ended_at=call.ended_at,
            )
            for call in calls
        )
        print(f"  {start + len(calls)} calls", end="\r", flush=True)
    print()
    # PostgreSQL's autovacuum would gather statistics soon; do it now. SQLite
    # has none unless ANALYZE is run, which the app never does: keep it so.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def explain(sql: str) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            return "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("EXPLAIN QUERY PLAN " + sql)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--refill", action="store_true", help="refill even if full")
    parser.add_argument("--no-explain", action="store_true")
    args = parser.parse_args()

    setup_test_environment()  # the test Client's "testserver" host
    db = connection.settings_dict
    print(f"database: {connection.vendor} {db['NAME']}")
    call_command("migrate", verbosity=0)
    if args.refill or Call.objects.count() != args.calls:
        print(f"filling {args.calls} calls with a recording each ...")
        began = time.perf_counter()
        fill(args.calls)
        print(f"  filled in {time.perf_counter() - began:.1f} s")

    user, _ = get_user_model().objects.get_or_create(username="bench")
    client = Client()
    client.force_login(user)
    url = reverse("recordings:call_list")
    sample = Call.objects.order_by("pk")[args.calls // 2]
    day = timezone.localdate(sample.started_at)
    pages = (args.calls + 24) // 25
    cases = {
        "first page": {},
        f"deep page ({pages // 2})": {"page": pages // 2},
        "last page": {"page": pages},
        "search ?q= (part of a number)": {"q": sample.from_number[3:10]},
        "search ?q= (call uuid start)": {"q": sample.uuid[:14]},
        "status filter (failed)": {"status": "failed"},
        "date filter (one week)": {
            "since": (day - timedelta(days=6)).isoformat(),
            "until": day.isoformat(),
        },
        "status + dates, page 3": {
            "status": "completed",
            "since": (day - timedelta(days=30)).isoformat(),
            "until": day.isoformat(),
            "page": 3,
        },
    }
    rows = []
    plans = {}
    for name, params in cases.items():
        timings = []
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as queries:
                began = time.perf_counter()
                response = client.get(url, params)
                timings.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, (name, response.status_code)
        slowest = max(queries.captured_queries, key=lambda q: float(q["time"]))
        found = re.search(r"Page \d+ of \d+ · (\d+) call", response.content.decode())
        matches = found[1] if found else "0"
        rows.append((name, statistics.median(timings), len(queries), slowest, matches))
        plans[name] = slowest["sql"]

    print(f"\n{'case':34} {'median ms':>10} {'queries':>8} {'slowest q ms':>13}  calls")
    for name, ms, count, slowest, matches in rows:
        slowest_ms = float(slowest["time"]) * 1000
        print(f"{name:34} {ms:10.1f} {count:8d} {slowest_ms:13.1f}  {matches}")
    if args.no_explain:
        return
    for name, sql in plans.items():
        print(f"\n--- {name}: slowest query\n{sql[:600]}")
        print(explain(sql))


if __name__ == "__main__":
    main()
