"""Servers can be corrected (issue 13, items 2 and 5) on the real broker and engine: a server
that never answered is down since it was first seen down; an admin edits a typo away, puts a
server in maintenance, and deletes it (drain, which needs two engines, is in test_failover)."""
from __future__ import annotations


import pytest

from berth.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from services.containers.service import ContainersService
from services.containers.tests.support import outbox
from tests.docker_support import TEST_IMAGE

ADMIN = {"user_id": 1, "role": "admin", "username": "root"}


@pytest.fixture
def containers(make_service, clean_docker):
    return make_service(ContainersService, HEALTH_INTERVAL=3600)


def of_type(databases, kind: str) -> list[dict]:
    return [payload for k, payload in outbox(databases) if k == kind]


def listed(rpc, server_id: int) -> dict:
    return next(s for s in rpc.containers.servers()["servers"] if s["server_id"] == server_id)


def test_a_server_that_never_answered_is_down_since_it_was_added(rpc, containers, tmp_path):
    added = rpc.containers.add_server({"server_name": "never", "ip_address": "127.0.0.1",
                                       "docker_url": f"unix://{tmp_path}/none.sock"})
    assert added["status"] == "offline"
    row = listed(rpc, added["server_id"])
    assert row["down_since"] and row["down_since"] == row["last_checked_at"]
    assert row["added_at"].endswith("Z") and row["added_at"] <= row["down_since"]
    rpc.containers.run_supervision()  # still down: down since the first probe, not now
    assert listed(rpc, added["server_id"])["down_since"] == row["down_since"]
    (summary,) = rpc.containers.fleet_summary()["servers"]
    assert (summary["down_since"], summary["added_at"], summary["maintenance"]) == (
        row["down_since"], row["added_at"], False)
    health = rpc.containers.server_health(added["server_id"])
    assert health["down_since"] == row["down_since"] and health["status"] == "unhealthy"


def test_a_typo_in_add_server_is_corrected_by_editing(rpc, containers, docker_url, tmp_path,
                                                      databases, docker_client):
    typo = rpc.containers.add_server({"server_name": "lcoal", "ip_address": "127.0.0.1",
                                      "docker_url": f"unix://{tmp_path}/dokcer.sock"})
    rpc.containers.add_server({"server_name": "other", "ip_address": "127.0.0.2",
                                "docker_url": f"unix://{tmp_path}/other.sock"})
    server_id = typo["server_id"]
    before = listed(rpc, server_id)
    with pytest.raises(NotFound):
        rpc.containers.update_server(ADMIN, 999, {"server_name": "x"})
    for bad in ({}, {"docker_url": "http://example.com"}, {"server_name": None},
                {"ip_address": "300.1.1.1"}, {"tls_ca_cert": "PEM"},
                {"tls_client_cert": "PEM"}, {"status": "online"}):
        with pytest.raises(BadRequest):
            rpc.containers.update_server(ADMIN, server_id, bad)
    with pytest.raises(Conflict):
        rpc.containers.update_server(ADMIN, server_id, {"server_name": "other"})
    with pytest.raises(Conflict):  # one engine, one server row
        rpc.containers.update_server(ADMIN, server_id,
                                     {"docker_url": f"unix://{tmp_path}/other.sock"})
    assert listed(rpc, server_id) == before  # nothing changed by any of those
    assert of_type(databases, "server_updated") == []

    fixed = rpc.containers.update_server(ADMIN, server_id, {"server_name": "local",
                                                            "docker_url": docker_url})
    assert fixed["message"] == "Server updated successfully"
    assert fixed["changed"] == ["name", "docker_url"]
    assert (fixed["status"], fixed["down_since"], fixed["server_name"]) == (
        "online", None, "local")
    (event,) = of_type(databases, "server_updated")
    assert (event["changed"], event["server_name"], event["maintenance"],
            event["actor_id"]) == (["name", "docker_url"], "local", False, 1)
    assert len(of_type(databases, "server_came_back")) == 1  # its alert resolves
    again = rpc.containers.update_server(ADMIN, server_id, {"server_name": "local"})
    assert again["changed"] == [] and len(of_type(databases, "server_updated")) == 1
    created = rpc.containers.create_container(ADMIN, {"container_name": "works",
                                                      "image": TEST_IMAGE})
    assert created["server_id"] == server_id


TLS = {"tls_client_cert": "CERT", "tls_client_key": "KEY"}  # no engine answers: offline


def test_an_edited_address_moves_the_default_docker_url(rpc, containers, docker_url):
    # issue 15: the default is Docker's TLS port (it was 2375, plaintext, before)
    added = rpc.containers.add_server({"server_name": "guess", "ip_address": "127.0.0.1",
                                       **TLS})
    assert listed(rpc, added["server_id"])["docker_url"] == "tcp://127.0.0.1:2376"
    edited = rpc.containers.update_server(ADMIN, added["server_id"],
                                          {"ip_address": "127.0.0.3"})
    assert edited["changed"] == ["ip_address", "docker_url"]
    assert edited["docker_url"] == "tcp://127.0.0.3:2376" and edited["status"] == "offline"


def test_maintenance_keeps_new_containers_off_and_leaves_running_ones(
        rpc, containers, docker_url, databases, docker_client):
    server_id = rpc.containers.add_server({"server_name": "local", "ip_address": "127.0.0.1",
                                           "docker_url": docker_url})["server_id"]
    rpc.containers.create_container(ADMIN, {"container_name": "stays", "image": TEST_IMAGE})
    with pytest.raises(NotFound):
        rpc.containers.set_server_maintenance(ADMIN, 999, {"maintenance": True})
    with pytest.raises(BadRequest):
        rpc.containers.set_server_maintenance(ADMIN, server_id, {"maintenance": "perhaps"})
    on = rpc.containers.set_server_maintenance(ADMIN, server_id, {"maintenance": True})
    assert (on["maintenance"], on["changed"], on["status"]) == (True, ["maintenance"],
                                                                "online")
    assert rpc.containers.set_server_maintenance(ADMIN, server_id,
                                                 {"maintenance": True})["changed"] == []
    assert [e["maintenance"] for e in of_type(databases, "server_updated")] == [True]
    with pytest.raises(ServiceUnavailable):  # no server takes new containers
        rpc.containers.create_container(ADMIN, {"container_name": "new", "image": TEST_IMAGE})
    with pytest.raises(Conflict):
        rpc.containers.create_container(ADMIN, {"container_name": "new", "image": TEST_IMAGE,
                                                "server_id": server_id})
    health = rpc.containers.server_health(server_id)
    assert (health["status"], health["server_status"]) == ("maintenance", "online")
    # its containers run on and are still supervised; what dies there says maintenance
    (copy,) = docker_client.containers.list(all=True, filters={"label": "berth.managed"})
    copy.kill()
    rpc.containers.run_supervision()
    copy.reload()
    assert copy.status == "running"
    (died,) = of_type(databases, "container_died")
    assert died["maintenance"] is True
    (row,) = rpc.containers.fleet_summary()["containers"]["not_as_desired"]
    assert row["maintenance"] is True and row["container_name"] == "stays"
    off = rpc.containers.set_server_maintenance(ADMIN, server_id, {"maintenance": False})
    assert off["maintenance"] is False
    rpc.containers.create_container(ADMIN, {"container_name": "new", "image": TEST_IMAGE})


def test_add_server_status_maintenance_is_the_flag(rpc, containers, docker_url):
    added = rpc.containers.add_server({"server_name": "later", "ip_address": "127.0.0.1",
                                       "docker_url": docker_url, "status": "maintenance"})
    assert (added["status"], added["maintenance"]) == ("online", True)  # probed all the same
    assert rpc.containers.ha_health()["status"] == "unhealthy"  # nothing usable


def test_delete_takes_only_an_empty_server(rpc, containers, docker_url, databases, tmp_path):
    server_id = rpc.containers.add_server({"server_name": "local", "ip_address": "127.0.0.1",
                                           "docker_url": docker_url})["server_id"]
    rpc.containers.create_container(ADMIN, {"container_name": "held", "image": TEST_IMAGE})
    with pytest.raises(Conflict) as excinfo:
        rpc.containers.delete_server(ADMIN, server_id)
    assert "holds 1 container; drain it first" in str(excinfo.value)
    assert listed(rpc, server_id)["containers"] == 1
    rpc.containers.delete_container(ADMIN, "held")
    reply = rpc.containers.delete_server(ADMIN, server_id)
    assert reply == {"message": "Server deleted successfully", "server_id": server_id}
    with pytest.raises(NotFound):
        rpc.containers.server_status(server_id)
    with pytest.raises(NotFound):
        rpc.containers.delete_server(ADMIN, server_id)
    (removed,) = of_type(databases, "server_removed")
    assert (removed["server_id"], removed["server_name"], removed["actor_id"]) == (
        server_id, "local", 1)


def test_manual_failover_leaves_an_offline_server_in_maintenance_to_drain(
        rpc, containers, docker_url, tmp_path, docker_client):
    """An offline server in maintenance (as migration 0005 leaves a former ``status:
    maintenance`` server until its next probe) keeps its containers on a manual failover,
    and the reply says why."""
    server_id = rpc.containers.add_server({"server_name": "planned", "ip_address": "127.0.0.1",
                                           "docker_url": docker_url})["server_id"]
    rpc.containers.create_container(ADMIN, {"container_name": "kept", "image": TEST_IMAGE})
    rpc.containers.set_server_maintenance(ADMIN, server_id, {"maintenance": True})
    down = rpc.containers.update_server(ADMIN, server_id,
                                        {"docker_url": f"unix://{tmp_path}/gone.sock"})
    assert (down["status"], down["maintenance"]) == ("offline", True)
    reply = rpc.containers.failover()
    assert reply == {"actions": [], "message": (
        "Failover operation successful; servers in maintenance were left alone (drain them to "
        "move their containers): planned")}
    (row,) = rpc.containers.list_containers(ADMIN, {})["containers"]
    assert (row["container_name"], row["server_id"]) == ("kept", server_id)
