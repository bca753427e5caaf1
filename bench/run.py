"""Benchmark callrecorder's audio path (issue 7): capacity, throughput, memory.

Three servers take the same load, one after the other, each on a fresh
temporary MEDIA_ROOT, SPOOL_DIR and SQLite database under /tmp/bench:

- daphne:  the app as deployed (`python -m daphne ... callrecorder.asgi:application`),
- uvicorn: the same app under `uvicorn callrecorder.asgi:application`,
- floor:   bench/floor_server.py, a bare asyncio `websockets` recorder.

Every server runs pinned to core 0 (`taskset -c 0`); the load driver
(bench/load.py) runs pinned to core 1. Every run is bounded (--max-minutes,
and a timeout on every subprocess) and stops what it started on exit,
Ctrl-C included.

    .venv/bin/python bench/run.py --quick      # about 8 minutes
    .venv/bin/python bench/run.py              # the full run, about 30 minutes
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv/bin/python")
APP = ROOT  # the app under test (--app: e.g. a `git archive` snapshot)
WORK = Path("/tmp/bench")
RESULTS = ROOT / "bench/results"
TARGETS = ("daphne", "uvicorn", "floor")
# Not in the defaults: the floor on uvloop, the loop the production worker
# runs on (issue 16, item 3: the app's capacity against this floor).
EXTRA_TARGETS = ("floor-uvloop",)
WAV_HEADER = 44
FRAME_BYTES = 640  # 20 ms at 16 kHz
SERVER_CORE, CLIENT_CORE = "0", "1"

# Criteria of the real-time capacity search.
MAX_P99_LAG_MS = 50.0
MAX_SERVER_CPU = 0.90

_started: list[subprocess.Popen] = []  # stopped on exit, whatever happens


def start(command: list[str], core: str, **kwargs) -> subprocess.Popen:
    """Start a process pinned to one core, in a session of its own."""
    process = subprocess.Popen(
        ["taskset", "-c", core, *command], start_new_session=True, **kwargs
    )
    _started.append(process)
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process in _started:
        _started.remove(process)


def stop_everything() -> None:
    for process in list(_started):
        stop(process)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def migrated_database() -> Path:
    """Migrate once; every server starts from a copy of this file."""
    template = WORK / "template.sqlite3"
    if not template.exists():  # removed at the start of every run
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{template}"}
        env.pop("REDIS_URL", None)
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput"],
            cwd=APP,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        with sqlite3.connect(template) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return template


class Server:
    """One server process on fresh storage, sampled for CPU and RSS 5 times a second."""

    count = 0

    def __init__(self, target: str) -> None:
        Server.count += 1
        self.target = target
        self.is_floor = target.startswith("floor")
        self.dir = WORK / f"{Server.count:02d}-{target}"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.media = self.dir / "media"
        self.db = self.dir / "db.sqlite3"
        shutil.copy(migrated_database(), self.db)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = "callrecorder.asgi:application"
        host, port = "127.0.0.1", str(self.port)
        command = {
            "daphne": [PYTHON, "-m", "daphne", "-b", host, "-p", port, app],
            "uvicorn": [
                PYTHON,
                "-m",
                "uvicorn",
                "--host",
                host,
                "--port",
                port,
                *("--loop", "uvloop", "--http", "httptools"),  # as README says
                app,
            ],
            "floor": [PYTHON, str(ROOT / "bench/floor_server.py"), "--port", port],
            "floor-uvloop": [
                PYTHON,
                str(ROOT / "bench/floor_server.py"),
                "--port",
                port,
                "--uvloop",
            ],
        }[target]
        if self.is_floor:
            command += ["--dir", str(self.dir / "floor")]
        env = {
            **os.environ,
            "MEDIA_ROOT": str(self.media),
            "SPOOL_DIR": str(self.dir / "spool"),
            "DATABASE_URL": f"sqlite:///{self.db}",
        }
        env.pop("REDIS_URL", None)  # the app's default: in-memory channel layer
        self.env = env
        # The app refuses sockets beyond CALLRECORDER_MAX_SOCKETS (default 200):
        # lifted, so the search finds what one process holds, not the setting.
        env["CALLRECORDER_MAX_SOCKETS"] = "100000"
        self.log = open(self.dir / "server.log", "wb")  # noqa: SIM115
        self.process = start(
            command, SERVER_CORE, cwd=APP, env=env, stdout=self.log, stderr=self.log
        )
        self._wait_listening()
        self.ps = psutil.Process(self.process.pid)
        self.samples: list[tuple[float, float, int]] = []  # (time, cpu s, rss)
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _wait_listening(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.target} exited; see {self.dir}/server.log")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.target} did not listen within {timeout} s")

    def _sample(self) -> None:
        while self._sampling:
            try:
                with self.ps.oneshot():
                    cpu = self.ps.cpu_times()
                    rss = self.ps.memory_info().rss
            except psutil.Error:
                return
            self.samples.append((time.time(), cpu.user + cpu.system, rss))
            time.sleep(0.2)

    def cpu_seconds_at(self, moment: float) -> float:
        """CPU seconds used by the server up to `moment` (the nearest sample)."""
        time.sleep(max(0.0, moment + 0.3 - time.time()))
        return min(self.samples, key=lambda sample: abs(sample[0] - moment))[1]

    def cpu_share(self, begin: float, end: float) -> float:
        """Share of one core the server used between two moments."""
        used = self.cpu_seconds_at(end) - self.cpu_seconds_at(begin)
        return used / (end - begin)

    def rss_between(self, begin: float, end: float) -> list[int]:
        return [rss for moment, _, rss in self.samples if begin <= moment <= end]

    def rss_now(self) -> int:
        return self.ps.memory_info().rss

    def recordings(self) -> dict[str, dict]:
        """Saved recordings by call uuid: frames, size on disk, when finished."""
        saved = {}
        if self.is_floor:
            for done in (self.dir / "floor").glob("*.done"):
                info = json.loads(done.read_text())
                size = done.with_suffix(".pcm").stat().st_size
                ok = size == info["size"] == info["frames"] * FRAME_BYTES
                saved[done.stem] = {**info, "size_ok": ok}
            return saved
        query = (
            "SELECT c.uuid, r.frame_count, r.size_bytes, r.created_at, r.file"
            " FROM recordings_app_recording r"
            " JOIN recordings_app_call c ON c.id = r.call_id"
        )
        with sqlite3.connect(self.db, timeout=20) as db:
            rows = db.execute(query).fetchall()
        for call_uuid, frames, size, created, name in rows:
            path = self.media / name
            on_disk = path.stat().st_size if path.exists() else -1
            finished = datetime.fromisoformat(created).replace(tzinfo=UTC)
            saved[call_uuid] = {
                "frames": frames,
                "finished": finished.timestamp(),
                "size_ok": size == on_disk == WAV_HEADER + frames * FRAME_BYTES,
            }
        return saved

    def audio_frames(self) -> float:
        """Frames on disk, finished or not (spool files of killed calls too)."""
        if self.is_floor:
            files = [(path, 0) for path in (self.dir / "floor").glob("*.pcm")]
        else:
            files = [(path, WAV_HEADER) for path in self.dir.rglob("*.wav")]
        return sum(path.stat().st_size - header for path, header in files) / FRAME_BYTES

    def idle(self, seconds: float = 2.0) -> bool:
        """True when the server used under 5% of a core over the last seconds."""
        now = time.time()
        recent = [s for s in self.samples if s[0] >= now - seconds]
        if len(recent) < 2 or recent[-1][0] - recent[0][0] < seconds * 0.8:
            return False
        used = recent[-1][1] - recent[0][1]
        return used / (recent[-1][0] - recent[0][0]) < 0.05

    def wait_recordings(self, uuids, timeout: float = 120) -> dict[str, dict]:
        """Wait for the calls' recordings; give up early once the server is idle."""
        begun = time.monotonic()
        while True:
            saved = self.recordings()
            done = all(u in saved for u in uuids)
            waited = time.monotonic() - begun
            if done or waited > timeout or (waited > 5 and self.idle()):
                return {u: saved[u] for u in uuids if u in saved}
            time.sleep(0.1)

    def stop(self) -> None:
        self._sampling = False
        stop(self.process)
        self.log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def dashboard_session(server: Server) -> str:
    """A signed-in user's session key in the server's database (a supervisor)."""
    script = (
        "import django; django.setup()\n"
        "from django.contrib.auth import get_user_model\n"
        "from django.test import Client\n"
        "user = get_user_model().objects.create_user('bench-supervisor')\n"
        "client = Client()\n"
        "client.force_login(user)\n"
        "print(client.cookies['sessionid'].value)\n"
    )
    env = {**server.env, "DJANGO_SETTINGS_MODULE": "callrecorder.settings"}
    done = subprocess.run(
        [PYTHON, "-c", script],
        cwd=APP,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def load_command(server: Server, calls: int, seconds: float, **options) -> list[str]:
    command = [PYTHON, "bench/load.py", "--url", server.url]
    command += ["--calls", str(calls), "--seconds", str(seconds)]
    if options.get("dashboard"):
        command += ["--dashboard-session", dashboard_session(server)]
    if options.get("fast"):
        command.append("--fast")
    if options.get("stop_after"):
        command += ["--stop-after", str(options["stop_after"])]
    return command


def load_timeout(calls: int, seconds: float) -> float:
    return 120 + calls * 0.2 + seconds * 2


def run_load(server: Server, calls: int, seconds: float, **options) -> dict:
    """Run bench/load.py on the client core and return what it measured."""
    process = start(
        load_command(server, calls, seconds, **options),
        CLIENT_CORE,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=load_timeout(calls, seconds))
    finally:
        stop(process)
    if process.returncode != 0:
        raise RuntimeError(f"load.py failed: {err[-2000:]}")
    result = json.loads(out)
    if result["errors"]:
        log(f"  {result['errors']} calls failed, e.g. {result['first_errors'][:1]}")
    return result


@dataclass
class Kept:
    """Whether every frame sent was saved, and how long each finalise took."""

    calls: int
    saved: int
    frames_sent: int
    frames_saved: int
    all_kept: bool
    finalise_s: list[float] = field(default_factory=list)
    finished_last: float = 0.0


def check_kept(server: Server, result: dict, timeout: float = 120) -> Kept:
    sent = result["per_call"]
    saved = server.wait_recordings(sent, timeout)
    exact = [
        u
        for u, call in sent.items()
        if u in saved and saved[u]["frames"] == call["frames"] and saved[u]["size_ok"]
    ]
    return Kept(
        calls=result["calls"],
        saved=len(saved),
        frames_sent=result["frames_sent"],
        frames_saved=sum(s["frames"] for s in saved.values()),
        all_kept=len(exact) == result["calls"] and result["errors"] == 0,
        finalise_s=[saved[u]["finished"] - sent[u]["close_started"] for u in saved],
        finished_last=max((s["finished"] for s in saved.values()), default=0.0),
    )


# --- the measurements -----------------------------------------------------


def realtime_step(
    target: str, calls: int, seconds: float, dashboard: bool = False
) -> dict:
    """N calls at real-time pace on a fresh server: lag, CPU, frames kept."""
    with Server(target) as server:
        result = run_load(server, calls, seconds, dashboard=dashboard)
        kept = check_kept(server, result)
        begin, end = result["stream_start"] + 1, result["stream_end"] - 0.5
        cpu = server.cpu_share(begin, end) if end > begin + 1 else float("nan")
    problems = []
    if not kept.all_kept:
        problems.append(
            f"frames lost ({kept.frames_saved}/{kept.frames_sent}, "
            f"{result['errors']} errors)"
        )
    if (result["lag_p99_ms"] or 0) >= MAX_P99_LAG_MS:
        problems.append("p99 lag")
    if cpu >= MAX_SERVER_CPU:
        problems.append("server CPU")
    watched = result["dashboard"]
    if dashboard and (
        watched["started"] < calls
        or watched["ended"] < calls
        or watched["levels_per_second"] < 3
    ):
        problems.append("dashboard missed calls or levels")
    if problems and result["client_cpu"] > 0.9:
        problems.append("(client core saturated too)")
    return {
        "calls": calls,
        "passed": not problems,
        "problems": problems,
        "lag_p99_ms": result["lag_p99_ms"],
        "lag_max_ms": result["lag_max_ms"],
        "ping_p99_ms": result["ping_p99_ms"],
        "server_cpu": round(cpu, 3),
        "client_cpu": result["client_cpu"],
        "setup_s": result["setup_seconds"],
        "first_errors": result["first_errors"],
        "dashboard": result["dashboard"],
    }


def capacity(
    target: str,
    steps: list[int],
    seconds: float,
    refine: bool,
    dashboard: bool = False,
) -> dict:
    """Largest passing step; stop at the first failure, then try the midpoint once.

    A failing step is run again once: other work on the machine causes stalls.
    """
    rows, best, failed = [], 0, None
    for calls in steps:
        row = realtime_step(target, calls, seconds, dashboard)
        rows.append(row)
        log(f"  {target} {calls} calls: {row}")
        if not row["passed"]:
            row = realtime_step(target, calls, seconds, dashboard)
            row["retry"] = True
            rows.append(row)
            log(f"  {target} {calls} calls, again: {row}")
        if not row["passed"]:
            failed = calls
            break
        best = calls
    if refine and failed and failed - best > 50:
        middle = (best + failed) // 50 * 25
        row = realtime_step(target, middle, seconds, dashboard)
        rows.append(row)
        log(f"  {target} {middle} calls: {row}")
        best = middle if row["passed"] else best
    at_best = next((r for r in reversed(rows) if r["calls"] == best), None)
    return {
        "calls": best,
        "bounded_by_steps": failed is None,
        "steps": rows,
        "at_best": at_best,
    }


def throughput(target: str, concurrency: list[int], seconds: float) -> dict:
    """Frames per server CPU-second, N calls sending as fast as accepted."""
    out = {}
    with Server(target) as server:
        for calls in concurrency:
            before = server.audio_frames()
            # 7000 s of audio per call: under the app's 2-hour limit
            # (CALLRECORDER_MAX_CALL_SECONDS), beyond which it drops frames.
            result = run_load(server, calls, 7000, fast=True, stop_after=seconds)
            kept = check_kept(server, result)
            # Until the last recording is saved, or the server went idle
            # (calls it dropped leave their frames in the spool).
            end = kept.finished_last if kept.all_kept else time.time() - 2
            begin = result["stream_start"]
            used = server.cpu_seconds_at(end) - server.cpu_seconds_at(begin)
            frames = server.audio_frames() - before
            out[calls] = {
                "frames_per_cpu_s": round(frames / used),
                "frames_per_s": round(frames / (end - begin)),
                "server_cpu": round(used / (end - begin), 3),
                "client_cpu": result["client_cpu"],
                "all_kept": kept.all_kept,
                "recordings_saved": kept.saved,
                "frames_sent": result["frames_sent"],
                "frames_on_disk": round(frames),
                "drain_s": round(end - result["stream_end"], 1),
            }
            log(f"  {target} throughput {calls} calls: {out[calls]}")
    return out


def memory_and_finalise(target: str, plan: dict) -> dict:
    """RSS per active call, after a burst, over a long call; finalise times."""
    mib = 1024 * 1024
    out = {}
    with Server(target) as server:
        check_kept(server, run_load(server, 1, 2))  # warm up every code path
        time.sleep(1)
        base = server.rss_now()
        out["rss_base_mib"] = round(base / mib, 1)

        calls, seconds = plan["active_calls"], plan["active_seconds"]
        result = run_load(server, calls, seconds)
        check_kept(server, result)
        middle = (result["stream_start"] + result["stream_end"]) / 2
        during = statistics.median(server.rss_between(middle, result["stream_end"]))
        out["rss_per_active_call_kib"] = round((during - base) / calls / 1024, 1)
        out["active_calls"] = calls

        # The long call first, on a heap the bursts have not grown yet.
        time.sleep(1)
        before = server.rss_now()
        result = run_load(server, 1, plan["long_seconds"], fast=True)
        kept = check_kept(server, result, timeout=300)
        rss = server.rss_between(result["stream_start"], kept.finished_last)
        tenth = max(1, len(rss) // 10)
        out["long_call"] = {
            "audio_minutes": plan["long_seconds"] / 60,
            "frames": kept.frames_saved,
            "all_kept": kept.all_kept,
            "send_seconds": round(result["stream_end"] - result["stream_start"], 1),
            "rss_before_mib": round(before / mib, 1),
            "rss_first_tenth_mib": round(max(rss[:tenth]) / mib, 1),
            "rss_last_tenth_mib": round(max(rss[-tenth:]) / mib, 1),
            "rss_max_mib": round(max(rss) / mib, 1),
            "growth_mib": round((max(rss) - before) / mib, 1),
            "finalise_ms": round(kept.finalise_s[0] * 1000, 1)
            if kept.finalise_s
            else None,
        }

        time.sleep(1)
        before = server.rss_now()
        result = run_load(server, 100, plan["burst_seconds"], fast=True)
        kept = check_kept(server, result)
        time.sleep(2)
        peak = max(server.rss_between(result["stream_start"], kept.finished_last))
        out["burst"] = {
            "rss_before_mib": round(before / mib, 1),
            "rss_peak_mib": round(peak / mib, 1),
            "rss_after_mib": round(server.rss_now() / mib, 1),
            "all_kept": kept.all_kept,
            "frames": kept.frames_saved,
        }

        short = []
        for _ in range(plan["short_repeats"]):
            kept = check_kept(server, run_load(server, 1, 60, fast=True))
            short.extend(kept.finalise_s)
        out["finalise_1min_ms"] = (
            round(statistics.median(short) * 1000, 1) if short else None
        )
        out["finalise_1min_all_ms"] = [round(s * 1000, 1) for s in short]

        log(f"  {target} memory: {out}")
    return out


def finalise_inside(minutes: list[float]) -> list[dict]:
    """bench/finalise.py on the server core: disconnect()'s work without a socket."""
    directory = WORK / "finalise"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    shutil.copy(migrated_database(), directory / "db.sqlite3")
    env = {
        **os.environ,
        "MEDIA_ROOT": str(directory / "media"),
        "SPOOL_DIR": str(directory / "spool"),
        "DATABASE_URL": f"sqlite:///{directory / 'db.sqlite3'}",
    }
    command = [PYTHON, str(ROOT / "bench/finalise.py"), "--minutes"]
    command += [str(m) for m in minutes]
    process = start(command, SERVER_CORE, cwd=APP, env=env, stdout=subprocess.PIPE)
    try:
        out, _ = process.communicate(timeout=300)
    finally:
        stop(process)
    return json.loads(out)


def profile(target: str, calls: int, seconds: float) -> dict:
    """py-spy on the server while `calls` stream in real time: SVG and top costs."""
    RESULTS.mkdir(exist_ok=True)
    svg = RESULTS / f"profile-{target}.svg"
    raw = RESULTS / f"profile-{target}.txt"
    stream = 3 * seconds + 10
    with Server(target) as server:
        load = start(
            load_command(server, calls, stream),
            CLIENT_CORE,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            # Setup is over when every call's socket is open; then profile.
            setup_deadline = time.monotonic() + load_timeout(calls, 0)
            while len(list((server.dir / "spool").glob("*.json"))) < calls:
                if load.poll() is not None or time.monotonic() > setup_deadline:
                    raise RuntimeError("the load did not start streaming")
                time.sleep(0.2)
            time.sleep(3)
            for output, fmt in ((svg, "flamegraph"), (raw, "raw")):
                subprocess.run(
                    [
                        *("taskset", "-c", CLIENT_CORE, str(ROOT / ".venv/bin/py-spy")),
                        *("record", "--pid", str(server.process.pid)),
                        *("--duration", str(int(seconds)), "--rate", "100"),
                        *("--format", fmt, "-o", str(output)),
                    ],
                    check=True,
                    capture_output=True,
                    timeout=seconds + 60,
                )
            load.communicate(timeout=load_timeout(calls, stream))
        finally:
            stop(load)
    return {"svg": str(svg.relative_to(ROOT)), "top": top_costs(raw)}


def top_costs(raw: Path, count: int = 15) -> dict:
    """Shares per function of the event loop thread's busy samples (not in epoll).

    Frames found in every busy sample (the event loop's own) are left out of
    the inclusive list.
    """
    own, inclusive, total, idle = Counter(), Counter(), 0, 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = [_function(frame) for frame in stack.split(";")]
        if not any(f.startswith("BaseEventLoop._run_once") for f in frames):
            continue  # not the event loop's thread (thread pools waiting)
        if frames[-1].startswith(("select (", "EpollSelector.select (")):
            idle += int(samples)
            continue
        total += int(samples)
        own[frames[-1]] += int(samples)
        for name in set(frames):
            inclusive[name] += int(samples)
    inclusive = Counter({k: n for k, n in inclusive.items() if n < total})

    def share(counter: Counter) -> list[tuple[str, float]]:
        return [
            (name, round(100 * n / max(1, total), 1))
            for name, n in counter.most_common(count)
        ]

    return {
        "busy_samples": total,
        "idle_samples": idle,
        "self": share(own),
        "inclusive": share(inclusive),
    }


def _function(frame: str) -> str:
    """'write (recordings_app/audio.py:140)' -> 'write (recordings_app/audio.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    for prefix in (str(ROOT) + "/", "site-packages/", "python3.11/"):
        path = path.rpartition(prefix)[2] if prefix in path else path
    return f"{name} ({path})"


# --- the report -----------------------------------------------------------


def table(results: dict) -> str:
    """The summary: each server, and the references as a ratio to Daphne."""
    present = [t for t in TARGETS + EXTRA_TARGETS if t in results]

    def value(target: str, path: tuple) -> float | None:
        node = results[target]
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    rows = [
        ("real-time capacity (calls)", ("capacity", "calls"), True),
        (
            "  p99 frame lag at capacity (ms)",
            ("capacity", "at_best", "lag_p99_ms"),
            False,
        ),
        (
            "  p99 ping RTT at capacity (ms)",
            ("capacity", "at_best", "ping_p99_ms"),
            False,
        ),
        (
            "  server CPU at capacity (share of a core)",
            ("capacity", "at_best", "server_cpu"),
            False,
        ),
    ]
    for calls in results.get("concurrency", []):
        rows.append(
            (
                f"throughput, {calls} fast calls (frames/CPU-s)",
                ("throughput", calls, "frames_per_cpu_s"),
                True,
            )
        )
    rows += [
        ("RSS idle after warm-up (MiB)", ("memory", "rss_base_mib"), False),
        ("RSS per active call (KiB)", ("memory", "rss_per_active_call_kib"), False),
        (
            "RSS after a burst of 100 fast calls (MiB)",
            ("memory", "burst", "rss_after_mib"),
            False,
        ),
        ("  peak during the burst (MiB)", ("memory", "burst", "rss_peak_mib"), False),
        (
            "RSS growth over the long fast call, max - before (MiB)",
            ("memory", "long_call", "growth_mib"),
            False,
        ),
        (
            "finalise after hangup, 1-minute call (ms)",
            ("memory", "finalise_1min_ms"),
            False,
        ),
        (
            "finalise after hangup, long call (ms)",
            ("memory", "long_call", "finalise_ms"),
            False,
        ),
    ]
    header = ["metric", *present]
    header += [f"{t} / daphne" for t in present if t != "daphne"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for label, path, _ in rows:
        cells = [label]
        values = {t: value(t, path) for t in present}
        for t in present:
            text = "-" if values[t] is None else f"{values[t]:g}"
            if path == ("capacity", "calls") and value(
                t, ("capacity", "bounded_by_steps")
            ):
                text = f">= {text} (top step)"
            cells.append(text)
        for t in present:
            if t == "daphne":
                continue
            base, other = values.get("daphne"), values[t]
            ratio = other / base if base and other is not None else None
            cells.append("-" if ratio is None else f"{ratio:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def git_describe(directory: Path) -> str:
    """The commit the app is at, with a note when its files differ from it."""
    marker = directory / "BENCH_COMMIT"  # written next to a `git archive` snapshot
    if marker.exists():
        return marker.read_text().strip() + " (snapshot)"
    try:
        head = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(directory),
                "status",
                "--porcelain",
                "--",
                ".",
                ":!bench",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short steps, 10-min call")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument(
        "--only", default="capacity,throughput,memory,profile", help="parts to run"
    )
    parser.add_argument("--max-minutes", type=float, default=0, help="time budget")
    parser.add_argument(
        "--app", type=Path, default=ROOT, help="the app's directory (default: here)"
    )
    parser.add_argument(
        "--dashboard",
        action="store_true",
        help="capacity with a signed-in live dashboard watching every step",
    )
    parser.add_argument("--steps", default="", help="capacity steps, e.g. 400,450,500")
    args = parser.parse_args()
    global APP
    APP = args.app.resolve()
    quick = args.quick
    plan = {
        "steps": [50, 100, 200, 400]
        if quick
        else [50, 100, 150, 200, 300, 400, 500, 600, 800],
        "step_seconds": 10 if quick else 20,
        "concurrency": [1, 10, 100],
        "throughput_seconds": 5 if quick else 15,
        "active_calls": 50 if quick else 100,
        "active_seconds": 10 if quick else 20,
        "burst_seconds": 10 if quick else 60,
        "short_repeats": 1 if quick else 3,
        "long_seconds": 600 if quick else 3600,
        "profile_calls": 100 if quick else 200,
        "profile_seconds": 5 if quick else 15,
    }
    if args.steps:
        plan["steps"] = [int(step) for step in args.steps.split(",")]
    budget = args.max_minutes or (15 if quick else 45)
    deadline = time.monotonic() + budget * 60
    parts = args.only.split(",")
    targets = args.targets.split(",")

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    atexit.register(stop_everything)
    WORK.mkdir(exist_ok=True)
    (WORK / "template.sqlite3").unlink(missing_ok=True)  # migrate this app afresh
    results: dict = {
        "plan": plan,
        "concurrency": plan["concurrency"],
        "app": {"dir": str(APP), "git": git_describe(APP)},
    }
    jobs = []
    for target in targets:
        results[target] = {}
        if "capacity" in parts:
            jobs.append(
                (
                    target,
                    "capacity",
                    lambda t: capacity(
                        t,
                        plan["steps"],
                        plan["step_seconds"],
                        not quick,
                        args.dashboard,
                    ),
                )
            )
        if "throughput" in parts:
            jobs.append(
                (
                    target,
                    "throughput",
                    lambda t: throughput(
                        t, plan["concurrency"], plan["throughput_seconds"]
                    ),
                )
            )
        if "memory" in parts:
            jobs.append((target, "memory", lambda t: memory_and_finalise(t, plan)))
    if "memory" in parts and {"daphne", "uvicorn"} & set(targets):
        minutes = [1, plan["long_seconds"] / 60]
        jobs.append(("app", "finalise_inside", lambda t: finalise_inside(minutes)))
    if "profile" in parts:
        for target in ("daphne", "uvicorn"):
            if target in targets:
                jobs.append(
                    (
                        target,
                        "profile",
                        lambda t: profile(
                            t, plan["profile_calls"], plan["profile_seconds"]
                        ),
                    )
                )
    try:
        for target, part, job in jobs:
            if time.monotonic() > deadline:
                log(f"time budget spent: skipping {target} {part}")
                continue
            log(f"{target}: {part}")
            try:
                results[target][part] = job(target)
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
                log(f"{target} {part} failed: {error}")
                results[target][part] = {"error": str(error)}
    finally:
        stop_everything()
    RESULTS.mkdir(exist_ok=True)
    name = "quick" if quick else "full"
    if args.only != parser.get_default("only"):
        name += "-" + "-".join(parts)
    if args.dashboard:
        name += "-dashboard"
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=1, default=str))
    summary = table(results)
    (RESULTS / f"{name}.md").write_text(summary + "\n")
    print()
    print(summary)
    for row in results["app"].get("finalise_inside", []):
        print(f"finalise inside the app (bench/finalise.py): {row}")
    for target in targets:
        for row in results[target].get("capacity", {}).get("steps", []):
            print(f"{target:8} {row}")
        top = results[target].get("profile", {}).get("top")
        if top:
            print(
                f"\npy-spy, {target}: {top['busy_samples']} busy samples "
                f"({top['idle_samples']} idle in epoll); self time:"
            )
            for name_, share in top["self"]:
                print(f"  {share:5.1f}%  {name_}")
            print("inclusive:")
            for name_, share in top["inclusive"]:
                print(f"  {share:5.1f}%  {name_}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        stop_everything()
        sys.exit(130)
