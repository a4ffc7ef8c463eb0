"""Containers service on the real broker and a real Docker engine, on SQLite and PostgreSQL.

Every assertion about containers is checked in the engine's own view (docker SDK), not only
in Berth's answers.
"""
from __future__ import annotations

import json
import time
import urllib.request

import pytest
from sqlalchemy import create_engine, text

from berth.db import normalise_url
from berth.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable
from services.containers.service import ContainersService
from tests.docker_support import TEST_IMAGE, TEST_IMAGE_V2
from tests.support import free_port, poll

ADMIN = {"user_id": 1, "role": "admin", "username": "root"}
ALICE = {"user_id": 7, "role": "user", "username": "alice"}


@pytest.fixture
def containers(make_service, clean_docker):
    return make_service(ContainersService, HEALTH_INTERVAL=3600)


@pytest.fixture
def server(rpc, containers, docker_url):
    return rpc.containers.add_server({"server_name": "local", "ip_address": "127.0.0.1",
                                      "docker_url": docker_url})


def engine_copies(client, container_id=None) -> list:
    found = client.containers.list(all=True, filters={"label": "berth.managed"})
    if container_id is not None:
        found = [c for c in found if c.labels.get("berth.container_id") == str(container_id)]
    return found


def fetch(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.read()


def create(rpc, name, image=TEST_IMAGE, actor=ADMIN, **extra) -> dict:
    return rpc.containers.create_container(actor, {"container_name": name, "image": image,
                                                   **extra})


def outbox_types(databases) -> list[str]:
    engine = create_engine(normalise_url(databases.url("containers")))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT event_type FROM event_outbox ORDER BY id")).scalars()
        found = list(rows)
    engine.dispose()
    return found


def test_add_server_probes_the_engine(rpc, server, docker_url):
    assert server["message"] == "Server added successfully"
    assert server["status"] == "online"
    status = rpc.containers.server_status(server["server_id"])
    assert status["status"] == "online" and status["last_seen_at"].endswith("Z")
    with pytest.raises(Conflict):
        rpc.containers.add_server({"server_name": "local", "ip_address": "127.0.0.1",
                                   "docker_url": "unix:///tmp/other.sock"})
    with pytest.raises(Conflict):  # one engine, one server row
        rpc.containers.add_server({"server_name": "again", "ip_address": "127.0.0.1",
                                   "docker_url": docker_url})
    with pytest.raises(BadRequest):
        rpc.containers.add_server({"server_name": "bad", "ip_address": "not-an-ip"})
    with pytest.raises(NotFound):
        rpc.containers.server_status(999)


def test_unreachable_server_is_offline_and_health_degraded(rpc, server, tmp_path):
    dead = rpc.containers.add_server({"server_name": "dead", "ip_address": "127.0.0.1",
                                      "docker_url": f"unix://{tmp_path}/none.sock"})
    assert dead["status"] == "offline"
    health = rpc.containers.ha_health()
    assert health["status"] == "degraded"
    assert {s["server_name"]: s["status"] for s in health["servers"]} == {
        "local": "online", "dead": "offline"}
    one = rpc.containers.server_health(dead["server_id"])
    assert one["status"] == "unhealthy" and one["server_status"] == "offline"
    assert rpc.containers.server_health(server["server_id"])["status"] == "healthy"


def test_create_runs_a_real_container_serving_on_the_servers_address(rpc, server,
                                                                     docker_client):
    port = free_port()
    created = create(rpc, "web1", ports={"80/tcp": port}, environment={"GREETING": "hi"})
    assert created["message"] == "Container created successfully"
    assert created["server_id"] == server["server_id"]
    (copy,) = engine_copies(docker_client, created["container_id"])
    assert copy.status == "running" and copy.name == "web1"
    assert copy.labels["berth.server_id"] == str(server["server_id"])
    assert "GREETING=hi" in copy.attrs["Config"]["Env"]
    bindings = copy.attrs["HostConfig"]["PortBindings"]["80/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    assert len(fetch(port, "/blob")) == 1024 * 1024
    status = rpc.containers.container_status(ADMIN, "web1")
    assert status["status"] == "running" and status["container_id"] == created["container_id"]
    listed = rpc.containers.list_containers(ADMIN, {})
    assert [c["container_name"] for c in listed["containers"]] == ["web1"]


def test_taken_name_and_unknown_image_leave_nothing_behind(rpc, server, docker_client,
                                                           databases):
    create(rpc, "dup")
    with pytest.raises(Conflict):
        create(rpc, "dup")
    with pytest.raises(BadRequest) as excinfo:
        create(rpc, "ghost", image="berth-test/no-such-image:9")
    assert "not available" in json.dumps(excinfo.value.args)
    names = sorted(c.name for c in engine_copies(docker_client))
    assert names == ["dup"]
    assert [c["container_name"] for c in
            rpc.containers.list_containers(ADMIN, {})["containers"]] == ["dup"]
    assert outbox_types(databases).count("container_created") == 1


def test_a_port_in_use_is_a_conflict_and_nothing_is_left(rpc, server, docker_client):
    port = free_port()
    create(rpc, "first", ports={"80/tcp": port})
    with pytest.raises(Conflict):
        create(rpc, "second", ports={"80/tcp": port})
    assert sorted(c.name for c in engine_copies(docker_client)) == ["first"]


def test_a_foreign_container_is_never_touched(rpc, server, docker_client):
    foreign = docker_client.containers.run(TEST_IMAGE, name="not-berths", detach=True)
    try:
        with pytest.raises(Conflict):  # its name is taken on the engine
            create(rpc, "not-berths")
        rpc.containers.run_supervision()
        foreign.reload()
        assert foreign.status == "running"
    finally:
        foreign.remove(force=True)


def test_no_server_at_all_is_unavailable(rpc, containers):
    with pytest.raises(ServiceUnavailable):
        create(rpc, "nowhere")


def test_stop_and_owner_rules(rpc, server, docker_client):
    created = create(rpc, "alices", user_id=None)
    # an admin-owned container: alice may neither see nor stop it
    with pytest.raises(Forbidden):
        rpc.containers.container_status(ALICE, "alices")
    with pytest.raises(Forbidden):
        rpc.containers.stop_container(ALICE, "alices")
    assert rpc.containers.list_containers(ALICE, {})["containers"] == []
    with pytest.raises(NotFound):
        rpc.containers.stop_container(ADMIN, "nobody")
    stopped = rpc.containers.stop_container(ADMIN, "alices")
    assert stopped["message"] == "Container stopped successfully"
    (copy,) = engine_copies(docker_client, created["container_id"])
    assert copy.status == "exited"
    assert rpc.containers.container_status(ADMIN, "alices")["status"] == "stopped"
    rpc.containers.run_supervision()  # a stop that was asked for is not restarted
    copy.reload()
    assert copy.status == "exited"


def test_rename_in_place_and_recreate_on_an_image_change(rpc, server, docker_client):
    port = free_port()
    created = create(rpc, "app", ports={"80/tcp": port})
    (before,) = engine_copies(docker_client, created["container_id"])
    reply = rpc.containers.update_container("app", {"container_name": "app2"})
    assert reply == {"message": "Container updated successfully", "recreated": False,
                     "container_id": created["container_id"], "container_name": "app2"}
    # no change at all still names the container (and finds it: an unknown name is a 404)
    assert rpc.containers.update_container("app2", {"container_name": "app2"})[
        "container_id"] == created["container_id"]
    with pytest.raises(NotFound):
        rpc.containers.update_container("app", {"container_name": "app"})
    (renamed,) = engine_copies(docker_client, created["container_id"])
    assert renamed.id == before.id and renamed.name == "app2"
    with pytest.raises(BadRequest):  # unknown image: the running copy is untouched
        rpc.containers.update_container("app2", {"image": "berth-test/nope:1"})
    (same,) = engine_copies(docker_client, created["container_id"])
    assert same.id == before.id and same.status == "running" and same.name == "app2"
    reply = rpc.containers.update_container("app2", {"image": TEST_IMAGE_V2})
    assert reply["recreated"] is True
    (after,) = engine_copies(docker_client, created["container_id"])
    assert after.id != before.id and after.name == "app2" and after.status == "running"
    assert after.labels["berth.generation"] == "2"
    assert fetch(port, "/version").strip() == b"2"


def test_supervision_restarts_a_dead_container_and_removes_strays(quick_stable, rpc, server,
                                                                  docker_client, databases):
    created = create(rpc, "phoenix")
    (copy,) = engine_copies(docker_client, created["container_id"])
    copy.kill()
    labels = {"berth.container_id": "99999", "berth.server_id": str(server["server_id"]),
              "berth.generation": "1"}
    ours = copy.labels["berth.managed"]  # this installation's key
    assert len(ours) == 32
    stray = docker_client.containers.run(TEST_IMAGE, detach=True,
                                         labels={**labels, "berth.managed": ours})
    # another installation sharing the host: the same server id, but not ours to judge
    neighbour = docker_client.containers.run(TEST_IMAGE, detach=True,
                                             labels={**labels, "berth.managed": "another"})
    rpc.containers.run_supervision()
    copy.reload()
    assert copy.status == "running"
    assert {c.id for c in engine_copies(docker_client)} == {copy.id, neighbour.id}
    with pytest.raises(Exception):
        stray.reload()
    neighbour.reload()
    assert neighbour.status == "running"
    neighbour.remove(force=True)
    assert outbox_types(databases).count("container_recovered") == 0  # not stable yet

    def recovered():  # once it has stayed up BERTH_CONTAINER_STABLE_AFTER (1 s here)
        rpc.containers.run_supervision()
        return outbox_types(databases).count("container_recovered")
    assert poll(recovered, timeout=30, interval=0.25, what="container_recovered") == 1
    assert outbox_types(databases).count("container_died") == 1


@pytest.fixture
def quick_backoff(monkeypatch):
    from berth.settings import reload_settings
    monkeypatch.setenv("BERTH_CONTAINER_RESTART_BACKOFF", "1.5")
    reload_settings()
    yield
    monkeypatch.undo()
    reload_settings()


@pytest.fixture
def quick_stable(monkeypatch):
    from berth.settings import reload_settings
    monkeypatch.setenv("BERTH_CONTAINER_STABLE_AFTER", "1")
    reload_settings()
    yield
    monkeypatch.undo()
    reload_settings()


def test_a_crash_looping_container_is_restarted_on_a_backoff_and_reported_once(
        quick_backoff, rpc, server, docker_client, databases):
    created = create(rpc, "crashy", command=["sh", "-c", "exit 3"])
    (copy,) = engine_copies(docker_client, created["container_id"])

    def exited_since(previous):
        """The copy's start time once it has exited after a start other than ``previous``."""
        def state():
            copy.reload()
            return copy.attrs["State"]
        return poll(state, until=lambda s: s["Status"] == "exited" and s["StartedAt"] != previous,
                    timeout=10, interval=0.05, what="the copy exited again")["StartedAt"]

    first = exited_since(None)
    rpc.containers.run_supervision()  # it died: reported, and started again at once
    second = exited_since(first)
    rpc.containers.run_supervision()  # died again within the backoff: left alone
    copy.reload()
    assert copy.attrs["State"]["StartedAt"] == second
    info = rpc.containers.container_info(created["container_id"])
    assert info["status"] == "stopped"
    time.sleep(1.6)
    rpc.containers.run_supervision()  # the backoff has passed: started again
    third = exited_since(second)
    rpc.containers.run_supervision()  # now 3 s (1.5 s doubled) before the next start
    copy.reload()
    assert copy.attrs["State"]["StartedAt"] == third
    types = outbox_types(databases)
    assert types.count("container_died") == 1  # one incident, however many restarts
    assert types.count("container_recovered") == 0  # a restart that did not hold is not one


def test_disaster_recovery_and_replace(rpc, server, docker_client):
    created = create(rpc, "lost")
    (copy,) = engine_copies(docker_client, created["container_id"])
    copy.remove(force=True)
    rpc.containers.run_supervision()
    assert rpc.containers.container_info(created["container_id"])["status"] == "missing"
    reply = rpc.containers.disaster_recovery()
    assert reply["message"] == "Disaster recovery operation successful"
    assert [a["action"] for a in reply["actions"]] == ["recreated"]
    (recreated,) = engine_copies(docker_client, created["container_id"])
    assert recreated.status == "running" and recreated.name == "lost"
    assert rpc.containers.disaster_recovery()["actions"] == []  # nothing left to do
    replaced = rpc.containers.replace_container({"container_name": "lost"})
    assert replaced["message"] == "Docker container replaced successfully"
    (fresh,) = engine_copies(docker_client, created["container_id"])
    assert fresh.id != recreated.id and fresh.status == "running"
    with pytest.raises(NotFound):
        rpc.containers.replace_container({"container_id": 424242})


def test_delete_removes_the_copy(rpc, server, docker_client):
    created = create(rpc, "gone")
    reply = rpc.containers.delete_container(ADMIN, "gone")
    assert reply["engine_copy_removed"] is True
    assert engine_copies(docker_client, created["container_id"]) == []
    with pytest.raises(NotFound):
        rpc.containers.container_status(ADMIN, "gone")


def test_sampling_targets_name_each_copy_and_its_owner(rpc, server):
    created = create(rpc, "metered")
    targets = rpc.containers.sampling_targets()
    assert [s["server_id"] for s in targets["servers"]] == [server["server_id"]]
    (row,) = targets["containers"]
    assert row["container_id"] == created["container_id"] and row["user_id"] == 1
    assert len(row["engine_id"]) == 64 and row["server_id"] == server["server_id"]
