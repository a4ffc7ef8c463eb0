"""Traffic service: metering every container's network bytes, history, stats and quotas.
Entrypoints only; the domain is ``sampling`` (engines), ``ledger`` (recording) and
``reports`` (reading).

Every ``BERTH_TRAFFIC_INTERVAL`` seconds each replica's timer fires; the replica that inserts
the tick's ``traffic_sweeps`` row sweeps (``services.traffic.sweep``): it asks containers for
the sampling targets, reads every container's counters at once, and records the deltas
(``services.traffic.ledger``).
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import re
import time
import uuid
from dataclasses import dataclass

from nameko.exceptions import MethodNotFound, UnknownService
from nameko.rpc import RpcProxy

from berth.actor import Actor
from berth.db import insert_once, utcnow
from berth.docker.provider import EnginePoolProvider
from berth.errors import BadRequest, BerthError, Forbidden, ServiceUnavailable
from berth.lease import HOLDER, try_acquire
from berth.outbox import EventOutbox
from berth.schemas import MONTH_PATTERN
from berth.service import ServiceBase, call_with_timeout, every, rpc
from berth.settings import get_settings
from berth.validation import parse
from services.traffic import ledger, reports, sweep
from services.traffic.counters import month_of
from services.traffic.metrics import FAMILIES as METRIC_FAMILIES
from services.traffic.models import Lease, OutboxEvent, Sweep
from services.traffic.sampling import Sampler
from services.traffic.schemas import HistoryQuery, StatsBody

MONTH = re.compile(MONTH_PATTERN)  # as the RPCs take a month
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    interval: float
    quota_bytes: int
    raw_retention_days: float
    hourly_retention_days: float
    retention_interval: float
    concurrency: int

    @property
    def fresh_for(self) -> dt.timedelta:
        """How long a container's latest window stays its realtime rate."""
        return dt.timedelta(seconds=2.5 * self.interval + 5)


class SamplerProvider(EnginePoolProvider):
    """``self.sampler``: engine clients (a connection pool per engine big enough for every
    request of a sweep at once) that live as long as the service, and the traffic settings
    (a nameko config key in upper case, e.g. ``TRAFFIC_INTERVAL``, overrides each)."""

    tls_dir = "traffic-tls"

    def pool_size(self) -> int:
        return self.options.concurrency

    def setup(self):
        settings = get_settings()
        config = self.container.config

        def setting(name, kind):
            return kind(config.get(name.upper(), getattr(settings, name)))
        self.options = Options(
            setting("traffic_interval", float), setting("traffic_quota_bytes", int),
            setting("traffic_raw_retention_days", float),
            setting("traffic_hourly_retention_days", float),
            setting("traffic_retention_interval", float), setting("traffic_concurrency", int))
        super().setup()
        self.sampler = Sampler(self.pool, self.options.concurrency)
        # who claims ticks: each service instance its own (two may share a process in tests)
        self.sampler.holder = f"{HOLDER[:50]}-{uuid.uuid4().hex[:8]}"
        self.sampler.options = self.options
        self.sampler.ticks_lost = 0  # ticks another instance claimed first

    def get_dependency(self, worker_ctx):
        return self.sampler


class RpcPeers:
    """``sweep.Peers`` over containers', users' and billing's RPC, each call with a timeout."""

    def __init__(self, containers_rpc, users_rpc, billing_rpc):
        self.containers_rpc, self.users_rpc = containers_rpc, users_rpc
        self.billing_rpc = billing_rpc

    def sampling_targets(self) -> dict:
        return call_with_timeout(self.containers_rpc.sampling_targets)

    def traffic_limits(self, user_ids: list[int]) -> dict | None:
        return self._per_user(self.users_rpc.traffic_limits, user_ids,
                              "no traffic limits from users")

    def plan_quotas(self, user_ids: list[int]) -> dict | None:
        return self._per_user(self.billing_rpc.plan_quotas, user_ids,
                              "no plan quotas from billing")

    @staticmethod
    def _per_user(method, user_ids: list[int], failure: str) -> dict | None:
        """``method``'s map for ``user_ids``, asked in chunks; None if it cannot answer."""
        found: dict = {}
        try:
            for i in range(0, len(user_ids), 5000):
                found.update(call_with_timeout(method, user_ids[i:i + 5000]))
        except (BerthError, UnknownService, MethodNotFound) as exc:  # (an older peer)
            log.warning("traffic: %s: %s", failure, exc)
            return None
        return found


class TrafficService(ServiceBase):
    name = "traffic"
    metric_families = METRIC_FAMILIES  # gauges from this database, per scrape
    outbox = EventOutbox(OutboxEvent)
    sampler = SamplerProvider()
    containers_rpc = RpcProxy("containers")
    users_rpc = RpcProxy("users")
    billing_rpc = RpcProxy("billing")

    @property
    def _peers(self) -> RpcPeers:
        return RpcPeers(self.containers_rpc, self.users_rpc, self.billing_rpc)

    @property
    def _options(self) -> Options:
        return self.sampler.options

    # --- sampling --------------------------------------------------------------------------

    @every("traffic_interval")
    def sample_traffic(self):
        """Sweep once per tick across replicas: the tick's row goes to one of them."""
        interval = self._options.interval
        now = utcnow()
        tick = math.floor(now.timestamp() / interval)
        with self.db() as session:
            claimed = insert_once(session, Sweep, tick=tick, holder=self.sampler.holder,
                                  started_at=now)
            session.commit()
        if not claimed:
            self.sampler.ticks_lost += 1
            return
        try:
            self._sweep(tick, now)
        except BerthError as exc:  # containers or an engine away: the next tick reads on
            log.warning("traffic sweep %d skipped: %s", tick, exc)

    @rpc
    def sweep_now(self) -> dict:
        """One sweep now, outside the timer (operators, tests); counts like any other."""
        now = utcnow()
        tick = -time.time_ns()  # negative: never one of the timer's ticks
        with self.db() as session:
            session.add(Sweep(tick=tick, holder=self.sampler.holder, started_at=now))
            session.commit()
        return self._sweep(tick, now)

    def _sweep(self, tick: int, now: dt.datetime) -> dict:
        return sweep.sweep(self.db, self._peers, self.sampler,
                           self.outbox.add, tick, now, self._options.quota_bytes)

    @every("traffic_retention_interval")
    def prune(self):
        """Delete raw samples past the retention, in batches, in one replica."""
        interval = self._options.retention_interval
        if not try_acquire(self.db, Lease, "traffic-retention", interval * 0.8):
            return
        self.prune_now()

    @rpc
    def prune_now(self) -> dict:
        removed = reports.prune(self.db, utcnow(),
                                self._options.raw_retention_days,
                                self._options.hourly_retention_days)
        if any(removed.values()):
            log.info("traffic retention: removed %s", removed)
        return removed

    # --- reading ---------------------------------------------------------------------------

    @rpc
    def realtime(self) -> dict:
        with self.db() as session:
            return reports.realtime_all(session, utcnow(), self._options.fresh_for)

    @rpc
    def container_realtime(self, actor: dict, container_id: int) -> dict:
        """Owner or admin; NotFound for a container the containers service does not know."""
        caller = Actor.of(actor)
        info = call_with_timeout(self.containers_rpc.container_info, container_id)
        if not caller.is_admin and int(info["user_id"]) != caller.user_id:
            raise Forbidden("You may only see the traffic of your own containers")
        with self.db() as session:
            reply = reports.realtime_one(session, container_id, utcnow(), self._options.fresh_for)
        return {**reply, "container_name": info["container_name"], "user_id": info["user_id"],
                "status": info["status"]}

    @rpc
    def history(self, actor: dict, user_id: int, query: dict) -> dict:
        body = parse(HistoryQuery, query, "Invalid query")
        span = reports.window(body.start, body.end, body.granularity, utcnow())
        if Actor.of(actor).user_id != user_id:
            call_with_timeout(self.users_rpc.contact, user_id)  # 404 for an unknown user
        with self.db() as session:
            return reports.history(session, user_id, span, body.by_container)

    @rpc
    def stats(self, data: dict) -> dict:
        body = parse(StatsBody, data, "Invalid data")
        with self.db() as session:
            return reports.stats(session, body.start_date, body.end_date)

    def _over_limit(self, month: str | None = None) -> tuple[str, list[dict]]:
        month = month or month_of(utcnow())
        if not MONTH.fullmatch(str(month)):
            raise BadRequest("Invalid query", [{"field": "month", "message": "YYYY-MM"}])
        with self.db() as session:
            usage = reports.month_usage(session, month)
        quotas = sweep.quotas_of(self._peers, sorted(usage), self._options.quota_bytes)
        if quotas is None:
            raise ServiceUnavailable("The users or billing service did not answer with "
                                     "traffic quotas")
        return month, reports.over_limit(usage, quotas, month)

    @rpc
    def overlimit(self) -> dict:
        """Users whose current calendar month (UTC) in+out exceeds their quota."""
        month, rows = self._over_limit()
        default = self._options.quota_bytes
        return {"overlimit_users": rows, "month": month,
                "default_limit": default if default > 0 else None}

    @rpc
    def overlimit_users(self, month: str | None = None) -> dict:
        """For alerts: ``{"overlimit_users": [{user_id, used_bytes, limit_bytes, month}]}`` in
        ``month`` (YYYY-MM, default this month, UTC), against the users' quotas of today."""
        month, rows = self._over_limit(month)
        return {"overlimit_users": [{"user_id": r["user_id"], "used_bytes": r["total"],
                                     "limit_bytes": r["limit"], "month": month}
                                    for r in rows], "month": month}

    @rpc
    def users_over(self, threshold_bytes: int, month: str | None = None) -> dict:
        """For alerts' traffic rules: users whose in+out in ``month`` (YYYY-MM, default this
        month, UTC) is at least ``threshold_bytes``, whatever their quota."""
        month = month or month_of(utcnow())
        if (not isinstance(threshold_bytes, int) or threshold_bytes < 0
                or not MONTH.fullmatch(str(month))):
            raise BadRequest("Invalid query", [{"field": "threshold_bytes", "message":
                                                "a byte count >= 0 and a month YYYY-MM"}])
        with self.db() as session:
            return {"month": month, "threshold_bytes": threshold_bytes,
                    "users": reports.users_at_least(session, month, threshold_bytes)}

    @rpc
    def open_quota_notice(self, user_id: int) -> dict:
        """For billing: the month (YYYY-MM) of the user's open quota notice, this month's
        only (None: they are within their quota, as far as the last sweep knows)."""
        month = month_of(utcnow())
        with self.db() as session:
            return {"month": month if int(user_id) in ledger.open_notices(
                session, int(user_id), month) else None}

    @rpc
    def user_month(self, user_id: int) -> dict:
        """One user's bytes this calendar month (UTC): billing's rental summary."""
        with self.db() as session:
            return reports.user_month(session, int(user_id), month_of(utcnow()))

    @rpc
    def container_usage(self, container_id: int) -> dict:
        """For alerts: this month's bytes of one container and its latest rates."""
        with self.db() as session:
            return reports.container_usage(session, int(container_id), utcnow(),
                                           self._options.fresh_for)
