"""berth.concurrency, and the traffic sweep that reads every container's counters through it:
every request in flight together, however many engines and containers there are."""
from __future__ import annotations

import time
from contextlib import contextmanager

import pytest
from docker.errors import NotFound as EngineNotFound

from berth.concurrency import Pool, run_all, sleep
from berth.docker.engines import EngineUnavailable
from services.traffic.sampling import Sampler

TICK = 0.2  # what one stats request takes here, as an engine's collection tick does


def test_a_pool_maps_in_item_order_and_keeps_to_its_size():
    running, most = 0, 0

    def slow_square(n):
        nonlocal running, most
        running += 1
        most = max(most, running)
        sleep(0.01 * (5 - n))  # the last items finish first
        running -= 1
        return n * n

    assert Pool(3).map(slow_square, range(5)) == [0, 1, 4, 9, 16]
    assert most == 3


def test_concurrent_maps_on_one_pool_share_its_size():
    running, most = 0, 0

    def slow(n):
        nonlocal running, most
        running += 1
        most = max(most, running)
        sleep(0.02)
        running -= 1
        return n

    pool = Pool(2)
    assert run_all([lambda: pool.map(slow, range(4)) for _ in range(3)]) == [[0, 1, 2, 3]] * 3
    assert most == 2


def test_run_all_runs_the_calls_together_and_raises_what_one_raised():
    started = time.monotonic()
    assert run_all([lambda: sleep(TICK) or 1, lambda: sleep(TICK) or 2]) == [1, 2]
    assert time.monotonic() - started < 1.5 * TICK

    def broken():
        raise ValueError("no")
    with pytest.raises(ValueError):
        run_all([lambda: 1, broken])


class FakeEngine:
    def __init__(self, server_id: int):
        self.server_id = server_id

    def stats(self, engine_id, stream, one_shot):
        sleep(TICK)
        if engine_id.startswith("gone"):
            raise EngineNotFound("removed")
        if engine_id.startswith("stopped"):
            return {"read": "2026-01-01T00:00:00Z"}
        if engine_id.startswith("down"):
            raise EngineUnavailable("Docker host is unreachable")
        return {"read": "2026-01-01T00:00:01.000000002Z",
                "networks": {"eth0": {"rx_bytes": self.server_id, "tx_bytes": 7}}}


class FakeEngines:
    timeout = 5

    @contextmanager
    def reach(self, endpoint):
        yield FakeEngine(endpoint.server_id)


def test_a_sweep_reads_every_container_of_every_engine_at_once():
    servers = [{"server_id": s, "server_name": f"s{s}", "docker_url": "unix:///x"}
               for s in (1, 2, 3)]
    containers = [{"container_id": 10 * s + n, "server_id": s, "engine_id": f"e{s}{n}"}
                  for s in (1, 2, 3) for n in range(10)]
    containers += [{"container_id": 91, "server_id": 1, "engine_id": "gone"},
                   {"container_id": 92, "server_id": 2, "engine_id": "stopped"},
                   {"container_id": 93, "server_id": 3, "engine_id": "down"},
                   {"container_id": 94, "server_id": 4, "engine_id": "e4"}]  # no such server
    started = time.monotonic()
    out = Sampler(FakeEngines()).read(servers, containers)
    assert time.monotonic() - started < 3 * TICK  # 33 requests of one tick each: one tick
    assert sorted(r.container_id for r in out.readings) == sorted(
        10 * s + n for s in (1, 2, 3) for n in range(10))
    assert {r.container_id: r.rx_bytes for r in out.readings}[25] == 2
    assert sorted(out.not_running) == [91, 92]
    assert list(out.failed) == [93] and "unreachable" in out.failed[93]
