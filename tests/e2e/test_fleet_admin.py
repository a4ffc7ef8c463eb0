"""Issue 13 through HTTP with every process real: a crash-looping container is one incident
(items 3), and an operator corrects servers (items 2 and 5): a typo in add_server is edited
away, a server holding containers is drained and then deleted."""
from __future__ import annotations

import json
import sqlite3

import pytest

from tests.docker_support import TEST_IMAGE, remove_berth_containers
from tests.support import poll, rmtree, running_platform

pytestmark = pytest.mark.e2e

STABLE_AFTER = 6  # seconds: the crash loop below is never up that long


@pytest.fixture(scope="module")
def stack(tmp_path_factory, amqp_uri, docker_client):
    """The platform with the e2e tests' 1 s health tick and a quick restart backoff."""
    remove_berth_containers(docker_client)
    folder = tmp_path_factory.mktemp("fleet-admin-platform")
    with running_platform(folder, amqp_uri, extra_env={
            "BERTH_HEALTH_INTERVAL": "1", "BERTH_CONTAINER_RESTART_BACKOFF": "1",
            "BERTH_CONTAINER_RESTART_BACKOFF_MAX": "2",
            "BERTH_CONTAINER_STABLE_AFTER": str(STABLE_AFTER)}) as platform:
        yield platform
    remove_berth_containers(docker_client)
    rmtree(folder)


@pytest.fixture(scope="module")
def admin(stack):
    return stack.admin_token()


@pytest.fixture
def local(stack, admin, docker_url) -> int:
    """The server on the local engine (the first test adds it with a typo and corrects it)."""
    servers = ok(stack, "GET", "/api/servers", token=admin)["servers"]
    found = [s["server_id"] for s in servers if s["server_name"] == "local"]
    if found:
        return found[0]
    return ok(stack, "POST", "/api/add_server", {"server_name": "local",
                                                 "ip_address": "127.0.0.1",
                                                 "docker_url": docker_url}, admin)["server_id"]


def ok(stack, method, path, body=None, token=None) -> dict:
    status, reply = stack.request(method, path, body, token=token)
    assert status == 200, (method, path, status, reply)
    return reply


def events(stack, kind: str) -> list[dict]:
    """What the containers service recorded in its outbox (every event it dispatched)."""
    with sqlite3.connect(stack.folder / "containers.sqlite3") as conn:
        rows = conn.execute("SELECT payload FROM event_outbox WHERE event_type = ? "
                            "ORDER BY id", (kind,)).fetchall()
    return [json.loads(payload) for (payload,) in rows]


def test_a_typo_in_add_server_is_corrected_with_put(stack, admin, docker_url, tmp_path):
    added = ok(stack, "POST", "/api/add_server", {
        "server_name": "local", "ip_address": "127.0.0.1",
        "docker_url": f"unix://{tmp_path}/dcoker.sock"}, admin)
    server_id = added["server_id"]
    assert added["status"] == "offline"
    row = ok(stack, "GET", f"/api/server/status/{server_id}", token=admin)
    assert row["status"] == "offline" and row["down_since"]  # down since first seen down
    for body in ({}, {"docker_url": "ftp://x"}, {"ip_address": "300.1.1.1"},
                 {"tls_client_cert": "PEM"}):
        status, reply = stack.request("PUT", f"/api/servers/{server_id}", body, token=admin)
        assert (status, reply["error"]) == (400, "Invalid server data"), body
    assert stack.request("PUT", "/api/servers/9999", {"server_name": "x"},
                         token=admin)[0] == 404
    fixed = ok(stack, "PUT", f"/api/servers/{server_id}", {"docker_url": docker_url}, admin)
    assert (fixed["changed"], fixed["status"], fixed["down_since"]) == (
        ["docker_url"], "online", None)
    assert ok(stack, "GET", "/api/ha/health", token=admin)["status"] == "healthy"
    user_id, user = stack.new_user("plainuser")
    assert stack.request("PUT", f"/api/servers/{server_id}", {"server_name": "mine"},
                         token=user)[0] == 403


def test_a_crash_loop_is_one_incident_until_it_stays_up(stack, admin, local, docker_client):
    created = ok(stack, "POST", "/api/containers", {
        "container_name": "looper", "image": TEST_IMAGE,
        "command": ["sh", "-c", "sleep 2; exit 3"]}, admin)
    (copy,) = docker_client.containers.list(all=True, filters={
        "label": f"berth.container_id={created['container_id']}"})
    starts = set()

    def starts_seen():
        copy.reload()
        starts.add(copy.attrs["State"]["StartedAt"])
        return sorted(starts)
    # the health tick restarts it each time it dies (1 s, then every 2 s)
    poll(starts_seen, until=lambda seen: len(seen) >= 5, timeout=60, what="5 starts")
    assert len(events(stack, "container_died")) == 1
    assert events(stack, "container_recovered") == []

    # fixed: recreated with a command that stays up; recovered once up STABLE_AFTER seconds
    ok(stack, "PUT", "/api/containers/looper", {"command": ["sh", "-c", "sleep 3600"]}, admin)
    poll(lambda: events(stack, "container_recovered"), timeout=STABLE_AFTER + 20,
         what="container_recovered")
    assert len(events(stack, "container_died")) == 1
    ok(stack, "DELETE", "/api/containers/looper", token=admin)


def test_a_server_holding_containers_is_drained_then_deleted(stack, admin, local,
                                                             second_engine):
    if second_engine.pid is None:
        second_engine.restart()
    remove_berth_containers(second_engine.client())
    bravo = ok(stack, "POST", "/api/add_server", {
        "server_name": "bravo", "ip_address": "127.0.0.1", "docker_url": second_engine.url},
        admin)["server_id"]
    ok(stack, "POST", "/api/containers", {"container_name": "lodger", "image": TEST_IMAGE,
                                          "server_id": bravo}, admin)
    status, reply = stack.request("DELETE", f"/api/servers/{bravo}", token=admin)
    assert status == 409 and "holds 1 container; drain it first" in reply["error"]

    drained = ok(stack, "POST", f"/api/servers/{bravo}/drain", token=admin)
    assert [(a["container_name"], a["action"], a["to_server_id"])
            for a in drained["actions"]] == [("lodger", "moved", local)]
    assert drained["maintenance"] is True
    assert second_engine.client().containers.list(all=True, filters={
        "label": "berth.managed"}) == []
    deleted = ok(stack, "DELETE", f"/api/servers/{bravo}", token=admin)
    assert deleted == {"message": "Server deleted successfully", "server_id": bravo}
    assert stack.request("GET", f"/api/server/status/{bravo}", token=admin)[0] == 404
    assert [e["server_id"] for e in events(stack, "server_removed")] == [bravo]
    ok(stack, "DELETE", "/api/containers/lodger", token=admin)
