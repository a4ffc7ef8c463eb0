"""Recording sweeps and reading them back, on SQLite and PostgreSQL, without a broker."""
from __future__ import annotations

import datetime as dt

import eventlet
import pytest
from sqlalchemy import func, select

from berth.errors import BadRequest
from berth.events import TrafficQuotaCleared, TrafficQuotaExceeded
from services.traffic import ledger, reports
from services.traffic.counters import NS, Reading
from services.traffic.models import (Base, CounterBaseline, DailyTraffic, HourlyTraffic,
                                     MonthlyTraffic, QuotaNotice, TrafficSample)
from services.traffic.sampling import EngineStarts

UTC = dt.timezone.utc
T = dt.datetime(2024, 5, 31, 23, 30, tzinfo=UTC)
NS0 = int(T.timestamp()) * NS
ALICE, BOB = 10, 11
TARGETS = {1: {"container_id": 1, "container_name": "a1", "user_id": ALICE, "server_id": 1},
           2: {"container_id": 2, "container_name": "a2", "user_id": ALICE, "server_id": 1},
           3: {"container_id": 3, "container_name": "b1", "user_id": BOB, "server_id": 2}}
FRESH = dt.timedelta(minutes=3)


@pytest.fixture
def sessions(databases):
    with databases.scratch_sessions("traffic", Base) as factory:
        yield factory


def r(container_id, rx, tx, minute, engine_id=None) -> Reading:
    return Reading(container_id, engine_id or f"copy{container_id}", rx, tx,
                   NS0 + minute * 60 * NS)


def sweep(sessions, minute, readings, starts=None, limits=None, quota=0, events=None,
          plans=None):
    with sessions() as session:
        quotas = ledger.Quotas(limits, plans or {}, quota) if limits is not None else None
        done = ledger.record_sweep(session, T + dt.timedelta(minutes=minute), readings,
                                   TARGETS, starts or {}, quotas)
        session.commit()
    if events is not None:
        events.extend(done.events)
    return done


def totals(sessions, model, **where):
    with sessions() as session:
        query = select(func.coalesce(func.sum(model.bytes_in), 0),
                       func.coalesce(func.sum(model.bytes_out), 0))
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return tuple(int(v) for v in session.execute(query).one())


def test_deltas_land_in_samples_and_every_rollup_alike(sessions):
    sweep(sessions, 0, [r(1, 100, 1000, 0), r(2, 0, 0, 0), r(3, 50, 70, 0)])
    sweep(sessions, 1, [r(1, 300, 1500, 1), r(2, 10, 20, 1), r(3, 50, 70, 1)])
    # minute 31 is past midnight: a new hour, day and month (2024-06)
    done = sweep(sessions, 31, [r(1, 1300, 2500, 31), r(3, 51, 72, 31)])
    assert (done.counted, done.bytes_in, done.bytes_out) == (2, 1001, 1002)
    assert totals(sessions, TrafficSample, user_id=ALICE) == (1310, 2520)
    assert totals(sessions, TrafficSample, user_id=BOB) == (51, 72)
    for model in (HourlyTraffic, DailyTraffic, MonthlyTraffic):
        assert totals(sessions, model, user_id=ALICE) == (1310, 2520), model
        assert totals(sessions, model, user_id=BOB) == (51, 72), model
    assert totals(sessions, MonthlyTraffic, month="2024-05") == (360, 1590)
    assert totals(sessions, MonthlyTraffic, month="2024-06") == (1001, 1002)
    assert totals(sessions, DailyTraffic, day=dt.date(2024, 6, 1)) == (1001, 1002)
    assert totals(sessions, HourlyTraffic, container_id=1,
                  hour=dt.datetime(2024, 5, 31, 23, tzinfo=UTC)) == (300, 1500)
    with sessions() as session:  # idle intervals move the baseline but store no sample
        assert session.scalar(select(func.count()).select_from(TrafficSample)) == 6
        assert session.scalar(select(CounterBaseline.read_ns).where(
            CounterBaseline.container_id == 3)) == NS0 + 31 * 60 * NS


def test_a_reading_already_counted_counts_nothing_again(sessions):
    sweep(sessions, 0, [r(1, 100, 1000, 0)])
    sweep(sessions, 1, [r(1, 200, 2000, 1)])
    done = sweep(sessions, 1, [r(1, 200, 2000, 1)])  # the same engine read, a second time
    assert (done.counted, done.skipped) == (0, 1)
    stale = sweep(sessions, 1, [r(1, 150, 1500, 0)])  # an older read arriving late
    assert stale.counted == 0
    assert totals(sessions, MonthlyTraffic) == (200, 2000)


def test_a_recreated_copy_starts_its_own_baseline(sessions):
    sweep(sessions, 0, [r(1, 5000, 9000, 0)])
    sweep(sessions, 1, [r(1, 100, 300, 1, engine_id="copy1-new")])
    sweep(sessions, 2, [r(1, 400, 800, 2, engine_id="copy1-new")])
    assert totals(sessions, MonthlyTraffic) == (5400, 9800)


def test_restarts_count_from_zero_whether_seen_by_events_or_by_counters(sessions):
    sweep(sessions, 0, [r(1, 1000, 1_000_000, 0), r(2, 1000, 1_000_000, 0)])
    # both restarted; afterwards each sent 3 MB, more than before the restart
    starts = {1: EngineStarts(NS0, NS0 + 60 * NS, {"copy1": [NS0 + 30 * NS]})}
    done = sweep(sessions, 1, [r(1, 500, 3_000_000, 1), r(2, 500, 3_000_000, 1)], starts)
    assert done.restarts == 2  # container 1 by its start event, 2 by its rx going down
    assert done.restarts_by_event == 0  # rx went down for both
    assert totals(sessions, TrafficSample, container_id=1) == (1500, 4_000_000)
    assert totals(sessions, TrafficSample, container_id=2) == (1500, 4_000_000)
    # events that do not reach back to the stored read prove nothing: counters decide
    late = {1: EngineStarts(NS0 + 70 * NS, NS0 + 120 * NS, {"copy1": [NS0 + 80 * NS]})}
    done = sweep(sessions, 2, [r(1, 600, 3_000_100, 2)], late)
    assert (done.restarts, done.bytes_in, done.bytes_out) == (0, 100, 100)


@pytest.mark.timeout(60)
def test_two_sweeps_racing_on_one_baseline_count_it_once(sessions, databases):
    sweep(sessions, 0, [r(1, 100, 100, 0)])
    first = sessions()
    done_first = ledger.record_sweep(first, T + dt.timedelta(minutes=1),
                                     [r(1, 600, 600, 1)], TARGETS, {}, None)
    # a second sweep reads the same baseline and waits for the first (PostgreSQL: on the
    # row lock, then its compare-and-set finds the baseline moved; SQLite: on the database)
    second = eventlet.spawn(sweep, sessions, 1, [Reading(1, "copy1", 700, 700,
                                                         NS0 + 61 * NS)])
    eventlet.sleep(0.5)
    first.commit()
    first.close()
    done_second = second.wait()
    with sessions() as session:
        stored = session.execute(select(CounterBaseline.rx_bytes,
                                        CounterBaseline.tx_bytes)).one()
    # what was counted is exactly what the stored counters say: nothing twice
    assert totals(sessions, MonthlyTraffic) == tuple(stored) == totals(sessions, TrafficSample)
    assert done_first.counted == 1
    if databases.backend == "postgresql":  # it had read the old baseline: compare-and-set lost
        assert (done_second.counted, done_second.skipped, stored[0]) == (0, 1, 600)
    else:  # it waited for the connection, then read 600 and counted its newer 700
        assert (done_second.counted, stored[0]) == (1, 700)


def test_passing_the_quota_notifies_once_and_the_month_s_end_clears_it(sessions):
    events = []
    limits = {str(ALICE): 5000}  # Bob: the default (3000)
    sweep(sessions, 0, [r(1, 1000, 1000, 0), r(3, 1000, 1000, 0)], limits=limits, quota=3000,
          events=events)
    assert events == []
    sweep(sessions, 1, [r(1, 1000, 4001, 1), r(3, 1000, 2001, 1)], limits=limits, quota=3000,
          events=events)
    assert sorted((e.user_id, e.month, e.used_bytes, e.limit_bytes) for e in events) == [
        (ALICE, "2024-05", 5001, 5000), (BOB, "2024-05", 3001, 3000)]
    sweep(sessions, 2, [r(1, 9000, 9000, 2), r(3, 9000, 9000, 2)], limits=limits, quota=3000,
          events=events)
    assert len(events) == 2
    sweep(sessions, 31, [r(3, 9000, 12_001, 31)], limits=limits, quota=3000, events=events)
    # June: both May notices close (new_month), then Bob passes June's quota on his own
    assert [(type(e), e.user_id, e.month) for e in events[2:]] == [
        (TrafficQuotaCleared, ALICE, "2024-05"), (TrafficQuotaCleared, BOB, "2024-05"),
        (TrafficQuotaExceeded, BOB, "2024-06")]
    assert {e.cause for e in events[2:4]} == {"new_month"}
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(QuotaNotice)) == 3
        assert ledger.open_notices(session) == {BOB}
    sweep(sessions, 32, [], limits=limits, quota=3000, events=events)
    assert len(events) == 5  # nothing changed: nothing more


def test_a_plan_quota_counts_unless_the_user_has_their_own_limit(sessions):
    events = []
    plans = {str(ALICE): 1000, str(BOB): 1000}
    sweep(sessions, 0, [r(1, 0, 0, 0), r(3, 0, 0, 0)], limits={str(BOB): 10**6},
          plans=plans, quota=10**9)
    sweep(sessions, 1, [r(1, 600, 600, 1), r(3, 600, 600, 1)], limits={str(BOB): 10**6},
          plans=plans, quota=10**9, events=events)
    assert [(e.user_id, e.limit_bytes) for e in events] == [(ALICE, 1000)]


def test_a_raised_limit_clears_the_notice_without_new_bytes_and_a_new_pass_opens_it(sessions):
    events = []
    sweep(sessions, 0, [r(1, 0, 0, 0)], limits={}, quota=1000)
    sweep(sessions, 1, [r(1, 600, 600, 1)], limits={}, quota=1000, events=events)
    assert [(type(e), e.used_bytes) for e in events] == [(TrafficQuotaExceeded, 1200)]
    sweep(sessions, 2, [], limits={}, quota=1000, events=events)
    assert len(events) == 1  # still over: the notice stays open, nothing new
    sweep(sessions, 3, [], limits={str(ALICE): 5000}, quota=1000, events=events)
    cleared = events[1]
    assert (type(cleared), cleared.cause, cleared.used_bytes, cleared.limit_bytes) == (
        TrafficQuotaCleared, "limit_raised", 1200, 5000)
    sweep(sessions, 4, [r(1, 3000, 3000, 4)], limits={str(ALICE): 5000}, quota=1000,
          events=events)
    assert [(type(e), e.used_bytes, e.limit_bytes) for e in events[2:]] == [
        (TrafficQuotaExceeded, 6000, 5000)]  # past the raised limit: open again, once
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(QuotaNotice)) == 1


def test_quotas_wait_for_limits_and_zero_default_means_none(sessions):
    events = []
    sweep(sessions, 0, [r(1, 10**9, 10**9, 0)], limits=None, quota=1, events=events)
    assert events == []  # users could not be asked: checked on a later sweep
    sweep(sessions, 1, [r(3, 10**9, 10**9, 1)], limits={}, quota=0, events=events)
    assert events == []  # no default quota, no override
    sweep(sessions, 2, [r(1, 10**9 + 1, 10**9, 2)], limits={str(ALICE): 0}, quota=0,
          events=events)
    assert [e.user_id for e in events] == [ALICE]


def test_history_reads_the_table_of_its_granularity(sessions):
    sweep(sessions, 0, [r(1, 100, 1000, 0), r(2, 1, 2, 0)])
    sweep(sessions, 1, [r(1, 200, 3000, 1), r(2, 2, 4, 1)])
    sweep(sessions, 40, [r(1, 300, 6000, 40)])
    now = T + dt.timedelta(hours=1)
    with sessions() as session:
        raw = reports.history(session, ALICE, reports.window("2024-05-31T23:00:00Z",
                                                             "2024-06-01T01:00:00Z", "raw", now))
        assert [(p["timestamp"], p["in"], p["out"]) for p in raw["traffic_history"]] == [
            ("2024-05-31T23:30:00Z", 101, 1002), ("2024-05-31T23:31:00Z", 101, 2002),
            ("2024-06-01T00:10:00Z", 100, 3000)]
        hourly = reports.history(session, ALICE, reports.window(
            "2024-05-31T23:45:00", "2024-06-01T00:00:00Z", "hour", now))
        assert [(p["timestamp"], p["in"], p["out"]) for p in hourly["traffic_history"]] == [
            ("2024-05-31T23:00:00Z", 202, 3004)]
        daily = reports.history(session, ALICE, reports.window("2024-05-01", "2024-06-30",
                                                               "day", now))
        assert [(p["timestamp"], p["in"], p["out"]) for p in daily["traffic_history"]] == [
            ("2024-05-31T00:00:00Z", 202, 3004), ("2024-06-01T00:00:00Z", 100, 3000)]
        assert (daily["total_in"], daily["total_out"]) == (302, 6004)
        assert reports.history(session, BOB, reports.window(None, None, None, now))[
            "traffic_history"] == []


def test_history_by_container_lines_up_with_the_totals(sessions, monkeypatch):
    sweep(sessions, 0, [r(1, 100, 1000, 0), r(2, 1, 2, 0)])
    sweep(sessions, 1, [r(1, 200, 3000, 1), r(2, 2, 4, 1), r(3, 7, 7, 1)])
    sweep(sessions, 40, [r(1, 300, 6000, 40)])
    now = T + dt.timedelta(hours=1)
    with sessions() as session:
        with pytest.raises(BadRequest):  # per sweep and per container: too many numbers
            reports.history(session, ALICE, reports.window(
                "2024-05-31T23:00:00Z", "2024-06-01T01:00:00Z", "raw", now), by_container=True)
        for granularity, start, end in (("hour", "2024-05-31T23:00:00Z", "2024-06-01T01:00:00Z"),
                                        ("day", "2024-05-01", "2024-06-30")):
            span = reports.window(start, end, granularity, now)
            plain = reports.history(session, ALICE, span)
            split = reports.history(session, ALICE, span, by_container=True)
            assert "containers" not in plain
            assert split["traffic_history"] == plain["traffic_history"]
            points = split["traffic_history"]
            rows = split["containers"]
            assert [c["container_id"] for c in rows] == [1, 2], granularity  # busiest first
            assert [c["container_name"] for c in rows] == ["a1", "a2"]
            for c in rows:
                assert len(c["bytes_in"]) == len(c["bytes_out"]) == len(points)
                assert (sum(c["bytes_in"]), sum(c["bytes_out"])) == (c["total_in"],
                                                                    c["total_out"])
            for k, point in enumerate(points):  # every point is the sum of its containers
                assert sum(c["bytes_in"][k] for c in rows) == point["in"], granularity
                assert sum(c["bytes_out"][k] for c in rows) == point["out"], granularity
            assert split["containers_truncated"] is False
        # a truncated history (the hour cap at 1 point): the containers over that point only
        monkeypatch.setitem(reports.GRANULARITIES, "hour",
                            (dt.timedelta(days=1), dt.timedelta(days=62), 1))
        cut = reports.history(session, ALICE, reports.window(
            "2024-05-31T23:00:00Z", "2024-06-01T01:00:00Z", "hour", now), by_container=True)
        assert cut["truncated"] and len(cut["traffic_history"]) == 1
        assert [(c["container_id"], c["bytes_in"], c["bytes_out"]) for c in cut["containers"]] \
            == [(1, [200], [3000]), (2, [2], [4])]  # not container 1's 00:10 sweep
        monkeypatch.setattr(reports, "MAX_SERIES", 1)
        split = reports.history(session, ALICE, reports.window(
            "2024-05-01", "2024-06-30", "day", now), by_container=True)
        assert [c["container_id"] for c in split["containers"]] == [1]
        assert split["containers_truncated"] is True
        bobs = reports.history(session, BOB, reports.window(None, None, None, now),
                               by_container=True)["containers"]
        assert [(c["container_id"], c["bytes_in"]) for c in bobs] == [(3, [7])]  # his only
        assert reports.history(session, 99, reports.window(None, None, None, now),
                               by_container=True)["containers"] == []


def test_history_windows_are_bounded():
    now = dt.datetime(2024, 6, 1, 12, tzinfo=UTC)
    w = reports.window(None, None, None, now)
    assert (w.granularity, w.end - w.start, w.end) == ("hour", dt.timedelta(days=1), now)
    assert reports.window("2024-05-01", "2024-05-01", "day", now).end == dt.datetime(
        2024, 5, 2, tzinfo=UTC)
    for start, end, granularity in (("2024-05-01", "2024-05-03", "raw"),
                                    ("2024-01-01", "2024-06-01", "hour"),
                                    ("2024-06-02", "2024-06-01", "day")):
        with pytest.raises(BadRequest):
            reports.window(start, end, granularity, now)


def test_stats_over_limit_usage_and_realtime_read_the_rollups(sessions):
    sweep(sessions, 0, [r(1, 100, 1000, 0), r(3, 10, 10, 0)])
    sweep(sessions, 1, [r(1, 160, 1300, 1), r(3, 10, 10, 1)])
    sweep(sessions, 31, [r(1, 260, 1400, 31)])
    with sessions() as session:
        may = reports.stats(session, dt.date(2024, 5, 1), dt.date(2024, 5, 31))
        assert (may["total_in"], may["total_out"]) == (170, 1310)
        assert [u["user_id"] for u in may["users"]] == [ALICE, BOB] and may["user_count"] == 2
        both = reports.stats(session, dt.date(2024, 5, 31), dt.date(2024, 6, 1))
        assert (both["total_in"], both["total_out"]) == (270, 1410)
        with pytest.raises(BadRequest):
            reports.stats(session, dt.date(2024, 6, 2), dt.date(2024, 6, 1))
        usage = reports.month_usage(session, "2024-05")
        assert usage == {ALICE: (160, 1300), BOB: (10, 10)}
        rows = reports.over_limit(usage, ledger.Quotas({str(BOB): 10**6}, {}, 1000), "2024-05")
        assert rows == [{"user_id": ALICE, "traffic_in": 160, "traffic_out": 1300,
                         "total": 1460, "limit": 1000, "month": "2024-05"}]
        now = T + dt.timedelta(minutes=31, seconds=10)
        use = reports.container_usage(session, 1, now, FRESH)
        assert use == {"container_id": 1, "user_id": ALICE, "month": "2024-06", "in": 100,
                       "out": 100, "total": 200, "rate_in": 0, "rate_out": 0}
        live = reports.realtime_all(session, now, FRESH)
        # container 1's latest window: 100 B in, 100 B out over 30 minutes; 3 is stale
        assert [c["container_id"] for c in live["containers"]] == [1]
        assert reports.realtime_one(session, 3, now, FRESH)["traffic"] == {"in": 0, "out": 0}
    sweep(sessions, 32, [r(1, 6260, 13400, 32), r(3, 10, 10, 32)])
    with sessions() as session:
        now = T + dt.timedelta(minutes=32, seconds=5)
        one = reports.realtime_one(session, 1, now, FRESH)
        assert one["traffic"] == {"in": 100, "out": 200} and one["window_seconds"] == 60
        live = reports.realtime_all(session, now, FRESH)
        assert live["traffic"] == {"in": 100, "out": 200}
        assert [(c["container_id"], c["user_id"], c["in"]) for c in live["containers"]] == [
            (1, ALICE, 100), (3, BOB, 0)]
        assert reports.realtime_all(session, now + FRESH, FRESH)["traffic"] == {"in": 0,
                                                                                "out": 0}


def test_retention_deletes_old_raw_samples_in_batches_and_keeps_rollups(sessions):
    for minute in range(12):
        sweep(sessions, minute, [r(1, 100 * (minute + 1), 0, minute)])
    removed = reports.prune(sessions, T + dt.timedelta(days=1, minutes=5), raw_days=1,
                            hourly_days=1, batch=4)
    assert removed["samples"] == 5  # minutes 0-4, in two batches
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(TrafficSample)) == 7
        assert session.scalar(select(func.count()).select_from(HourlyTraffic)) == 0
    assert totals(sessions, DailyTraffic) == (1200, 0) == totals(sessions, MonthlyTraffic)


def test_a_notice_of_a_user_the_quotas_were_not_asked_for_is_left_alone(sessions):
    """An overlapping sweep opened it after this one asked for quotas: judging it against the
    default would close it as if the limit were raised."""
    events = []
    sweep(sessions, 0, [r(1, 0, 0, 0)], limits={}, quota=1000)
    sweep(sessions, 1, [r(1, 600, 600, 1)], limits={}, quota=1000, events=events)
    assert len(events) == 1
    with sessions() as session:
        done = ledger.record_sweep(session, T + dt.timedelta(minutes=2), [], TARGETS, {},
                                   ledger.Quotas({}, {}, 10**9, frozenset({BOB})))
        session.commit()
        assert done.events == [] and ledger.open_notices(session) == {ALICE}
