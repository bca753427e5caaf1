"""/healthz, /readyz and /metrics: for load balancers, orchestrators, Prometheus.

Not pages: they skip the pages' middleware as Vonage's webhooks do (no
session, sign-in, HTTPS redirect or host check), so a probe never meets a
sign-in page, and no thread is started per probe. Slow checks run in
threads of their own, one at a time each: a storage or database that hangs
cannot take the threads that store recordings.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_safe

from .. import metrics, selectors
from ..addresses import arrived_forwarded, client_ip, is_trusted_proxy
from ..audio.spool import orphaned_spools
from ..page_middleware import skips_page_middleware

logger = logging.getLogger(__name__)

# A name only looked up: any answer, yes or no, says the storage answers.
STORAGE_PROBE_NAME = ".readyz-probe"


class StillBusy(Exception):
    """The same check, started by an earlier request, has not finished."""


_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")
_running: dict[str, Future] = {}


async def _in_own_thread(name: str, work: Callable[[], object]) -> object:
    """Run `work` in the health threads, at most one of each name at a time."""
    running = _running.get(name)
    if running is not None and not running.done():
        raise StillBusy(f"{name}: the previous check has not answered yet")
    _running[name] = future = _threads.submit(work)
    return await asyncio.wrap_future(future)


def _database_answers() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # this thread's own: not left open between probes


def _storage_answers() -> None:
    default_storage.exists(STORAGE_PROBE_NAME)


async def _channel_layer_answers() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "readyz.ping"})
    await layer.receive(channel)


CHECKS: dict[str, Callable[[], Awaitable[object]]] = {
    "database": lambda: _in_own_thread("database", _database_answers),
    "storage": lambda: _in_own_thread("storage", _storage_answers),
    "channel layer": _channel_layer_answers,
}


async def _failure(name: str) -> str | None:
    """None when the check passes, else what went wrong, briefly."""
    timeout = settings.HEALTH_CHECK_TIMEOUT_SECONDS
    try:
        await asyncio.wait_for(CHECKS[name](), timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as error:  # noqa: BLE001 - any error: not ready
        logger.debug("readyz: %s failed", name, exc_info=True)
        return f"{type(error).__name__}: {error}"[:300]
    return None


_failing_before: frozenset[str] = frozenset()


def _log_change(failures: dict[str, str]) -> None:
    """A log line when the answer changes, not one per probe."""
    global _failing_before
    failing = frozenset(failures)
    if failing == _failing_before:
        return
    _failing_before = failing
    if failing:
        details = "; ".join(f"{name}: {why}" for name, why in failures.items())
        logger.warning("not ready: %s", details)
    else:
        logger.info("ready again")


@skips_page_middleware
@never_cache
@require_safe
async def healthz(request: HttpRequest) -> HttpResponse:
    """The process answers; nothing else is checked (no database)."""
    return HttpResponse("ok\n", content_type="text/plain")


@skips_page_middleware
@never_cache
@require_safe
async def readyz(request: HttpRequest) -> HttpResponse:
    """The database, the storage and the channel layer answer: 200, else 503
    naming those that do not. Each check runs at the same time, with a timeout."""
    outcomes = await asyncio.gather(*(_failure(name) for name in CHECKS))
    failures = {name: why for name, why in zip(CHECKS, outcomes, strict=True) if why}
    _log_change(failures)
    checks = {name: failures.get(name, "ok") for name in CHECKS}
    body = {"ready": not failures, "failed": list(failures), "checks": checks}
    response = HttpResponse(
        json.dumps(body) + "\n",
        status=503 if failures else 200,
        content_type="application/json",
    )
    # Django would log every refused probe as an error; _log_change logs once.
    response._has_been_logged = True
    return response


# --- /metrics ---------------------------------------------------------------


def _read_state() -> metrics.State:
    """Calls in progress (the live socket rows of every worker) and the spools
    recover_recordings would take now: past the grace period, and no live
    socket writing them."""
    try:
        in_progress, live_spools = selectors.being_recorded()
        deliveries = selectors.webhook_deliveries_waiting()
    finally:
        connection.close()
    waiting = orphaned_spools(
        settings.SPOOL_DIR, grace_seconds=settings.CALLRECORDER_RECOVERY_GRACE_SECONDS
    )
    return metrics.State(
        calls_in_progress=in_progress,
        spools_waiting=sum(
            meta.with_suffix(".wav").name not in live_spools for meta in waiting
        ),
        webhook_deliveries=deliveries,
    )


@functools.lru_cache(maxsize=8)
def _networks(allowed: tuple[str, ...]) -> list:
    return [ipaddress.ip_network(network, strict=False) for network in allowed]


def _address_allowed(request: HttpRequest) -> bool:
    """From METRICS_ALLOWED_IPS, by the client's address; a request a proxy
    we were not told of forwarded has no address we can go by (a proxy on
    this machine would make everyone loopback)."""
    if arrived_forwarded(request) and not is_trusted_proxy(
        request.META.get("REMOTE_ADDR")
    ):
        return False
    address = client_ip(request)
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(
        ip in network for network in _networks(tuple(settings.METRICS_ALLOWED_IPS))
    )


def _token_matches(authorization: str) -> bool:
    scheme, _, presented = authorization.strip().partition(" ")
    token = settings.METRICS_TOKEN
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(presented.strip().encode(), token.encode())
    )


def _metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    """None for a request that may read /metrics; else 401 or 403. A token
    sent is always checked: a wrong one is refused even from an allowed
    address."""
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        if _token_matches(authorization):
            return None
        reason = "wrong token"
    elif _address_allowed(request):
        return None
    elif settings.METRICS_TOKEN:
        reason = "a token is needed (Authorization: Bearer)"
    else:
        return HttpResponse("Forbidden: not from METRICS_ALLOWED_IPS\n", status=403)
    return HttpResponse(
        f"Unauthorized: {reason}\n",
        status=401,
        content_type="text/plain",
        headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
    )


def _page() -> bytes:
    return metrics.exposition(_read_state())


@skips_page_middleware
@never_cache
@require_GET
async def metrics_page(request: HttpRequest) -> HttpResponse:
    """Prometheus's page: every worker's counts, and the state read now."""
    refusal = _metrics_refusal(request)
    if refusal is not None:
        return refusal
    try:
        page = await asyncio.wait_for(
            _in_own_thread("metrics", _page), settings.HEALTH_CHECK_TIMEOUT_SECONDS
        )
    except Exception:  # noqa: BLE001 - the counts, without the state
        logger.warning("metrics: state not read", exc_info=True)
        page = metrics.exposition(None)
    return HttpResponse(page, content_type=metrics.CONTENT_TYPE)
