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

from berth.db import insert_once, utcnow
from berth.events import Event, TrafficQuotaCleared, TrafficQuotaExceeded
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


def _keyed(mapping: dict, user_id: int):
    """A user's entry of an RPC reply's map (JSON made its keys strings)."""
    return mapping.get(str(user_id), mapping.get(user_id))


@dataclass(frozen=True)
class Quotas:
    """Each user's monthly in+out quota in bytes, from three sources, first found wins: their
    own limit (users' ``traffic_limits``, set by an admin), their running rental's plan's quota
    (billing's ``plan_quotas``), the default (``BERTH_TRAFFIC_QUOTA_BYTES``; 0: none)."""
    overrides: dict
    plans: dict
    default: int
    asked: frozenset | None = None  # the users the maps were asked for (None: everyone)

    def knows(self, user_id: int) -> bool:
        return self.asked is None or user_id in self.asked

    def of(self, user_id: int) -> int | None:
        for source in (self.overrides, self.plans):
            quota = _keyed(source, user_id)
            if quota is not None:
                return int(quota)
        return self.default if self.default > 0 else None


def record_sweep(session, sampled_at: dt.datetime, readings: list[Reading],
                 targets: dict[int, dict], starts: dict[int, EngineStarts],
                 quotas: Quotas | None) -> Recorded:
    """Count ``readings`` taken at ``sampled_at``; the caller commits.

    ``targets``: container id -> its sampling_targets row (owner, name, server). ``starts``:
    server id -> the engine's start events. ``quotas``: the quotas of the owners and of the
    users with an open notice (``open_notices``), or None when users or billing could not be
    asked (quotas are then checked on a later sweep). The events it causes
    (``traffic_quota_exceeded`` / ``_cleared``) are in ``Recorded.events``, for the caller's
    outbox in the same transaction.
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

    if quotas is not None:
        done.events = notice_quotas(session, month, sorted(done.users), quotas)
    return done


def open_notices(session, user_id: int | None = None, month: str | None = None) -> set[int]:
    """Users whose quota notice is open: over their quota, in this month or an earlier one,
    and not yet cleared (optionally: only ``user_id``, only ``month``). Each sweep looks at
    them whether or not they moved bytes."""
    query = select(QuotaNotice.user_id).where(QuotaNotice.cleared_at.is_(None))
    if user_id is not None:
        query = query.where(QuotaNotice.user_id == user_id)
    if month is not None:
        query = query.where(QuotaNotice.month == month)
    return set(session.scalars(query))


def notice_quotas(session, month: str, user_ids: list[int], quotas: Quotas) -> list[Event]:
    """The edges of each user's quota state, as events (the notice rows decide, so each edge is
    sent once even across replicas):

    - over their quota in ``month`` with no open notice (``user_ids``: users who moved bytes
      in this sweep): a notice opens, ``traffic_quota_exceeded``;
    - an open notice of ``month`` whose user is within their quota now (an admin raised their
      limit, or their rental moved to a plan with a larger quota): it closes,
      ``traffic_quota_cleared`` (``limit_raised``);
    - an open notice of an earlier month: that month is over, ``traffic_quota_cleared``
      (``new_month``); traffic in the new month is judged on its own.
    """
    now = utcnow()
    events: list[Event] = []
    open_now: set[int] = set()
    for row in session.scalars(select(QuotaNotice).where(QuotaNotice.cleared_at.is_(None))
                               .order_by(QuotaNotice.month, QuotaNotice.user_id)).all():
        if row.month == month:
            open_now.add(row.user_id)
        elif _close(session, row.user_id, row.month, now):
            events.append(TrafficQuotaCleared.new(
                user_id=row.user_id, month=row.month, cause="new_month",
                used_bytes=row.used_bytes, limit_bytes=row.limit_bytes))
    candidates = sorted(set(user_ids) | open_now)
    used = dict(session.execute(
        select(MonthlyTraffic.user_id, MonthlyTraffic.bytes_in + MonthlyTraffic.bytes_out)
        .where(MonthlyTraffic.month == month, MonthlyTraffic.user_id.in_(candidates))).all()
    ) if candidates else {}
    for user_id in candidates:
        if not quotas.knows(user_id):
            continue  # noticed after the quotas were asked (an overlapping sweep): next sweep
        limit = quotas.of(user_id)
        total = int(used.get(user_id) or 0)
        over = limit is not None and total > limit
        if over and user_id not in open_now and _open(session, user_id, month, total, limit,
                                                      now):
            events.append(TrafficQuotaExceeded.new(user_id=user_id, month=month,
                                                   used_bytes=total, limit_bytes=limit))
        elif not over and user_id in open_now and _close(session, user_id, month, now):
            events.append(TrafficQuotaCleared.new(user_id=user_id, month=month,
                                                  cause="limit_raised", used_bytes=total,
                                                  limit_bytes=limit))
    return events


def _open(session, user_id: int, month: str, used: int, limit: int, now: dt.datetime) -> bool:
    """Open the user's notice for ``month``: a new row, or one a raised limit had closed."""
    if insert_once(session, QuotaNotice, user_id=user_id, month=month, used_bytes=used,
                   limit_bytes=limit, noticed_at=now):
        return True
    return session.execute(
        update(QuotaNotice).where(QuotaNotice.user_id == user_id, QuotaNotice.month == month,
                                  QuotaNotice.cleared_at.is_not(None))
        .values(cleared_at=None, used_bytes=used, limit_bytes=limit, noticed_at=now)
        .execution_options(synchronize_session=False)).rowcount == 1


def _close(session, user_id: int, month: str, now: dt.datetime) -> bool:
    return session.execute(
        update(QuotaNotice).where(QuotaNotice.user_id == user_id, QuotaNotice.month == month,
                                  QuotaNotice.cleared_at.is_(None))
        .values(cleared_at=now).execution_options(synchronize_session=False)).rowcount == 1


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
