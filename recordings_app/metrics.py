"""Prometheus metrics: what each worker counts, and one scrape that adds them up.

Production runs several worker processes, and Prometheus scrapes one of them.
What happens in a process (calls set up, answer latency, audio received,
recordings stored or failed) is a prometheus-client counter or histogram.
With PROMETHEUS_MULTIPROC_DIR set before the workers start, each process
keeps its figures in files of its own there, and a scrape adds up every
process's files (MultiProcessCollector), whichever worker answers it; a
worker that dies leaves its counts behind, so the sums never go back.
Without it (make run, the tests) the figures are this process's own.

What is true now (calls in progress, spools waiting for recovery, webhook
deliveries) is not counted by any process: views/health.py reads it from
the database and the spool folder at each scrape and hands it in as State.
So no gauge goes stale when its worker dies, and mark_process_dead (which
only clears "live" gauges) has nothing to do. No Django here.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from .audio.spool import SpoolGone, SpoolInUse

CONTENT_TYPE = CONTENT_TYPE_LATEST

# This app's metrics only: the library's default registry also holds the
# process and GC collectors, whose figures mean nothing summed over workers.
PROCESS = CollectorRegistry(auto_describe=True)

CALLS_SET_UP = Counter(
    "callrecorder_calls_set_up",
    "Calls answered with an NCCO (the answer webhook's 200s).",
    registry=PROCESS,
)
ANSWER_LATENCY = Histogram(
    "callrecorder_answer_latency_seconds",
    "Time to produce the answer webhook's NCCO, from the view's start "
    "(signature check and the call's write included). Vonage gives up at 5 s.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=PROCESS,
)
AUDIO_FRAMES = Counter(
    "callrecorder_audio_frames_received",
    "Binary audio frames received on Vonage sockets, added when each socket closes.",
    registry=PROCESS,
)
AUDIO_BYTES = Counter(
    "callrecorder_audio_bytes_received",
    "Bytes of audio received on Vonage sockets, added when each socket closes.",
    registry=PROCESS,
)
RECORDINGS_STORED = Counter(
    "callrecorder_recordings_stored",
    "Recordings stored: when the call ended (via=socket) or by recover_recordings "
    "(via=recovery).",
    ["via"],
    registry=PROCESS,
)
RECORDINGS_FAILED = Counter(
    "callrecorder_recordings_failed",
    "Recordings that could not be stored (their spools are kept for recovery).",
    ["via"],
    registry=PROCESS,
)
VIAS = ("socket", "recovery")
for _via in VIAS:  # at 0 from the start: a rate() needs a first sample
    RECORDINGS_STORED.labels(via=_via)
    RECORDINGS_FAILED.labels(via=_via)

P = ParamSpec("P")
R = TypeVar("R")


def counts_recordings(*, via: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Count what a store function did: a recording returned is stored, an
    error is a failure; None (a socket with no audio) is neither, nor is a
    spool another process holds or has just finished."""
    stored, failed = (
        RECORDINGS_STORED.labels(via=via),
        RECORDINGS_FAILED.labels(via=via),
    )

    def decorate(store: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(store)
        def counted(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                recording = store(*args, **kwargs)
            except (SpoolInUse, SpoolGone):
                raise
            except Exception:
                failed.inc()
                raise
            if recording is not None:
                stored.inc()
            return recording

        return counted

    return decorate


def audio_received(*, frames: int, size: int) -> None:
    """A socket's frames and bytes, once, when it closes: nothing per frame."""
    AUDIO_FRAMES.inc(frames)
    AUDIO_BYTES.inc(size)


@dataclass(frozen=True)
class State:
    """What is true at the scrape, read by the caller (views/health.py)."""

    calls_in_progress: int
    spools_waiting: int
    # Outgoing webhook deliveries by state ("pending", "failed"); None while
    # there are none to count (they are not built yet): the metric is left out.
    webhook_deliveries: Mapping[str, int] | None = None


class _StateCollector:
    """The State as gauges; with no State (it could not be read), says so."""

    def __init__(self, state: State | None) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "callrecorder_state_read",
            "1 when the gauges below could be read at this scrape (database, "
            "spool folder), else 0 and they are left out.",
            value=int(self.state is not None),
        )
        if self.state is None:
            return
        yield GaugeMetricFamily(
            "callrecorder_calls_in_progress",
            "Calls being recorded now, by any worker (live socket rows): the "
            "same figure from every worker.",
            value=self.state.calls_in_progress,
        )
        yield GaugeMetricFamily(
            "callrecorder_spools_waiting",
            "Spools in this machine's SPOOL_DIR past the recovery grace period "
            "and not being recorded: waiting for recover_recordings.",
            value=self.state.spools_waiting,
        )
        if self.state.webhook_deliveries is not None:
            deliveries = GaugeMetricFamily(
                "callrecorder_webhook_deliveries",
                "Outgoing webhook deliveries by state.",
                labels=["state"],
            )
            for name, count in sorted(self.state.webhook_deliveries.items()):
                deliveries.add_metric([name], count)
            yield deliveries


def multiprocess_dir() -> str:
    """PROMETHEUS_MULTIPROC_DIR, as prometheus-client reads it at import."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def exposition(state: State | None) -> bytes:
    """The page Prometheus scrapes: every worker's counts, then the state."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        MultiProcessCollector(registry, path=multiprocess_dir())
    else:
        registry.register(PROCESS)
    registry.register(_StateCollector(state))
    return generate_latest(registry)
