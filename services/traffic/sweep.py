"""One traffic sweep (no nameko): ask containers what to read, read every copy's counters at
once, and record the deltas, quota notices and the sweep's own row in one transaction.

``Peers`` is what a sweep asks of the other services; the service passes its RPC, a unit
test a fake. The caller has already claimed the tick (``models.Sweep``).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Protocol

from sqlalchemy import update

from berth.db import utcnow
from services.traffic import ledger
from services.traffic.models import Sweep
from services.traffic.sampling import Sampler

log = logging.getLogger(__name__)


class Peers(Protocol):
    def sampling_targets(self) -> dict:
        """containers' ``sampling_targets``: ``{"servers": [...], "containers": [...]}``."""

    def traffic_limits(self, user_ids: list[int]) -> dict | None:
        """users' quota overrides for ``user_ids``; None when users cannot answer."""

    def plan_quotas(self, user_ids: list[int]) -> dict | None:
        """billing's plan quotas for ``user_ids``; None when billing cannot answer."""


def quotas_of(peers: Peers, user_ids: list[int], default: int) -> ledger.Quotas | None:
    """The quotas of ``user_ids``, or None when users or billing could not say."""
    limits = peers.traffic_limits(user_ids)
    plans = peers.plan_quotas(user_ids) if limits is not None else None
    return None if plans is None else ledger.Quotas(limits, plans, default,
                                                    frozenset(user_ids))


def sweep(sessions, peers: Peers, sampler: Sampler, record, tick: int, now: dt.datetime,
          quota_bytes: int) -> dict:
    """Sweep once for ``tick``; ``record(session, event)`` puts each event it causes
    (``traffic_quota_exceeded`` / ``_cleared``) in the outbox, in the same transaction as
    the counts."""
    started = time.monotonic()
    targets = peers.sampling_targets()
    containers = targets["containers"]
    with sessions() as session:
        previous = ledger.oldest_reads(session, containers)
        watched = ledger.open_notices(session)
    readings = sampler.read(targets["servers"], containers, previous)
    quotas = quotas_of(peers, sorted({int(c["user_id"]) for c in containers} | watched),
                       quota_bytes)
    with sessions() as session:
        done = ledger.record_sweep(
            session, now, readings.readings, {c["container_id"]: c for c in containers},
            readings.starts, quotas)
        for event in done.events:
            record(session, event)
        seconds = time.monotonic() - started
        session.execute(update(Sweep).where(Sweep.tick == tick).values(
            finished_at=utcnow(), containers=len(containers), recorded=done.counted,
            skipped=done.skipped, failed=len(readings.failed), seconds=seconds))
        session.commit()
    if readings.failed:
        log.warning("traffic sweep: %d of %d containers could not be read (e.g. %s)",
                    len(readings.failed), len(containers),
                    next(iter(readings.failed.values())))
    return {"containers": len(containers), "read": len(readings.readings),
            "counted": done.counted, "skipped": done.skipped, "restarts": done.restarts,
            "restarts_by_event": done.restarts_by_event,
            "failed": len(readings.failed), "bytes_in": done.bytes_in,
            "bytes_out": done.bytes_out, "quota_events": len(done.events),
            "read_seconds": round(readings.seconds, 3), "seconds": round(seconds, 3)}
