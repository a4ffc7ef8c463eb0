"""What the traffic routes answer: realtime rates, history, stats, quotas (no nameko here).

Each question reads the narrowest table that answers it: realtime the baselines (the latest
window of each copy), history the raw samples or the hourly or daily rollup for its
granularity, stats the daily rollup, quotas the monthly one.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, func, select

from berth.db import delete_in_batches, isoformat
from berth.errors import BadRequest
from services.traffic.counters import month_of
from services.traffic.ledger import Quotas
from services.traffic.models import (CounterBaseline, DailyTraffic, HourlyTraffic,
                                     MonthlyTraffic, Sweep, TrafficSample)

UTC = dt.timezone.utc

# per granularity: the default span, the longest span accepted, and the row cap
GRANULARITIES = {
    "raw": (dt.timedelta(hours=1), dt.timedelta(days=1), 5000),
    "hour": (dt.timedelta(days=1), dt.timedelta(days=62), 62 * 24),
    "day": (dt.timedelta(days=31), dt.timedelta(days=3 * 366), 3 * 366),
}


def _rate(value: float | None) -> int:
    return int(round(value or 0))


# --- realtime --------------------------------------------------------------------------------

def _fresh_copies(session, since: dt.datetime, container_id: int | None = None) -> dict:
    """container id -> its most recently read copy, among copies read at or after ``since``."""
    query = select(CounterBaseline).where(CounterBaseline.sampled_at >= since)
    if container_id is not None:
        query = query.where(CounterBaseline.container_id == container_id)
    latest: dict[int, CounterBaseline] = {}
    for row in session.scalars(query):
        held = latest.get(row.container_id)
        if held is None or row.sampled_at > held.sampled_at:
            latest[row.container_id] = row
    return latest


def _realtime_row(row: CounterBaseline) -> dict:
    return {"container_id": row.container_id, "container_name": row.container_name,
            "user_id": row.user_id, "server_id": row.server_id,
            "in": _rate(row.rate_in), "out": _rate(row.rate_out),
            "window_seconds": row.window_seconds, "sampled_at": isoformat(row.sampled_at)}


def realtime_all(session, now: dt.datetime, fresh_for: dt.timedelta) -> dict:
    """Every container read in the latest sweeps: its bytes/s in and out over its latest
    window, and the sums. A container not read for ``fresh_for`` counts as idle."""
    rows = sorted(_fresh_copies(session, now - fresh_for).values(),
                  key=lambda r: r.container_id)
    containers = [_realtime_row(r) for r in rows]
    last = session.scalar(select(func.max(Sweep.finished_at)))
    return {"traffic": {"in": sum(c["in"] for c in containers),
                        "out": sum(c["out"] for c in containers)},
            "containers": containers, "sampled_at": isoformat(last)}


def realtime_one(session, container_id: int, now: dt.datetime,
                 fresh_for: dt.timedelta) -> dict:
    row = _fresh_copies(session, now - fresh_for, container_id).get(container_id)
    if row is None:
        return {"container_id": container_id, "traffic": {"in": 0, "out": 0},
                "window_seconds": None, "sampled_at": None}
    data = _realtime_row(row)
    return {"container_id": container_id, "traffic": {"in": data["in"], "out": data["out"]},
            "window_seconds": row.window_seconds, "sampled_at": data["sampled_at"]}


# --- history ---------------------------------------------------------------------------------

def parse_moment(text: str, end: bool = False) -> dt.datetime:
    """A date (``YYYY-MM-DD``: its midnight, or the next midnight for an end) or an ISO-8601
    timestamp (UTC when it has no offset)."""
    text = text.strip()
    if len(text) == 10:
        day = dt.date.fromisoformat(text)
        moment = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
        return moment + dt.timedelta(days=1) if end else moment
    moment = dt.datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime  # exclusive
    granularity: str


def window(start: str | None, end: str | None, granularity: str | None,
           now: dt.datetime) -> Window:
    granularity = granularity or "hour"
    default_span, longest, _ = GRANULARITIES[granularity]
    stop = parse_moment(end, end=True) if end else now
    begin = parse_moment(start) if start else stop - default_span
    if begin >= stop:
        raise BadRequest("Invalid query", [{"field": "start",
                                            "message": "start must be before end"}])
    if stop - begin > longest:
        raise BadRequest("Invalid query", [{
            "field": "granularity",
            "message": f"at most {longest.days} day(s) of {granularity} history at once; "
                       f"narrow start/end or use a coarser granularity"}])
    return Window(begin, stop, granularity)


MAX_SERIES = 50  # containers in a per-container history: the busiest ones in the window


def history(session, user_id: int, span: Window, by_container: bool = False) -> dict:
    """A user's bytes per point: per sweep (raw), per hour or per day. Hour and day buckets
    are those starting in [start rounded down, end); points without traffic are left out.
    ``by_container`` (hour and day only): also each container's bytes at the same points
    (``containers``: the ``MAX_SERIES`` busiest over the points returned, busiest first, named
    as the sweeps last saw them; ``containers_truncated`` when there were more)."""
    if by_container and span.granularity == "raw":
        raise BadRequest("Invalid query", [{"field": "by_container", "message":
                                            "per container by hour or by day only"}])
    cap = GRANULARITIES[span.granularity][2]
    if span.granularity == "raw":
        t, moment = TrafficSample, TrafficSample.sampled_at
        where = (t.user_id == user_id, t.sampled_at >= span.start, t.sampled_at < span.end)
        stamp = isoformat
    elif span.granularity == "hour":
        t, moment = HourlyTraffic, HourlyTraffic.hour
        first = span.start.replace(minute=0, second=0, microsecond=0)
        where = (t.user_id == user_id, t.hour >= first, t.hour < span.end)
        stamp = isoformat
    else:
        t, moment = DailyTraffic, DailyTraffic.day
        last_day = (span.end - dt.timedelta(microseconds=1)).date()
        where = (t.user_id == user_id, t.day >= span.start.date(), t.day <= last_day)
        stamp = _day_stamp
    rows = session.execute(
        select(moment, func.sum(t.bytes_in), func.sum(t.bytes_out)).where(*where)
        .group_by(moment).order_by(moment).limit(cap + 1)).all()
    points = [{"timestamp": stamp(when), "in": int(i or 0), "out": int(o or 0)}
              for when, i, o in rows[:cap]]
    reply = {"user_id": user_id, "granularity": span.granularity,
             "start": isoformat(span.start), "end": isoformat(span.end),
             "traffic_history": points,
             "total_in": sum(p["in"] for p in points), "total_out": sum(p["out"] for p in points),
             "truncated": len(rows) > cap}
    if by_container:
        reply.update(_per_container(session, t, moment, where, [when for when, *_ in rows[:cap]]))
    return reply


def _per_container(session, t, moment, where: tuple, moments: list) -> dict:
    """Each of the busiest containers' bytes in and out at ``moments`` (the points of the
    user's history, so every list lines up with ``traffic_history``; 0 where a container moved
    nothing), from the same table and window."""
    if not moments:
        return {"containers": [], "containers_truncated": False}
    within = (*where, moment <= moments[-1])  # the points a truncated history kept
    busy = (func.sum(t.bytes_in) + func.sum(t.bytes_out)).label("busy")
    busiest = session.execute(
        select(t.container_id, func.sum(t.bytes_in), func.sum(t.bytes_out), busy)
        .where(*within).group_by(t.container_id).order_by(busy.desc(), t.container_id)
        .limit(MAX_SERIES + 1)).all()
    chosen = busiest[:MAX_SERIES]
    index = {when: i for i, when in enumerate(moments)}
    names = dict(session.execute(
        select(CounterBaseline.container_id, func.max(CounterBaseline.container_name))
        .where(CounterBaseline.container_id.in_([cid for cid, *_ in chosen]))
        .group_by(CounterBaseline.container_id)).all()) if chosen else {}
    series = {cid: {"container_id": cid, "container_name": names.get(cid),
                    "total_in": int(i or 0), "total_out": int(o or 0),
                    "bytes_in": [0] * len(moments), "bytes_out": [0] * len(moments)}
              for cid, i, o, _ in chosen}
    for when, cid, i, o in session.execute(
            select(moment, t.container_id, func.sum(t.bytes_in), func.sum(t.bytes_out))
            .where(*within, t.container_id.in_(list(series)))
            .group_by(moment, t.container_id)):
        at = index.get(when)
        if at is not None:
            series[cid]["bytes_in"][at] = int(i or 0)
            series[cid]["bytes_out"][at] = int(o or 0)
    return {"containers": [series[cid] for cid, *_ in chosen],
            "containers_truncated": len(busiest) > MAX_SERIES}


def _day_stamp(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


# --- stats and quotas ------------------------------------------------------------------------

def stats(session, start_date: dt.date, end_date: dt.date, top: int = 100) -> dict:
    """Bytes in and out over whole days [start_date, end_date] (UTC), from the daily rollup,
    with the ``top`` users by in+out."""
    if end_date < start_date:
        raise BadRequest("Invalid data", [{"field": "end_date",
                                           "message": "end_date is before start_date"}])
    t = DailyTraffic
    in_range = (t.day >= start_date, t.day <= end_date)
    total_in, total_out = session.execute(
        select(func.coalesce(func.sum(t.bytes_in), 0), func.coalesce(func.sum(t.bytes_out), 0))
        .where(*in_range)).one()
    total = (func.sum(t.bytes_in) + func.sum(t.bytes_out)).label("total")
    users = session.execute(
        select(t.user_id, func.sum(t.bytes_in), func.sum(t.bytes_out), total)
        .where(*in_range).group_by(t.user_id).order_by(total.desc(), t.user_id).limit(top)
    ).all()
    user_count = session.scalar(select(func.count(func.distinct(t.user_id))).where(*in_range))
    return {"start_date": start_date.isoformat(), "end_date": end_date.isoformat(),
            "total_in": int(total_in), "total_out": int(total_out),
            "users": [{"user_id": u, "traffic_in": int(i), "traffic_out": int(o),
                       "total": int(i) + int(o)} for u, i, o, _ in users],
            "user_count": int(user_count or 0)}


def month_usage(session, month: str) -> dict[int, tuple[int, int]]:
    """user id -> (bytes in, bytes out) this month."""
    return {u: (int(i), int(o)) for u, i, o in session.execute(
        select(MonthlyTraffic.user_id, MonthlyTraffic.bytes_in, MonthlyTraffic.bytes_out)
        .where(MonthlyTraffic.month == month))}


def user_month(session, user_id: int, month: str) -> dict:
    """One user's bytes in ``month`` (YYYY-MM, UTC)."""
    row = session.execute(select(MonthlyTraffic.bytes_in, MonthlyTraffic.bytes_out).where(
        MonthlyTraffic.month == month, MonthlyTraffic.user_id == user_id)).first()
    bytes_in, bytes_out = (int(row[0]), int(row[1])) if row else (0, 0)
    return {"user_id": user_id, "month": month, "bytes_in": bytes_in, "bytes_out": bytes_out,
            "used_bytes": bytes_in + bytes_out}


def users_at_least(session, month: str, threshold: int) -> list[dict]:
    """Users whose in+out in ``month`` is at least ``threshold`` bytes, most first."""
    total = MonthlyTraffic.bytes_in + MonthlyTraffic.bytes_out
    rows = session.execute(select(MonthlyTraffic.user_id, total)
                           .where(MonthlyTraffic.month == month, total >= threshold)
                           .order_by(total.desc(), MonthlyTraffic.user_id))
    return [{"user_id": u, "used_bytes": int(t), "month": month} for u, t in rows]


def over_limit(usage: dict[int, tuple[int, int]], quotas: Quotas, month: str) -> list[dict]:
    """Users whose month in+out exceeds their quota, most over first."""
    rows = []
    for user_id, (bytes_in, bytes_out) in usage.items():
        limit = quotas.of(user_id)
        total = bytes_in + bytes_out
        if limit is not None and total > limit:
            rows.append({"user_id": user_id, "traffic_in": bytes_in, "traffic_out": bytes_out,
                         "total": total, "limit": limit, "month": month})
    rows.sort(key=lambda r: (r["limit"] - r["total"], r["user_id"]))
    return rows


def container_usage(session, container_id: int, now: dt.datetime,
                    fresh_for: dt.timedelta) -> dict:
    """This month's bytes of one container (daily rollup) and its latest rates."""
    month = month_of(now)
    first = now.astimezone(UTC).date().replace(day=1)
    bytes_in, bytes_out = session.execute(
        select(func.coalesce(func.sum(DailyTraffic.bytes_in), 0),
               func.coalesce(func.sum(DailyTraffic.bytes_out), 0))
        .where(DailyTraffic.container_id == container_id, DailyTraffic.day >= first)).one()
    owner = session.scalar(
        select(DailyTraffic.user_id).where(DailyTraffic.container_id == container_id)
        .order_by(DailyTraffic.day.desc()).limit(1))
    copy = _fresh_copies(session, now - fresh_for, container_id).get(container_id)
    if owner is None:
        owner = session.scalar(select(CounterBaseline.user_id).where(
            CounterBaseline.container_id == container_id)
            .order_by(CounterBaseline.sampled_at.desc()).limit(1))
    return {"container_id": container_id, "user_id": owner, "month": month,
            "in": int(bytes_in), "out": int(bytes_out), "total": int(bytes_in + bytes_out),
            "rate_in": _rate(copy.rate_in) if copy else 0,
            "rate_out": _rate(copy.rate_out) if copy else 0}


# --- retention -------------------------------------------------------------------------------

def prune(session_factory, now: dt.datetime, raw_days: float, hourly_days: float,
          batch: int = 10000) -> dict:
    """Delete raw samples older than ``raw_days`` and hourly rows older than ``hourly_days``,
    ``batch`` rows per transaction (no long lock, no huge WAL burst); daily and monthly
    rollups are kept. Returns how many rows went."""
    removed = {"samples": 0, "hourly": 0, "sweeps": 0, "baselines": 0}
    raw_cutoff = now - dt.timedelta(days=raw_days)
    removed["samples"] = delete_in_batches(session_factory, TrafficSample,
                                           TrafficSample.sampled_at < raw_cutoff, batch)
    hourly_cutoff = now - dt.timedelta(days=hourly_days)
    with session_factory() as session:
        oldest = session.scalar(select(func.min(HourlyTraffic.hour)))
    while oldest is not None and oldest < hourly_cutoff:
        step = min(oldest + dt.timedelta(days=1), hourly_cutoff)
        with session_factory() as session:
            removed["hourly"] += session.execute(
                delete(HourlyTraffic).where(HourlyTraffic.hour < step)).rowcount
            session.commit()
        oldest = step
    with session_factory() as session:
        removed["sweeps"] = session.execute(
            delete(Sweep).where(Sweep.started_at < raw_cutoff)).rowcount
        # a copy unseen this long is gone (recreated copies get new engine ids)
        removed["baselines"] = session.execute(delete(CounterBaseline).where(
            CounterBaseline.sampled_at < now - dt.timedelta(days=max(raw_days, 90)))).rowcount
        session.commit()
    return removed
