"""Failover and load balance across two real engines; the second runs in its own network
namespace and is killed (SIGKILL of its dockerd) as a real host failure."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from berth.errors import Conflict
from berth.db import normalise_url
from services.containers.service import ContainersService
from tests.docker_support import TEST_IMAGE, remove_berth_containers
from services.containers.tests.support import assert_confined
from tests.support import free_port, poll

ADMIN = {"user_id": 1, "role": "admin", "username": "root"}


@pytest.fixture
def engine_b(second_engine):
    if second_engine.pid is None:
        second_engine.restart()
    client = second_engine.client()
    remove_berth_containers(client)
    yield second_engine
    if second_engine.pid is None:
        second_engine.restart()
    remove_berth_containers(second_engine.client())


def start_fleet(rpc, make_service, docker_url, engine_b, **config):
    make_service(ContainersService, **config)
    a = rpc.containers.add_server({"server_name": "alpha", "ip_address": "127.0.0.1",
                                   "docker_url": docker_url})["server_id"]
    b = rpc.containers.add_server({"server_name": "bravo", "ip_address": "127.0.0.1",
                                   "docker_url": engine_b.url})["server_id"]
    return a, b


def copies(client) -> dict[str, str]:
    """name → engine status of every Berth copy on an engine."""
    return {c.name: c.status for c in
            client.containers.list(all=True, filters={"label": "berth.managed"})}


def outbox_types(databases) -> list[str]:
    engine = create_engine(normalise_url(databases.url("containers")))
    with engine.connect() as conn:
        found = list(conn.execute(text("SELECT event_type FROM event_outbox")).scalars())
    engine.dispose()
    return found


def test_failover_moves_containers_and_the_returning_host_runs_nothing_twice(
        rpc, make_service, clean_docker, docker_url, engine_b, databases):
    a, b = start_fleet(rpc, make_service, docker_url, engine_b, HEALTH_INTERVAL=3600)
    for name in ("web", "idle"):
        rpc.containers.create_container(ADMIN, {"container_name": name, "image": TEST_IMAGE,
                                                "server_id": b,
                                                "ports": {"80/tcp": free_port()}})
    rpc.containers.stop_container(ADMIN, "idle")
    assert copies(engine_b.client()) == {"web": "running", "idle": "exited"}

    engine_b.kill()
    rpc.containers.run_supervision()
    assert rpc.containers.server_status(b)["status"] == "offline"
    assert outbox_types(databases).count("server_went_down") == 1
    reply = rpc.containers.failover()
    assert reply["message"] == "Failover operation successful"
    assert sorted((x["container_name"], x["action"], x["from_server_id"], x["to_server_id"])
                  for x in reply["actions"]) == [("idle", "moved", b, a), ("web", "moved", b, a)]
    assert copies(clean_docker) == {"web": "running", "idle": "created"}
    for name in ("web", "idle"):  # copies made by failover are confined as any other
        assert_confined(clean_docker, name)

    engine_b.restart()  # the failed host returns with its old copies
    rpc.containers.run_supervision()
    assert rpc.containers.server_status(b)["status"] == "online"
    assert outbox_types(databases).count("server_came_back") == 1
    assert copies(engine_b.client()) == {}  # stale copies removed
    assert copies(clean_docker) == {"web": "running", "idle": "created"}
    listed = rpc.containers.list_containers(ADMIN, {})["containers"]
    assert {c["container_name"]: (c["server_id"], c["status"]) for c in listed} == {
        "web": (a, "running"), "idle": (a, "stopped")}
    assert rpc.containers.failover()["actions"] == []  # nothing offline any more


def test_load_balance_evens_out_counts(rpc, make_service, clean_docker, docker_url, engine_b):
    a, b = start_fleet(rpc, make_service, docker_url, engine_b, HEALTH_INTERVAL=3600)
    for n in range(4):
        rpc.containers.create_container(ADMIN, {"container_name": f"lb{n}",
                                                "image": TEST_IMAGE, "server_id": a})
    reply = rpc.containers.load_balance()
    assert reply["message"] == "Load balance operation successful"
    assert [(x["action"], x["from_server_id"], x["to_server_id"])
            for x in reply["actions"]] == [("moved", a, b)] * 2
    on_a, on_b = copies(clean_docker), copies(engine_b.client())
    assert len(on_a) == len(on_b) == 2 and set(on_a) | set(on_b) == {f"lb{n}" for n in range(4)}
    assert set(on_a.values()) == set(on_b.values()) == {"running"}
    for name in on_b:  # made by load balance on the other engine: confined as any other
        assert_confined(engine_b.client(), name)
    assert rpc.containers.load_balance()["actions"] == []  # already even


def test_a_dead_host_fails_over_by_itself(rpc, make_service, clean_docker, docker_url,
                                          engine_b, monkeypatch):
    from berth.settings import reload_settings
    monkeypatch.setenv("BERTH_FAILOVER_AFTER", "1")
    reload_settings()
    try:
        a, b = start_fleet(rpc, make_service, docker_url, engine_b, HEALTH_INTERVAL=0.5)
        rpc.containers.create_container(ADMIN, {"container_name": "auto", "image": TEST_IMAGE,
                                                "server_id": b})
        engine_b.kill(whole_host=True)
        poll(lambda: rpc.containers.list_containers(ADMIN, {})["containers"][0],
             until=lambda row: row["server_id"] == a and row["status"] == "running",
             timeout=30, interval=0.5, what=f"the container moved to server {a}, running")
        assert copies(clean_docker) == {"auto": "running"}
    finally:
        monkeypatch.delenv("BERTH_FAILOVER_AFTER")
        reload_settings()


def test_two_replicas_asked_at_once_move_each_container_once(
        rpc, make_service, container_factory, amqp_uri, databases, clean_docker, docker_url,
        engine_b):
    import eventlet

    from tests.fixtures import service_config
    a, b = start_fleet(rpc, make_service, docker_url, engine_b, HEALTH_INTERVAL=3600)
    container_factory(ContainersService, service_config(  # a second replica, same database
        amqp_uri, databases.url("containers"), HEALTH_INTERVAL=3600)).start()
    for n in range(4):
        rpc.containers.create_container(ADMIN, {"container_name": f"twin{n}",
                                                "image": TEST_IMAGE, "server_id": a})
    def balance():  # one proxy per caller: a proxy is not shared between greenthreads
        from nameko.standalone.rpc import ClusterRpcProxy
        with ClusterRpcProxy({"AMQP_URI": amqp_uri, "serializer": "json"}, timeout=30) as own:
            try:
                return own.containers.load_balance()
            except Conflict as exc:  # waited its while for the one running: the documented
                assert "Another fleet operation" in str(exc)  # 409, having moved nothing
                return None

    calls = [eventlet.spawn(balance) for _ in range(4)]
    answers = [call.wait() for call in calls]
    moved = [x for answer in answers if answer for x in answer["actions"]]
    assert any(answers)
    assert len(moved) == 2 and len({x["container_id"] for x in moved}) == 2
    on_a, on_b = copies(clean_docker), copies(engine_b.client())
    assert len(on_a) == len(on_b) == 2 and not set(on_a) & set(on_b)


def test_an_unreachable_engine_is_503_and_changes_nothing(rpc, make_service, clean_docker,
                                                          docker_url, engine_b):
    from berth.errors import ServiceUnavailable
    a, b = start_fleet(rpc, make_service, docker_url, engine_b, HEALTH_INTERVAL=3600)
    rpc.containers.create_container(ADMIN, {"container_name": "far", "image": TEST_IMAGE,
                                            "server_id": b})
    engine_b.kill()
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        rpc.containers.container_status(ADMIN, "far")
    with pytest.raises(ServiceUnavailable):
        rpc.containers.stop_container(ADMIN, "far")
    assert time.monotonic() - started < 5  # refused fast, not a hang
    (row,) = rpc.containers.list_containers(ADMIN, {})["containers"]
    assert (row["desired_state"], row["server_id"]) == ("running", b)
    rpc.containers.run_supervision()
    with pytest.raises(ServiceUnavailable):
        rpc.containers.create_container(ADMIN, {"container_name": "nope", "image": TEST_IMAGE,
                                                "server_id": b})
    assert [c["container_name"] for c in
            rpc.containers.list_containers(ADMIN, {})["containers"]] == ["far"]


def test_drain_moves_every_container_off_and_then_the_server_can_go(
        rpc, make_service, clean_docker, docker_url, engine_b, databases):
    from berth.errors import Conflict, NotFound
    a, b = start_fleet(rpc, make_service, docker_url, engine_b, HEALTH_INTERVAL=3600)
    for name in ("web", "idle"):
        rpc.containers.create_container(ADMIN, {"container_name": name, "image": TEST_IMAGE,
                                                "server_id": b})
    rpc.containers.stop_container(ADMIN, "idle")
    with pytest.raises(Conflict, match="holds 2 containers; drain it first"):
        rpc.containers.delete_server(ADMIN, b)
    rpc.containers.set_server_maintenance(ADMIN, a, {"maintenance": True})
    with pytest.raises(Conflict):  # nowhere to go: nothing changes
        rpc.containers.drain_server(ADMIN, b)
    assert rpc.containers.server_status(b)["maintenance"] is False
    rpc.containers.set_server_maintenance(ADMIN, a, {"maintenance": False})

    reply = rpc.containers.drain_server(ADMIN, b)
    assert reply["message"] == "Server drained successfully"
    assert (reply["maintenance"], reply["containers_left"]) == (True, 0)
    assert sorted((x["container_name"], x["action"], x["from_server_id"], x["to_server_id"])
                  for x in reply["actions"]) == [("idle", "moved", b, a), ("web", "moved", b, a)]
    assert copies(engine_b.client()) == {}
    assert copies(clean_docker) == {"web": "running", "idle": "created"}
    assert outbox_types(databases).count("container_moved") == 2
    # in maintenance now: nothing lands back on it
    assert rpc.containers.load_balance()["actions"] == []
    rpc.containers.delete_server(ADMIN, b)
    with pytest.raises(NotFound):
        rpc.containers.drain_server(ADMIN, b)
    assert [s["server_id"] for s in rpc.containers.servers()["servers"]] == [a]
    assert outbox_types(databases).count("server_removed") == 1
