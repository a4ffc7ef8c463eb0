"""The live event stream end to end, every process real (two gunicorn workers, a private
RabbitMQ node that the test restarts, the default Docker engine): streams opened with a plain
HTTP client (tests/e2e/sse.py) by an admin and two customers; a customer's rental, container
and traffic events reach their own stream and the admin's, never the other customer's; an
alert reaches the admin only; the streams stay open across a broker restart and come back by
themselves after a gateway restart; a revoked session's stream ends.

It uses the default engine: make test runs it in its "engine" shard, with one such test at
a time (tests/shards.py); by hand, not beside another run on the same engine."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.chaos.instances import PrivateRabbit
from tests.docker_support import TEST_IMAGE, remove_berth_containers
from tests.e2e.sse import LiveStream
from tests.support import poll, report, rmtree, running_platform

pytestmark = pytest.mark.e2e

PASSWORD = "live password 1"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rabbit():
    with PrivateRabbit() as node:
        yield node


@pytest.fixture(scope="module")
def platform(tmp_path_factory, rabbit, module_smtp):
    folder = tmp_path_factory.mktemp("live")
    with running_platform(folder, rabbit.uri, smtp_port=module_smtp.port, extra_env={
            "BERTH_HEALTH_INTERVAL": "1", "BERTH_TRAFFIC_INTERVAL": "2",
            "BERTH_ALERT_CHECK_INTERVAL": "3600", "BERTH_CONTAINER_RESTART_BACKOFF": "1",
            "BERTH_STREAM_RECHECK_SECONDS": "1", "BERTH_STREAM_HEARTBEAT_SECONDS": "2",
            "BERTH_STREAM_TRAFFIC_SECONDS": "1"}) as stack:
        yield stack
    rmtree(folder)


def ok(platform, method, path, body=None, token=None):
    status, reply = platform.request(method, path, body, token=token)
    assert status == 200, (method, path, status, reply)
    return reply


@pytest.fixture(scope="module")
def world(platform, docker_url, docker_client):
    """An engine, a plan with the test image, and two customers with serials to redeem."""
    remove_berth_containers(docker_client)
    admin = platform.admin_token()
    ok(platform, "POST", "/api/add_server", {"server_name": "live-local",
                                             "ip_address": "127.0.0.1",
                                             "docker_url": docker_url, "status": "online"},
       admin)
    image = ok(platform, "POST", "/api/images", {"reference": TEST_IMAGE, "display_name": "httpd",
                                                 "container_port": 80}, admin)["image"]
    plan = ok(platform, "POST", "/api/plans", {
        "name": "live-plan", "cpus": 0.5, "memory_mib": 64, "pids_limit": 64,
        "max_containers": 2, "max_ports": 1, "log_max_mib": 3,
        "image_ids": [image["image_id"]]}, admin)["plan"]
    end = (dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=10)).isoformat()
    people = {}
    for name in ("live-alice", "live-bob"):
        user_id, token = platform.new_user(name, PASSWORD)
        serial = ok(platform, "POST", "/api/serial/generate", {
            "type": "rental", "expiry_date": end, "plan_id": plan["plan_id"]},
            admin)["serial_code"]
        people[name] = {"id": user_id, "token": token, "serial": serial}
    yield {"admin": admin, **people}
    remove_berth_containers(docker_client)


@pytest.fixture(scope="module")
def streams(platform, world):
    opened = {who: LiveStream(platform.url, token, who).__enter__() for who, token in (
        ("admin", world["admin"]), ("alice", world["live-alice"]["token"]),
        ("bob", world["live-bob"]["token"]))}
    for stream in opened.values():
        stream.wait_for("hello")
    yield opened
    for stream in opened.values():
        stream.close()


def about(user_id: int):
    return lambda data: data.get("user_id") == user_id


def test_each_stream_gets_the_events_its_holder_may_see(platform, world, streams,
                                                        docker_client):
    alice, bob = world["live-alice"], world["live-bob"]
    assert streams["alice"].events("hello") == [{"user_id": alice["id"], "role": "user"}]
    assert streams["admin"].events("hello")[0]["role"] == "admin"

    # a rental starts: the customer's and the admin's streams, not the other customer's
    ok(platform, "POST", "/api/serial/redeem", {"serial_code": alice["serial"]}, alice["token"])
    for who in ("alice", "admin"):
        streams[who].wait_for("rental_started", about(alice["id"]))

    created = ok(platform, "POST", "/api/containers",
                 {"container_name": "live-box", "image": TEST_IMAGE}, alice["token"])
    box = created["container_id"]
    for who in ("alice", "admin"):
        data = streams[who].wait_for("container_created", lambda d: d["container_id"] == box)
        assert "request_id" not in data and "actor_id" not in data

    # a state change the customer asked for
    ok(platform, "POST", "/api/containers/live-box/stop", token=alice["token"])
    for who in ("alice", "admin"):
        data = streams[who].wait_for("container_stopped", lambda d: d["container_id"] == box)
        assert data["reason"] == "owner"
    ok(platform, "POST", "/api/containers/live-box/start", token=alice["token"])
    poll(lambda: platform.request("GET", "/api/containers", token=alice["token"])[1],
         until=lambda r: r["containers"][0]["status"] == "running", timeout=30,
         what="live-box to run again")

    # killed behind Berth's back: the customer sees it die; the alert is for the admin only
    [engine_copy] = docker_client.containers.list(filters={"name": "live-box"})
    engine_copy.kill()
    for who in ("alice", "admin"):
        streams[who].wait_for("container_died", lambda d: d["container_id"] == box, timeout=30)
    alert = streams["admin"].wait_for("alert_raised",
                                      lambda d: d["subject"] == {"type": "container", "id": box,
                                                                 "name": "live-box"},
                                      timeout=30)
    assert alert["condition"] == "container_down" and alert["status"] == "open"
    assert alert["user_id"] == alice["id"]

    # realtime traffic: the customer's stream carries their container's rate
    rates = streams["alice"].wait_for(
        "traffic", lambda d: any(r["container_id"] == box for r in d["containers"]), timeout=30)
    assert all(r["user_id"] == alice["id"] for r in rates["containers"])
    streams["admin"].wait_for(
        "traffic", lambda d: any(r["container_id"] == box for r in d["containers"]), timeout=30)

    # nothing of alice's reached bob, and no alert reached a customer
    for data in streams["bob"].events():
        assert data.get("user_id") in (None, bob["id"]), data
    for data in streams["bob"].events("traffic"):
        assert all(r["container_id"] != box for r in data["containers"]), data
    assert "alert_raised" not in streams["alice"].kinds()
    assert set(streams["bob"].kinds()) <= {"hello", "traffic"}
    poll(lambda: streams["bob"].heartbeats, until=lambda n: n >= 1, timeout=10,
         what="a heartbeat on bob's stream")  # open all along, though nothing was for him
    report(f"live: alice's stream saw {streams['alice'].kinds().count('traffic')} traffic "
           f"frames and {len(streams['alice'].kinds())} in all; bob's "
           f"{len(streams['bob'].kinds())} frames, {streams['bob'].heartbeats} heartbeats")


def test_the_streams_stay_open_across_a_broker_restart(platform, world, rabbit, streams):
    alice = world["live-alice"]
    before = {who: (s.connections, s.mark()) for who, s in streams.items()}
    stopped_at = time.monotonic()
    rabbit.stop()
    time.sleep(3)
    rabbit.start()
    platform.wait_healthy(60, interval=0.25)
    back = time.monotonic() - stopped_at
    # the gateway's consumer reconnected by itself and said events may have been missed
    for who, stream in streams.items():
        stream.wait_for("resync", since=before[who][1], timeout=30)
    # and new events flow on the very same connections
    ok(platform, "POST", "/api/containers/live-box/stop", token=alice["token"])
    for who in ("alice", "admin"):
        streams[who].wait_for("container_stopped", lambda d: d["container_name"] == "live-box",
                              since=before[who][1], timeout=30)
    assert {who: s.connections for who, s in streams.items()} == \
        {who: count for who, (count, _) in before.items()}
    report(f"live: broker down ~3 s, platform healthy {back:.1f} s after the stop; the three "
           f"streams stayed on their connections and got resync")


def restart_gateway(platform) -> tuple[float, float]:
    """Stop (SIGTERM) and start gunicorn again: (seconds the stop took, seconds from the stop
    to healthy again). With streams open the workers end them first (gateway.live.stop_all)
    rather than wait gunicorn's graceful_timeout (10 s) for them."""
    began = time.monotonic()
    platform.stop_service("gateway")
    stopped = time.monotonic() - began
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    platform._spawn("gateway", [gunicorn, "-c", "gateway/gunicorn.conf.py", "gateway.wsgi:app"])
    platform.wait_healthy(60, interval=0.25)
    return stopped, time.monotonic() - began


def test_the_streams_come_back_after_a_gateway_restart(platform, world, streams):
    bob = world["live-bob"]
    before = {who: (s.connections, s.mark()) for who, s in streams.items()}
    stopped, took = restart_gateway(platform)
    for who, stream in streams.items():
        stream.wait_for("hello", since=before[who][1], timeout=30)
        assert stream.connections == before[who][0] + 1
    # events flow on the new connections, still to the right streams only
    ok(platform, "POST", "/api/serial/redeem", {"serial_code": bob["serial"]}, bob["token"])
    for who in ("bob", "admin"):
        streams[who].wait_for("rental_started", about(bob["id"]), since=before[who][1])
    time.sleep(1)
    assert not any(e.get("user_id") == bob["id"] for e in streams["alice"].events())
    report(f"live: gateway restarted (the stop took {stopped:.1f} s, healthy again "
           f"{took:.1f} s after it began); every stream reconnected "
           f"by itself (statuses alice {streams['alice'].statuses})")


def test_a_revoked_sessions_stream_ends(platform, world, streams):
    token = platform.login("live-alice", PASSWORD)  # a second session of alice's
    with LiveStream(platform.url, token, "alice-2") as second:
        second.wait_for("hello")
        ok(platform, "POST", "/api/logout", token=token)
        logged_out = time.monotonic()
        ended = second.wait_for("session_ended", timeout=10)
        took = time.monotonic() - logged_out
        assert ended == {"error": "Session ended; sign in again"}
        assert second.finished.wait(10), "the stream did not end"
    # her other session's stream goes on
    mark = streams["alice"].mark()
    streams["alice"].wait_for("traffic", since=mark, timeout=30)
    assert "session_ended" not in streams["alice"].kinds()
    report(f"live: a logged-out session's stream ended {took:.1f} s after the logout "
           f"(BERTH_STREAM_RECHECK_SECONDS=1, BERTH_TOKEN_CHECK_SECONDS=2)")


def test_the_console_updates_live_and_draws_the_traffic_charts(platform, world, streams, rabbit,
                                                               tmp_path_factory):
    """In the browser (tests/e2e/browser_journeys.py ``console_live``): the operator stops and
    starts the customer's container; her page follows without a reload; the traffic page
    draws the live rates and the history, and the month's use moves."""
    from tests.e2e.test_browser import journey

    built = subprocess.run(["make", "--no-print-directory", "web"], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)  # web/dist, if stale
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]

    alice = world["live-alice"]
    ok(platform, "POST", "/api/containers", {"container_name": "live-web", "image": TEST_IMAGE},
       alice["token"])
    rows = poll(lambda: platform.request("GET", "/api/containers", token=alice["token"])[1],
                until=lambda r: {c["container_name"]: c["status"] for c in r["containers"]}
                .get("live-web") == "running", timeout=60, what="live-web to run")
    [web] = [c for c in rows["containers"] if c["container_name"] == "live-web"]
    [port] = web["ports"].values()  # Berth published the image's port 80
    shots = tmp_path_factory.mktemp("console-live-screenshots")
    sync = tmp_path_factory.mktemp("console-live-sync")
    restarted: dict = {}

    def restart_when_ready():
        try:
            poll(lambda: (sync / "ready").exists(), timeout=120, what="the journey's signal")
            restarted["stop"], restarted["seconds"] = restart_gateway(platform)
        finally:
            (sync / "restarted").write_text("1")
        try:
            poll(lambda: (sync / "broker").exists(), timeout=120, what="the journey's signal")
            began = time.monotonic()
            rabbit.stop()
            time.sleep(3)
            rabbit.start()
            platform.wait_healthy(60, interval=0.25)
            restarted["broker_seconds"] = time.monotonic() - began
        finally:
            (sync / "broker-back").write_text("1")

    helper = threading.Thread(target=restart_when_ready, daemon=True)
    helper.start()
    seen = journey(platform, "console_live", shots=str(shots), username="live-alice",
                   password=PASSWORD, container="live-web", admin_token=world["admin"],
                   port=port, sync=str(sync))
    helper.join(10)
    report(f"console live journey screenshots: {shots} (the container running, stopped by "
           f"the operator, the traffic page by hour and by day, at 390 px)")
    report(f"live: in the browser the operator's stop showed after {seen['stopped_after']} s, "
           f"the start after {seen['started_after']} s; {seen['list_requests']} container "
           f"list requests meanwhile; the month's use {seen['month_before']} -> "
           f"{seen['month_after']}")

    assert "stopped" in seen["stopped_row"].lower()
    assert seen["same_document"] and seen["same_document_end"]  # never reloaded
    assert seen["stopped_after"] < 10 and seen["started_after"] < 10
    assert seen["downloaded"] == 8 * 1024 * 1024
    assert seen["month_after"] != seen["month_before"]
    assert "live-web" in seen["live_rates"]
    assert seen["history_total"].startswith("Total:")
    assert seen["overflow_traffic_390"] <= 0
    assert seen["unlabelled"] == {}
    assert len(seen["screenshots"]) == 7
    # the gateway restarted under the page: it said so, came back by itself, and followed the
    # next change without a reload
    assert "seconds" in restarted
    assert seen["badge_while_down"] == "reconnecting"
    assert seen["stopped_after_restart"] < 10
    # (at most the stream's reconnection attempts or a request in flight when the gateway
    # went, and the console's lines for them; nothing else, and nothing after it was back)
    assert all("/api/" in p or p.startswith("console: Failed to load resource: net::ERR_")
               for p in seen["outage_problems"]), seen["outage_problems"]
    report(f"live: in the browser, after a gateway restart (stop {restarted['stop']:.1f} s, "
           f"healthy again after {restarted['seconds']:.1f} s) the "
           f"page was live again by itself and showed the next stop after "
           f"{seen['stopped_after_restart']} s; while it was away the browser logged "
           f"{len(seen['outage_problems'])} failed requests: "
           f"{[p.split('?')[0] + ' ' + p.rsplit(' ', 1)[-1] for p in seen['outage_problems']]}")
    # then the broker restarted under it (down ~3 s): the page stayed, and followed the next
    # change; while the services could not answer, at most API requests failed (503)
    assert "broker_seconds" in restarted
    assert seen["resync_refetches"] >= 1  # told to resync: the page refetched by itself
    assert seen["badge_after_broker"] == "live"  # the stream itself never broke
    assert seen["started_after_broker"] < 10
    assert all("status of 503" in p for p in seen["broker_problems"]), seen["broker_problems"]
    report(f"live: in the browser, after a broker restart (healthy again "
           f"{restarted['broker_seconds']:.1f} s after the stop) the page showed the next "
           f"start after {seen['started_after_broker']} s; meanwhile the browser logged "
           f"{len(seen['broker_problems'])} failed requests")
