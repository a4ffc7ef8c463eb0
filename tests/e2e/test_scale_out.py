"""Two processes of every service against one broker and one PostgreSQL: RPC load spreads
across replicas, and nothing that must happen once happens twice: traffic is counted once,
each mail is sent once, a dead host's containers move once, a rental expires once.

Every timer runs every second in both replicas, so each of those "once" guarantees is
exercised many times over during the test.
"""
from __future__ import annotations

import datetime as dt
import itertools
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.docker_support import BLOB_SIZE, TEST_IMAGE, remove_berth_containers
from tests.e2e.helpers import mails_to, settle
from tests.support import (SERVICES, DatabaseSet, free_port, poll, rmtree,
                           running_platform)

pytestmark = pytest.mark.e2e

SLACK = 64 * 1024  # HTTP headers and TCP handshakes on top of each downloaded file
_names = itertools.count(1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, amqp_uri, module_smtp, docker_client):
    folder = tmp_path_factory.mktemp("scale-out")
    databases = DatabaseSet("postgresql", folder)
    remove_berth_containers(docker_client)
    env = {"BERTH_HEALTH_INTERVAL": "1", "BERTH_TRAFFIC_INTERVAL": "1",
           "BERTH_EXPIRY_INTERVAL": "1", "BERTH_FAILOVER_AFTER": "2",
           "BERTH_MAIL_RETRY_INTERVAL": "1", "BERTH_ALERT_CHECK_INTERVAL": "3600"}
    try:
        with running_platform(folder, amqp_uri, smtp_port=module_smtp.port, extra_env=env,
                              database_template=databases.template) as platform:
            for name in SERVICES:
                platform.start_replica(name)
            poll(lambda: [key for key, url in platform.replica_metrics.items()
                          if not _answers(url)],
                 until=lambda silent: not silent, timeout=30,
                 what="every replica to start (last: the silent ones)")
            yield platform
    finally:
        remove_berth_containers(docker_client)
        databases.drop()
        rmtree(folder)


@pytest.fixture(scope="module")
def admin(stack):
    return stack.admin_token()


@pytest.fixture(scope="module")
def server_a(stack, admin, docker_url):
    return ok(stack, "POST", "/api/add_server", {"server_name": "alpha",
                                                 "ip_address": "127.0.0.1",
                                                 "docker_url": docker_url}, admin)["server_id"]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False



def ok(stack, method, path, body=None, token=None) -> dict:
    status, reply = stack.request(method, path, body, token=token)
    assert status == 200, (method, path, status, reply)
    return reply


def rpc_calls(url: str, service: str, entrypoint: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "berth_entrypoint_calls_total"
               and sample.labels.get("service") == service
               and sample.labels.get("entrypoint") == entrypoint)


def audit_count(stack, admin, action: str, subject_type: str, subject_id: int) -> int:
    reply = ok(stack, "GET", f"/api/logs/system?action={action}&subject_type={subject_type}"
                             f"&subject_id={subject_id}&limit=200", token=admin)
    return len(reply["logs"])


def test_rpc_load_spreads_across_replicas(stack, admin):
    user_id, token = stack.new_user(f"spread{next(_names)}")
    for _ in range(60):
        ok(stack, "GET", f"/api/security/user_acl_info/{user_id}", token=token)
    first = rpc_calls(stack.metrics_url("users"), "users", "user_acl_info")
    second = rpc_calls(stack.replica_metrics["users-2"], "users", "user_acl_info")
    assert first + second == 60
    assert first >= 10 and second >= 10, (first, second)


def test_each_mail_is_sent_once(stack, module_smtp):
    names = [f"mailee{next(_names)}" for _ in range(6)]
    for name in names:
        stack.new_user(name)
    poll(lambda: [n for n in names if not mails_to(module_smtp, f"{n}@example.com")],
         until=lambda waiting: not waiting, timeout=30,
         what="the verification mails (last: who had none)")
    settle(3)  # both alerts replicas retry every second: time to send a duplicate
    assert [len(mails_to(module_smtp, f"{n}@example.com")) for n in names] == [1] * 6


def test_traffic_is_counted_once(stack, admin, server_a):
    port = free_port()
    created = ok(stack, "POST", "/api/containers", {
        "container_name": "scaled-web", "image": TEST_IMAGE, "ports": {"80/tcp": port}},
        admin)
    poll(lambda: _download(port), timeout=30, what="the container to serve")  # one file
    for _ in range(2):
        assert _download(port)
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()

    def total_out():
        return ok(stack, "POST", "/api/traffic/stats", {"start_date": today,
                                                        "end_date": today}, admin)["total_out"]
    poll(total_out, until=lambda total: total >= 3 * BLOB_SIZE, timeout=30,
         what="the downloads to be metered")
    settle(4)  # four more ticks, each claimed by one of the two traffic replicas
    assert 3 * BLOB_SIZE <= total_out() < 3 * BLOB_SIZE + 3 * SLACK
    ok(stack, "DELETE", "/api/containers/scaled-web", token=admin)
    assert created["container_id"]


def _download(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/blob", timeout=5) as response:
            return len(response.read()) == BLOB_SIZE
    except OSError:
        return False


def test_a_dead_hosts_containers_move_once(stack, admin, server_a, second_engine,
                                           docker_client):
    if second_engine.pid is None:
        second_engine.restart()
    server_b = ok(stack, "POST", "/api/add_server", {
        "server_name": "bravo", "ip_address": "127.0.0.1", "docker_url": second_engine.url},
        admin)["server_id"]
    ids = [ok(stack, "POST", "/api/containers", {"container_name": f"mover{n}",
                                                 "image": TEST_IMAGE, "server_id": server_b},
              admin)["container_id"] for n in range(2)]
    second_engine.kill(whole_host=True)  # both containers replicas race to fail over

    def placement():
        rows = ok(stack, "GET", "/api/containers?limit=200", token=admin)["containers"]
        return [(r["server_id"], r["status"]) for r in rows if r["container_id"] in ids]
    poll(placement, until=lambda rows: all(row == (server_a, "running") for row in rows),
         timeout=45, what=f"automatic failover to server {server_a}")
    settle(3)
    on_a = docker_client.containers.list(all=True, filters={"label": "berth.managed"})
    assert sorted(c.name for c in on_a if c.name.startswith("mover")) == ["mover0", "mover1"]
    poll(lambda: [audit_count(stack, admin, "container_moved", "container", i) for i in ids],
         until=lambda counts: all(counts), timeout=30, what="the audit of the moves")
    assert [audit_count(stack, admin, "container_moved", "container", i) for i in ids] == [1, 1]
    second_engine.restart()  # the failed host returns: its stale copies go, nothing runs twice
    poll(lambda: second_engine.client().containers.list(
        all=True, filters={"label": "berth.managed"}), until=lambda stale: not stale,
        timeout=30, what="stale copies to be removed")
    for n in range(2):
        ok(stack, "DELETE", f"/api/containers/mover{n}", token=admin)


def test_a_rental_expires_once(stack, admin, module_smtp):
    name = f"expiring{next(_names)}"
    user_id, token = stack.new_user(name)
    today = dt.datetime.now(dt.timezone.utc).date()
    serial = ok(stack, "POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": (today + dt.timedelta(days=30)).isoformat()}, admin)
    rental = ok(stack, "POST", "/api/serial/redeem", {"serial_code": serial["serial_code"]},
                token)
    # the rental ended yesterday: the next expiry tick (both billing replicas, every second)
    # finds it
    ok(stack, "PUT", f"/api/rental/history/update/{rental['rental_id']}", {
        "start_date": (today - dt.timedelta(days=5)).isoformat(),
        "end_date": (today - dt.timedelta(days=1)).isoformat()}, admin)

    def expired_mails():
        return [m for m in mails_to(module_smtp, f"{name}@example.com")
                if "expired" in m["Subject"]]
    poll(expired_mails, timeout=30, what="the expiry mail", details=module_smtp.summary)
    settle(3)
    assert len(expired_mails()) == 1
    assert audit_count(stack, admin, "rental_expired", "rental", rental["rental_id"]) == 1
    history = ok(stack, "GET", f"/api/rental/history/{user_id}", token=admin)
    assert [r["status"] for r in history["rental_history"]] == ["expired"]
