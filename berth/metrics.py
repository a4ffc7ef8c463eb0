"""Prometheus metrics of a service process, and the provider that records entrypoint calls."""
from __future__ import annotations

import time

from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc
from prometheus_client import Counter, Histogram

ENTRYPOINT_CALLS = Counter(
    "berth_entrypoint_calls_total", "Entrypoint invocations (RPC, events, timers, http)",
    ["service", "entrypoint", "kind", "outcome"])
ENTRYPOINT_LATENCY = Histogram(
    "berth_entrypoint_duration_seconds", "Time spent in an entrypoint",
    ["service", "entrypoint", "kind"],
    buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
OUTBOX_PUBLISHED = Counter(
    "berth_outbox_events_published_total", "Events published from the transactional outbox",
    ["service", "event_type"])


def _kind(entrypoint) -> str:
    if isinstance(entrypoint, Rpc):
        return "rpc"
    return type(entrypoint).__name__.lower()


class EntrypointMetrics(DependencyProvider):
    """Counts and times every entrypoint of the service it is declared on."""

    def __init__(self):
        self._started: dict = {}

    def get_dependency(self, worker_ctx):
        return None

    def worker_setup(self, worker_ctx):
        self._started[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self._started.pop(worker_ctx, None)
        if started is None:
            return
        service = self.container.service_name
        name = worker_ctx.entrypoint.method_name
        kind = _kind(worker_ctx.entrypoint)
        if exc_info is None:
            outcome = "ok"
        else:
            from berth.errors import BerthError
            outcome = "rejected" if issubclass(exc_info[0], BerthError) else "error"
        ENTRYPOINT_CALLS.labels(service, name, kind, outcome).inc()
        ENTRYPOINT_LATENCY.labels(service, name, kind).observe(time.perf_counter() - started)

    def worker_teardown(self, worker_ctx):
        self._started.pop(worker_ctx, None)
