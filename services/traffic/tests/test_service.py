"""Traffic service on the real broker, real engines and real downloads, on SQLite and
PostgreSQL: bytes fetched from a container's published port on 127.0.0.1 come back from
realtime, history, stats, usage and over-limit; a restart behind Berth's back loses nothing
that was read and counts nothing twice; two replicas sweep each tick once."""
from __future__ import annotations

import datetime as dt
import time
import urllib.error
import urllib.request

import pytest
from sqlalchemy import create_engine, func, select, text

from berth.db import normalise_url
from berth.errors import BadRequest, Forbidden, NotFound
from services.billing.service import BillingService
from services.containers.service import ContainersService
from services.traffic.models import Sweep, TrafficSample
from services.traffic.service import TrafficService
from services.users.service import UsersService
from tests.docker_support import BLOB_SIZE, TEST_IMAGE
from tests.fixtures import service_config
from tests.support import free_port, poll

ADMIN = {"user_id": 1, "role": "admin", "username": "root"}
STRANGER = {"user_id": 99, "role": "user", "username": "mallory"}
QUOTA = BLOB_SIZE + BLOB_SIZE // 2
SLACK = 64 * 1024  # HTTP headers, TCP handshakes: a download moves a little more than the file


@pytest.fixture
def platform(make_service, clean_docker):
    make_service(UsersService)
    make_service(BillingService)  # plan quotas
    make_service(ContainersService, HEALTH_INTERVAL=3600)
    return make_service(TrafficService, TRAFFIC_INTERVAL=3600, TRAFFIC_QUOTA_BYTES=QUOTA)


@pytest.fixture
def web(rpc, platform, docker_url):
    """A running Berth container of user 1 serving the 1 MiB blob on 127.0.0.1."""
    rpc.containers.add_server({"server_name": "local", "ip_address": "127.0.0.1",
                               "docker_url": docker_url})
    port = free_port()
    created = rpc.containers.create_container(ADMIN, {
        "container_name": f"traffic-web-{port}", "image": TEST_IMAGE,
        "ports": {"80/tcp": port}})
    return {"id": created["container_id"], "port": port}


def download(port: int, times: int = 1) -> int:
    got = 0
    for _ in range(times):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/blob", timeout=10) as response:
            got += len(response.read())
    return got


def answers(port: int) -> None:
    """Return once httpd answers on ``port`` (a 404 for a file it lacks: a few hundred bytes;
    busybox httpd sends the body even for a HEAD); raise OSError while nothing does."""
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/not-there", timeout=5).close()
    except urllib.error.HTTPError:
        pass


def sql(databases, query: str) -> list:
    engine = create_engine(normalise_url(databases.url("traffic")))
    with engine.connect() as conn:
        rows = conn.execute(text(query)).all()
    engine.dispose()
    return rows


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def test_downloads_show_up_everywhere_and_the_quota_event_goes_out_once(rpc, web, databases):
    first = rpc.traffic.sweep_now()
    assert first["containers"] == first["read"] == first["counted"] == 1
    assert download(web["port"], 2) == 2 * BLOB_SIZE
    sweep = rpc.traffic.sweep_now()
    assert 2 * BLOB_SIZE <= sweep["bytes_out"] < 2 * BLOB_SIZE + SLACK
    assert 0 < sweep["bytes_in"] < SLACK and sweep["quota_events"] == 1

    live = rpc.traffic.realtime()
    (row,) = live["containers"]
    assert row["container_id"] == web["id"] and row["user_id"] == 1
    assert row["out"] > 0 and live["traffic"]["out"] == row["out"]
    assert row["out"] == pytest.approx(sweep["bytes_out"] / row["window_seconds"], abs=1)
    one = rpc.traffic.container_realtime(ADMIN, web["id"])
    assert one["traffic"] == {"in": row["in"], "out": row["out"]}
    with pytest.raises(Forbidden):
        rpc.traffic.container_realtime(STRANGER, web["id"])
    with pytest.raises(NotFound):
        rpc.traffic.container_realtime(ADMIN, 987654)

    total_out = first["bytes_out"] + sweep["bytes_out"]
    for granularity in ("raw", "hour", "day"):
        history = rpc.traffic.history(ADMIN, 1, {"granularity": granularity,
                                                 "start": today(), "end": today()})
        assert history["total_out"] == total_out, granularity
    stats = rpc.traffic.stats({"start_date": today(), "end_date": today()})
    assert stats["total_out"] == total_out and stats["users"][0]["user_id"] == 1
    usage = rpc.traffic.container_usage(web["id"])
    assert usage["out"] == total_out and usage["user_id"] == 1
    assert usage["total"] == usage["in"] + usage["out"] and usage["rate_out"] == row["out"]

    over = rpc.traffic.overlimit()
    assert [(r["user_id"], r["traffic_out"], r["limit"]) for r in over["overlimit_users"]] == [
        (1, total_out, QUOTA)]
    alerts_view = rpc.traffic.overlimit_users()["overlimit_users"]
    assert alerts_view == [{"user_id": 1, "used_bytes": usage["total"], "limit_bytes": QUOTA,
                            "month": usage["month"]}]
    # a month that is not this one (POST /api/alerts/traffic {"month"} asks for it)
    engine = create_engine(normalise_url(databases.url("traffic")))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO traffic_monthly (month, user_id, bytes_in, bytes_out) "
                          "VALUES ('2024-05', 1, 1, :out)"), {"out": QUOTA})
    engine.dispose()
    assert rpc.traffic.overlimit_users("2024-05") == {"month": "2024-05", "overlimit_users": [
        {"user_id": 1, "used_bytes": QUOTA + 1, "limit_bytes": QUOTA, "month": "2024-05"}]}
    assert rpc.traffic.overlimit_users("2024-04") == {"month": "2024-04",
                                                       "overlimit_users": []}
    with pytest.raises(BadRequest):
        rpc.traffic.overlimit_users("2024-13")

    download(web["port"])
    assert rpc.traffic.sweep_now()["quota_events"] == 0  # once per user and month
    events = sql(databases, "SELECT payload FROM event_outbox "
                            "WHERE event_type = 'traffic_quota_exceeded'")
    assert len(events) == 1 and '"limit_bytes":%d' % QUOTA in events[0][0].replace(" ", "")


def test_a_restart_behind_berths_back_keeps_the_total_growing_without_double_counting(
        rpc, web, docker_client):
    rpc.traffic.sweep_now()
    download(web["port"])
    before = rpc.traffic.sweep_now()
    assert before["bytes_out"] >= BLOB_SIZE
    copy = docker_client.containers.list(filters={"label": f"berth.container_id={web['id']}"})[0]
    copy.restart(timeout=1)
    # once the restarted httpd answers (a missing file: the tries that fail while it starts
    # move next to nothing, where a retried download could move part of the file, beyond
    # SLACK), 3 files: more than before the restart (no counter dropped)
    poll(lambda: answers(web["port"]), until=None, retry_on=OSError, timeout=10,
         interval=0.2, what="the restarted httpd to answer")
    assert download(web["port"], 3) == 3 * BLOB_SIZE
    after = rpc.traffic.sweep_now()
    assert after["restarts"] == after["restarts_by_event"] == 1  # told by the start event
    assert 3 * BLOB_SIZE <= after["bytes_out"] < 3 * BLOB_SIZE + SLACK
    assert rpc.traffic.sweep_now()["bytes_out"] < SLACK  # nothing counted twice
    usage = rpc.traffic.container_usage(web["id"])
    assert 4 * BLOB_SIZE <= usage["out"] < 4 * BLOB_SIZE + 4 * SLACK


def test_two_replicas_sweep_each_tick_once(rpc, web, databases, container_factory, amqp_uri):
    replicas = []
    for _ in range(2):  # two more instances on the same database, with a 1 s timer
        replica = container_factory(TrafficService, service_config(
            amqp_uri, databases.url("traffic"), TRAFFIC_INTERVAL=1))
        replica.start()
        replicas.append(next(d for d in replica.dependencies if d.attr_name == "sampler"))
    downloaded = 0
    deadline = time.monotonic() + 7
    while time.monotonic() < deadline:
        downloaded += download(web["port"])
        time.sleep(0.5)
    time.sleep(2.5)  # the sweeps in flight end, and one more reads the last bytes
    engine = create_engine(normalise_url(databases.url("traffic")))
    with engine.connect() as conn:
        sweeps = conn.execute(select(Sweep.tick, Sweep.holder, Sweep.recorded, Sweep.skipped,
                                     Sweep.started_at, Sweep.finished_at)
                              .where(Sweep.tick > 0, Sweep.finished_at.is_not(None))).all()
        samples = conn.execute(select(TrafficSample.sampled_at, TrafficSample.bytes_out)
                               .where(TrafficSample.container_id == web["id"])).all()
        out = conn.scalar(select(func.sum(TrafficSample.bytes_out)))
    engine.dispose()
    assert len(sweeps) >= 4
    # both timers fired on the same ticks; the loser of each left it to the winner
    assert sum(r.sampler.ticks_lost for r in replicas) >= 3
    # nobody read what another had read: a sweep alone in its time skipped nothing. Sweeps
    # of consecutive ticks that ran at the same time (one outlasting the 1 s tick on a loaded
    # machine) may read the same engine stats, or the same stored baseline; the later one
    # then skips what the other counted, which the byte count below proves was counted once
    # (finished_at is taken just before the commit: a margin covers the commit itself)
    margin = dt.timedelta(seconds=0.2)
    alone = [s for s in sweeps if not any(
        o.tick != s.tick and o.started_at < s.finished_at + margin
        and s.started_at < o.finished_at + margin for o in sweeps)]
    assert alone and all(s.skipped == 0 for s in alone), sweeps
    assert len({s.sampled_at for s in samples}) == len(samples)  # one sample per sweep
    assert downloaded <= out < downloaded + SLACK * len(samples) + SLACK
