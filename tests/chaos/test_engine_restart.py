"""A Docker engine dies (SIGKILL of its dockerd) and comes back: its container routes answer
a clear 503 at once while it is away, the health tick marks the server offline, and after the
restart everything works again with no manual step (the supervisor starts the containers the
engine stopped on its way back up).

The engine is the ``second_engine`` fixture (a real dockerd in its own network namespace);
automatic failover is off (BERTH_FAILOVER_AFTER=0) so the containers stay on it.
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from types import SimpleNamespace

import pytest

from tests.chaos.load import Outcome
from tests.chaos.outage import outage_of
from tests.docker_support import TEST_IMAGE
from tests.support import poll, rmtree, running_platform

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

DOWN = 6.0
NAMES = ("chaos-web-1", "chaos-web-2")


@pytest.fixture(scope="module")
def platform(tmp_path_factory, amqp_uri):
    folder = tmp_path_factory.mktemp("chaos-engine")
    env = {"BERTH_HEALTH_INTERVAL": "1", "BERTH_FAILOVER_AFTER": "0",
           "BERTH_ALERT_CHECK_INTERVAL": "3600"}
    with running_platform(folder, amqp_uri, extra_env=env) as stack:
        yield stack
    rmtree(folder)


def test_engine_killed_and_restarted(platform, second_engine, chaos_report):
    admin = platform.admin_token()
    if second_engine.pid is None:
        second_engine.restart()
    status, server = platform.request("POST", "/api/add_server", {
        "server_name": "chaos-host", "ip_address": "127.0.0.1",
        "docker_url": second_engine.url}, token=admin)
    assert status == 200 and server["status"] == "online", server
    server_id = server["server_id"]
    for name in NAMES:
        status, body = platform.request("POST", "/api/containers", {
            "container_name": name, "image": TEST_IMAGE, "server_id": server_id}, token=admin)
        assert status == 200 and body["status"] == "running", body

    outcomes: list[Outcome] = []
    watched = SimpleNamespace(phase="before")
    stop = threading.Event()

    def watch():  # container routes of the engine's containers, all the time
        while not stop.is_set():
            for name in NAMES:
                began, current = time.monotonic(), watched.phase
                status, _ = platform.request("GET", f"/api/containers/{name}/status",
                                             token=admin, timeout=30)
                outcomes.append(Outcome("status", "/api/containers/<name>/status", current,
                                        began, time.monotonic() - began, status))
            stop.wait(0.1)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    def running_again():
        poll(lambda: [platform.request("GET", f"/api/containers/{n}/status", token=admin)
                      for n in NAMES],
             until=lambda states: all(s == 200 and b["status"] == "running" for s, b in states),
             timeout=60, interval=0.25, what="both containers running again")
    try:
        time.sleep(2)
        killed_wall = dt.datetime.now(dt.timezone.utc)
        with outage_of("the second engine", stop=second_engine.kill,
                       start=second_engine.restart, down_for=DOWN, back=running_again,
                       load=watched, phase="down", restarting="recovery", settle=2) as engine:
            poll(lambda: platform.request("GET", f"/api/server/status/{server_id}",
                                          token=admin),
                 until=lambda answer: answer[1]["status"] == "offline", timeout=DOWN + 20,
                 interval=0.25, what=f"server {server_id} marked offline")
            offline = time.monotonic() - engine.down_at
            began = time.monotonic()
            stop_status, stop_body = platform.request(
                "POST", f"/api/containers/{NAMES[0]}/stop", token=admin, timeout=30)
            stop_latency = time.monotonic() - began
    finally:
        stop.set()
        watcher.join(40)
    killed_at, engine_seconds, recovered = engine.began, engine.start_seconds, engine.recovered

    engine_containers = second_engine.client().containers.list(
        filters={"label": "berth.managed"})
    down = [o for o in outcomes if o.phase == "down"]
    client = second_engine.client()
    started = {c.name: dt.datetime.fromisoformat(
        client.api.inspect_container(c.id)["State"]["StartedAt"][:26].rstrip("Z") + "+00:00")
        for c in engine_containers}
    client.close()
    counts = {p: {s: sum(1 for o in outcomes if o.phase == p and o.status == s)
                  for s in sorted({o.status for o in outcomes if o.phase == p})}
              for p in ("before", "down", "recovery", "after")}
    chaos_report(f"injected: SIGKILL of the second engine's dockerd (its containers keep "
                 f"running under their shims), down {DOWN:g} s, dockerd started again "
                 f"(answering after {engine_seconds:.1f} s; it stops the containers it finds)")
    chaos_report(f"observed GET /api/containers/<name>/status by phase, status: count: "
                 f"{counts}")
    chaos_report(f"max latency while the engine was away: "
                 f"{max(o.latency for o in down):.2f} s over {len(down)} requests")
    chaos_report(f"server marked offline by the health tick {offline:.1f} s after the kill")
    error = stop_body.get("error") if isinstance(stop_body, dict) else stop_body
    chaos_report(f"POST /api/containers/{NAMES[0]}/stop while away: {stop_status} in "
                 f"{stop_latency:.2f} s ({error})")
    chaos_report(f"both containers running again {recovered:.1f} s after dockerd was back (no "
                 f"manual step); started again since the kill: "
                 f"{sorted(n for n, t in started.items() if t > killed_wall)}")
    assert all(o.status in (200, 503) for o in outcomes), \
        [o for o in outcomes if o.status not in (200, 503)][:10]
    assert down and all(o.status == 503 for o in down if o.started > killed_at + 0.5)
    assert max(o.latency for o in down) < 2.0
    assert offline is not None
    assert stop_status == 503 and stop_latency < 2.0, stop_body
    assert recovered is not None and recovered < 30
    assert all(o.status == 200 for o in outcomes if o.phase == "after")
    assert sorted(c.name for c in engine_containers) == sorted(NAMES)
    assert all(t > killed_wall for t in started.values()), started  # really restarted
    for name in NAMES:  # and the routes work again: stop, status
        status, body = platform.request("POST", f"/api/containers/{name}/stop", token=admin)
        assert status == 200, body
        status, body = platform.request("GET", f"/api/containers/{name}/status", token=admin)
        assert status == 200 and body["status"] != "running", body
        status, body = platform.request("DELETE", f"/api/containers/{name}", token=admin)
        assert status == 200, body
