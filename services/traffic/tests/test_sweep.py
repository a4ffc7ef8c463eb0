"""One sweep (services.traffic.sweep) with fake peers and a fake sampler, on SQLite."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from berth.events import TrafficQuotaExceeded
from services.traffic import sweep
from services.traffic.counters import NS, Reading
from services.traffic.models import Base, MonthlyTraffic, Sweep
from services.traffic.sampling import SweepReadings

UTC = dt.timezone.utc
T = dt.datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
ALICE = 10
TARGETS = {"servers": [{"server_id": 1, "server_name": "s1", "docker_url": "unix:///x"}],
           "containers": [{"container_id": 1, "container_name": "a1", "user_id": ALICE,
                           "server_id": 1, "engine_id": "copy1"}]}


class FakePeers:
    def __init__(self, limits, plans=None):
        self.limits, self.asked_limits_for = limits, []
        self.plans = {} if plans is None else plans

    def sampling_targets(self) -> dict:
        return TARGETS

    def traffic_limits(self, user_ids):
        self.asked_limits_for.append(list(user_ids))
        return self.limits

    def plan_quotas(self, user_ids):
        return self.plans


class FakeSampler:
    """Each read returns the next counters for container 1, one minute apart."""

    def __init__(self, *counters):
        self.counters, self.reads = list(counters), 0

    def read(self, servers, containers, previous):
        rx = self.counters[self.reads]
        self.reads += 1
        read_ns = (int(T.timestamp()) + 60 * self.reads) * NS
        return SweepReadings(readings=[Reading(1, "copy1", rx, rx, read_ns)], seconds=0.01)


@pytest.fixture
def sessions():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def run(sessions, peers, sampler, tick, quota=0):
    with sessions() as session:
        session.add(Sweep(tick=tick, holder="test", started_at=T))
        session.commit()
    outbox = []
    result = sweep.sweep(sessions, peers, sampler, lambda s, e: outbox.append(e), tick, T, quota)
    return result, outbox


def test_a_sweep_counts_the_delta_and_finishes_its_row(sessions):
    sampler = FakeSampler(1000, 5000)
    first, _ = run(sessions, FakePeers({}), sampler, 1)
    second, outbox = run(sessions, FakePeers({}), sampler, 2)
    assert first["read"] == second["read"] == 1
    assert second["bytes_in"] == second["bytes_out"] == 4000 and outbox == []
    with sessions() as session:
        row = session.get(Sweep, 2)
        assert (row.containers, row.failed) == (1, 0) and row.finished_at is not None


def test_a_user_over_their_quota_gets_one_event_through_record(sessions):
    peers = FakePeers({str(ALICE): 3000})
    sampler = FakeSampler(0, 1000, 2000, 4000)
    run(sessions, peers, sampler, 1)
    _, outbox = run(sessions, peers, sampler, 2)
    assert outbox == []  # 1000 in + 1000 out: under 3000
    _, outbox = run(sessions, peers, sampler, 3)
    assert [type(e) for e in outbox] == [TrafficQuotaExceeded]  # 4000: over
    assert (outbox[0].user_id, outbox[0].used_bytes, outbox[0].limit_bytes) == (ALICE, 4000, 3000)
    _, outbox = run(sessions, peers, sampler, 4)
    assert outbox == []  # once a month
    assert peers.asked_limits_for[-1] == [ALICE]


def test_no_limits_from_users_counts_bytes_and_raises_no_quota_event(sessions):
    sampler = FakeSampler(0, 10**9)
    run(sessions, FakePeers(None), sampler, 1)
    _, outbox = run(sessions, FakePeers(None), sampler, 2, quota=1)
    assert outbox == []
    with sessions() as session:
        assert session.scalar(select(MonthlyTraffic.bytes_in)) == 10**9
