"""Recording a sweep: baselines, raw samples, rollups and quota notices in one transaction.

Never double-counted: a reading counts only if it moves its copy's baseline forward with a
compare-and-set on the previous read time (``UPDATE ... WHERE read_ns = <what we read>``, or
the INSERT of a copy's first baseline). Of two sweeps that read the same container (two
replicas, an overlapping slow sweep), the second finds the baseline moved and counts nothing.

Rollups are maintained incrementally in the same transaction (upserts adding the sweep's
bytes), with keys sorted so concurrent sweeps on PostgreSQL lock rows in one order.
No nameko here.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import and_, select, update

from berth.db import insert_once
from berth.events import TrafficQuotaExceeded
from services.traffic.counters import Reading, day_of, delta, hour_of, month_of
from services.traffic.models import (CounterBaseline, DailyTraffic, HourlyTraffic,
                                     MonthlyTraffic, QuotaNotice, TrafficSample)
from services.traffic.sampling import EngineStarts

log = logging.getLogger(__name__)


@dataclass
class Recorded:
    counted: int = 0  # readings that moved a baseline
    skipped: int = 0  # readings another sweep had already counted (or not newer)
    restarts: int = 0
    restarts_by_event: int = 0  # of which only the engine's start events could tell
    bytes_in: int = 0
    bytes_out: int = 0
    users: set[int] = field(default_factory=set)  # users with bytes in this sweep
    events: list = field(default_factory=list)


def _insert(session, model):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model)


def upsert_add(session, model, keys: tuple[str, ...], rows: list[dict]) -> None:
    """INSERT rows, or add their bytes_in/bytes_out to the existing row with the same key."""
    if not rows:
        return
    stmt = _insert(session, model)
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={
        "bytes_in": model.bytes_in + stmt.excluded.bytes_in,
        "bytes_out": model.bytes_out + stmt.excluded.bytes_out})
    session.execute(stmt, sorted(rows, key=lambda r: tuple(r[k] for k in keys)))


def quota_for(user_id: int, limits: dict, default_quota: int) -> int | None:
    """The user's monthly quota in bytes: their override, else the default (0: none)."""
    override = limits.get(str(user_id), limits.get(user_id))
    if override is not None:
        return int(override)
    return default_quota if default_quota > 0 else None


def record_sweep(session, sampled_at: dt.datetime, readings: list[Reading],
                 targets: dict[int, dict], starts: dict[int, EngineStarts],
                 limits: dict | None, default_quota: int) -> Recorded:
    """Count ``readings`` taken at ``sampled_at``; the caller commits.

    ``targets``: container id -> its sampling_targets row (owner, name, server). ``starts``:
    server id -> the engine's start events. ``limits``: users.traffic_limits for the owners,
    or None when users could not be asked (quotas are then checked on a later sweep).
    The events it causes (``traffic_quota_exceeded``) are in ``Recorded.events``, for the
    caller's outbox in the same transaction.
    """
    done = Recorded()
    readings = sorted(readings, key=lambda r: (r.container_id, r.engine_id))
    ids = sorted({r.container_id for r in readings})
    stored: dict[tuple[int, str], tuple[int, int, int]] = {}
    for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
        for cid, eid, rx, tx, read_ns in session.execute(
                select(CounterBaseline.container_id, CounterBaseline.engine_id,
                       CounterBaseline.rx_bytes, CounterBaseline.tx_bytes,
                       CounterBaseline.read_ns).where(CounterBaseline.container_id.in_(chunk))):
            stored[(cid, eid)] = (rx, tx, read_ns)

    samples, hourly, daily, monthly = [], {}, {}, {}
    hour, day, month = hour_of(sampled_at), day_of(sampled_at), month_of(sampled_at)
    for reading in readings:
        target = targets[reading.container_id]
        user_id = int(target["user_id"])
        previous = stored.get((reading.container_id, reading.engine_id))
        restarted = False
        if previous is not None:
            engine = starts.get(target["server_id"])
            restarted = bool(engine and engine.covers(previous[2]) and engine.started_between(
                reading.engine_id, previous[2], reading.read_ns))
        change = delta(*(previous or (None, None, None)), reading, restarted=restarted)
        if change is None:
            done.skipped += 1
            continue
        values = dict(user_id=user_id, container_name=target.get("container_name"),
                      server_id=target.get("server_id"), rx_bytes=reading.rx_bytes,
                      tx_bytes=reading.tx_bytes, read_ns=reading.read_ns,
                      sampled_at=sampled_at, rate_in=change.rate_in, rate_out=change.rate_out,
                      window_seconds=change.window_seconds)
        if previous is None:
            moved = insert_once(session, CounterBaseline, container_id=reading.container_id,
                                engine_id=reading.engine_id, **values)
        else:
            moved = session.execute(update(CounterBaseline).where(and_(
                CounterBaseline.container_id == reading.container_id,
                CounterBaseline.engine_id == reading.engine_id,
                CounterBaseline.read_ns == previous[2])).values(**values)).rowcount == 1
        if not moved:
            done.skipped += 1
            continue
        done.counted += 1
        done.restarts += change.restarted
        done.restarts_by_event += restarted and reading.rx_bytes >= previous[0] \
            and reading.tx_bytes >= previous[1]
        if not (change.bytes_in or change.bytes_out):
            continue  # an idle interval: the baseline moved, nothing to add up
        done.bytes_in += change.bytes_in
        done.bytes_out += change.bytes_out
        done.users.add(user_id)
        samples.append(dict(sampled_at=sampled_at, user_id=user_id,
                            container_id=reading.container_id, bytes_in=change.bytes_in,
                            bytes_out=change.bytes_out, window_seconds=change.window_seconds,
                            restarted=change.restarted))
        for table, key in ((hourly, (user_id, hour, reading.container_id)),
                           (daily, (user_id, day, reading.container_id)),
                           (monthly, (month, user_id))):
            totals = table.setdefault(key, [0, 0])
            totals[0] += change.bytes_in
            totals[1] += change.bytes_out

    if samples:
        session.execute(TrafficSample.__table__.insert(), samples)
    upsert_add(session, HourlyTraffic, ("user_id", "hour", "container_id"), [
        dict(user_id=u, hour=h, container_id=c, bytes_in=i, bytes_out=o)
        for (u, h, c), (i, o) in hourly.items()])
    upsert_add(session, DailyTraffic, ("user_id", "day", "container_id"), [
        dict(user_id=u, day=d, container_id=c, bytes_in=i, bytes_out=o)
        for (u, d, c), (i, o) in daily.items()])
    upsert_add(session, MonthlyTraffic, ("month", "user_id"), [
        dict(month=m, user_id=u, bytes_in=i, bytes_out=o) for (m, u), (i, o) in monthly.items()])

    if limits is not None and done.users:
        done.events = notice_quotas(session, month, sorted(done.users), limits, default_quota)
    return done


def notice_quotas(session, month: str, user_ids: list[int], limits: dict,
                  default_quota: int) -> list[TrafficQuotaExceeded]:
    """An event for each of ``user_ids`` whose ``month`` in+out now exceeds their quota and
    who has not had one this month (the notice row's unique key decides, even across
    replicas)."""
    used = dict(session.execute(
        select(MonthlyTraffic.user_id, MonthlyTraffic.bytes_in + MonthlyTraffic.bytes_out)
        .where(MonthlyTraffic.month == month, MonthlyTraffic.user_id.in_(user_ids))).all())
    events = []
    for user_id in user_ids:
        limit = quota_for(user_id, limits, default_quota)
        total = int(used.get(user_id) or 0)
        if limit is None or total <= limit:
            continue
        if insert_once(session, QuotaNotice, user_id=user_id, month=month, used_bytes=total,
                       limit_bytes=limit, noticed_at=dt.datetime.now(dt.timezone.utc)):
            events.append(TrafficQuotaExceeded.new(user_id=user_id, month=month,
                                                   used_bytes=total, limit_bytes=limit))
    return events


def oldest_reads(session, containers: list[dict]) -> dict[int, int]:
    """server id -> the oldest stored read among the copies about to be read on it: the start
    of the interval whose start events the sampler fetches. Servers whose copies were never
    read are left out (a first read needs no events)."""
    wanted = {(c["container_id"], c["engine_id"]): c["server_id"] for c in containers
              if c.get("engine_id")}
    ids = sorted({cid for cid, _ in wanted})
    found: dict[int, int] = {}
    for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
        for cid, eid, read_ns in session.execute(
                select(CounterBaseline.container_id, CounterBaseline.engine_id,
                       CounterBaseline.read_ns).where(CounterBaseline.container_id.in_(chunk))):
            server_id = wanted.get((cid, eid))
            if server_id is not None:
                found[server_id] = min(found.get(server_id, read_ns), read_ns)
    return found
