"""Prometheus metrics of a service process.

- ``EntrypointMetrics`` counts and times every entrypoint (RPC methods, event handlers,
  timers, consumers, http) and counts handled events by type;
- ``ScrapeMetrics`` is what ``GET /metrics`` renders: the process's own metrics plus gauges
  computed at scrape time from the service's own database (``DatabaseCollector``): the
  families a service names in ``metric_families`` and, for a service with an event outbox,
  its backlog. A family whose query fails is left out of that scrape (logged, and counted in
  ``berth_metrics_collect_errors_total``); the scrape itself still answers.

Every label is bounded: services, entrypoint names, event types (the catalogue), statuses and
roles the code defines. Never ids, names, paths or addresses.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterable

from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.messaging import Consumer
from nameko.rpc import Rpc
from nameko.timer import Timer
from nameko.web.handlers import HttpRequestHandler
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

log = logging.getLogger(__name__)

ENTRYPOINT_CALLS = Counter(
    "berth_entrypoint_calls_total",
    "Entrypoint invocations (kind rpc, event, timer, consumer, http) by outcome "
    "(ok, rejected: a domain error, error: anything else)",
    ["service", "entrypoint", "kind", "outcome"])
ENTRYPOINT_LATENCY = Histogram(
    "berth_entrypoint_duration_seconds", "Time spent in an entrypoint",
    ["service", "entrypoint", "kind"],
    buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
EVENTS_HANDLED = Counter(
    "berth_events_handled_total",
    "Events a handler of this service ran for (redeliveries included), by source service, "
    "event type and outcome (ok, rejected, error)",
    ["service", "source_service", "event_type", "outcome"])
OUTBOX_PUBLISHED = Counter(
    "berth_outbox_events_published_total", "Events published from the transactional outbox",
    ["service", "event_type"])
COLLECT_ERRORS = Counter(
    "berth_metrics_collect_errors_total",
    "Scrape-time database metric families that could not be computed (left out of that "
    "scrape)", ["service", "family"])

# a family: called with a SQLAlchemy session at scrape time, yields metric families
Family = Callable[..., Iterable[Metric]]


def _kind(entrypoint) -> str:
    if isinstance(entrypoint, Rpc):
        return "rpc"
    if isinstance(entrypoint, EventHandler):  # before Consumer: an EventHandler is one
        return "event"
    if isinstance(entrypoint, Timer):
        return "timer"
    if isinstance(entrypoint, Consumer):
        return "consumer"
    if isinstance(entrypoint, HttpRequestHandler):
        return "http"
    return type(entrypoint).__name__.lower()


class EntrypointMetrics(DependencyProvider):
    """Counts and times every entrypoint of the service it is declared on."""

    def __init__(self):
        self._started: dict = {}
        self._label_children: dict[tuple, tuple] = {}  # bounded as the labels are

    def get_dependency(self, worker_ctx):
        return None

    def worker_setup(self, worker_ctx):
        self._started[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self._started.pop(worker_ctx, None)
        if started is None:
            return
        service = self.container.service_name
        entrypoint = worker_ctx.entrypoint
        name = entrypoint.method_name
        kind = _kind(entrypoint)
        if exc_info is None:
            outcome = "ok"
        else:
            from berth.errors import BerthError
            outcome = "rejected" if issubclass(exc_info[0], BerthError) else "error"
        calls, latency = self._children(service, name, kind, outcome)
        calls.inc()
        latency.observe(time.perf_counter() - started)
        if kind == "event":
            EVENTS_HANDLED.labels(service, entrypoint.source_service, entrypoint.event_type,
                                  outcome).inc()

    def worker_teardown(self, worker_ctx):
        self._started.pop(worker_ctx, None)

    def _children(self, service: str, name: str, kind: str, outcome: str) -> tuple:
        """The call counter's and latency histogram's children, looked up once per label set
        (``labels()`` validates and locks on every call)."""
        key = (service, name, kind, outcome)
        children = self._label_children.get(key)
        if children is None:
            children = self._label_children[key] = (
                ENTRYPOINT_CALLS.labels(service, name, kind, outcome),
                ENTRYPOINT_LATENCY.labels(service, name, kind))
        return children


# --- gauges computed from the service's own database at scrape time -----------------------

def counts_by(session, column, known: Iterable[str], *where) -> dict[str, int]:
    """``SELECT column, count(*) ... GROUP BY column`` with every known value present (0 if
    no row has it) and any value the code does not define counted as ``other``, so the label
    stays bounded whatever the table holds."""
    counts = {value: 0 for value in known}
    query = select(column, func.count()).group_by(column)
    if where:
        query = query.where(*where)
    for value, count in session.execute(query):
        key = value if value in counts else "other"
        counts[key] = counts.get(key, 0) + count
    return counts


def gauge(name: str, documentation: str, label: str, counts: dict[str, int],
          **constant: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[*constant, label])
    for value, count in sorted(counts.items()):
        family.add_metric([*constant.values(), value], count)
    return family


def outbox_backlog(service: str, model) -> Family:
    def outbox_backlog(session):  # published_at is indexed
        count = session.scalar(select(func.count()).select_from(model)
                               .where(model.published_at.is_(None)))
        family = GaugeMetricFamily(
            "berth_outbox_backlog",
            "Events recorded in this service's outbox and not published yet",
            labels=["service"])
        family.add_metric([service], count or 0)
        yield family
    return outbox_backlog


class DatabaseCollector(Collector):
    """Runs each family's queries in one short session per scrape; a failing family is
    logged, counted and skipped."""

    def __init__(self, service: str, sessionmaker, families: Iterable[Family]):
        self.service = service
        self.sessionmaker = sessionmaker
        self.families = list(families)

    def describe(self):
        return []  # computed per scrape: no fixed names to check at registration

    def collect(self):
        if not self.families:
            return
        with self.sessionmaker() as session:
            for family in self.families:
                try:
                    metrics = list(family(session))
                except Exception as exc:
                    name = getattr(family, "__name__", "family")
                    log.warning("metrics: %s.%s failed: %s", self.service, name,
                                str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                    COLLECT_ERRORS.labels(self.service, name).inc()
                    try:
                        session.rollback()  # PostgreSQL: the next query needs a fresh txn
                    except Exception:
                        return
                    continue
                yield from metrics


class _ProcessMetrics(Collector):
    """The process-wide default registry (entrypoints, outbox, Python and process metrics)."""

    def describe(self):
        return []

    def collect(self):
        return REGISTRY.collect()


class ScrapeMetrics(DependencyProvider):
    """What ``GET /metrics`` renders (``self.scrape_metrics.render()``).

    A service lists its database families as ``metric_families = (...)`` on its class; a
    service with an ``EventOutbox`` also gets ``berth_outbox_backlog``. One registry per
    service container, so several services in one test process never collide.
    """

    def setup(self):
        from berth.db_provider import Database
        from berth.outbox import EventOutbox  # berth.outbox imports this module

        service = self.container.service_name
        dependencies = self.container.dependencies
        families = list(getattr(self.container.service_cls, "metric_families", ()))
        families += [outbox_backlog(service, dep.model) for dep in dependencies
                     if isinstance(dep, EventOutbox)]
        database = next((dep for dep in dependencies if isinstance(dep, Database)), None)
        self.registry = CollectorRegistry(auto_describe=False)
        if database is not None and families:
            for family in families:  # every series present from the first scrape, at 0
                COLLECT_ERRORS.labels(service, getattr(family, "__name__", "family"))
            # Database.setup may run after this one: read its sessionmaker at scrape time
            self.registry.register(DatabaseCollector(
                service, lambda: database.sessionmaker(), families))
        self.registry.register(_ProcessMetrics())

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def get_dependency(self, worker_ctx):
        return self
