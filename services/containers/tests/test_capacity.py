"""Capacity and input checks on a real engine and broker, on SQLite and PostgreSQL (issue 15,
items 9 and 3): the host's size learnt from its engine and held against every placement and
every plan; a plan's container count under concurrent creates, from two replicas; its ports
per container kept by an admin's update; and creates that fail leaving no row and no copy.
Billing is the real service (plans, serials, rentals), so a customer's create asks it as in
production."""
from __future__ import annotations

import datetime as dt
import socket

import pytest
from sqlalchemy import create_engine, text

from berth.db import normalise_url
from berth.errors import BadRequest, Conflict
from services.billing.service import BillingService
from services.containers.service import ContainersService
from tests.docker_support import TEST_IMAGE
from tests.support import free_port

ADMIN = {"user_id": 1, "role": "admin", "username": "root"}
ALICE = {"user_id": 7, "role": "user", "username": "alice"}


@pytest.fixture
def host(rpc, make_service, clean_docker, docker_url):
    """Two replicas of containers and one of billing; the local engine as server ``local``."""
    make_service(ContainersService, HEALTH_INTERVAL=3600)
    make_service(ContainersService, HEALTH_INTERVAL=3600)
    make_service(BillingService)
    server = rpc.containers.add_server({"server_name": "local", "ip_address": "127.0.0.1",
                                        "docker_url": docker_url})
    return server["server_id"]


def berth_copies(client) -> list[str]:
    return sorted(c["Names"][0].lstrip("/") for c in client.api.containers(
        all=True, filters={"label": "berth.managed"}))


def names(rpc) -> list[str]:
    return sorted(c["container_name"] for c in
                  rpc.containers.list_containers(ADMIN, {})["containers"])


def shrink(databases, server_id: int, cpus: int, memory_mib: int) -> None:
    """Make Berth believe the host is this small (as if its engine said so at a probe)."""
    engine = create_engine(normalise_url(databases.url("containers")))
    with engine.begin() as conn:
        conn.execute(text("UPDATE servers SET cpus = :c, memory_mib = :m WHERE id = :i"),
                     {"c": cpus, "m": memory_mib, "i": server_id})
    engine.dispose()


def rental_on_plan(rpc, who: dict, **plan) -> dict:
    """``who`` redeems a serial of a new plan offering TEST_IMAGE; returns the plan."""
    image = rpc.billing.add_image({"reference": TEST_IMAGE, "display_name": "web"})["image"]
    made = rpc.billing.create_plan({
        "name": f"plan-{who['user_id']}", "cpus": 0.5, "memory_mib": 64, "pids_limit": 64,
        "max_containers": 2, "max_ports": 1, "log_max_mib": 3,
        "image_ids": [image["image_id"]], **plan})["plan"]
    expiry = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    serial = rpc.billing.generate_serial(ADMIN, {"type": "rental", "expiry_date": expiry,
                                                 "plan_id": made["plan_id"]})
    rpc.billing.redeem_serial(who, {"serial_code": serial["serial_code"]})
    return made


def test_the_hosts_size_comes_from_its_engine_and_bounds_plans(rpc, host, docker_client):
    info = docker_client.info()
    row = rpc.containers.server_status(host)
    assert (row["cpus"], row["memory_mib"]) == (info["NCPU"], info["MemTotal"] // 2**20)
    capacity = rpc.containers.capacity()
    assert (capacity["cpus"], capacity["memory_mib"]) == (row["cpus"], row["memory_mib"])
    assert [s["server_id"] for s in capacity["servers"]] == [host]

    too_many = info["NCPU"] + 1
    plan = {"name": "big", "cpus": 1, "memory_mib": 64, "pids_limit": 64,
            "max_containers": 1, "max_ports": 1, "log_max_mib": 3}
    with pytest.raises(BadRequest) as caught:
        rpc.billing.create_plan({**plan, "cpus": too_many})
    (detail,) = caught.value.details
    assert detail["field"] == "cpus" and f"(the most: {info['NCPU']})" in detail["message"]
    with pytest.raises(BadRequest) as caught:
        rpc.billing.create_plan({**plan, "memory_mib": info["MemTotal"] // 2**20 + 1})
    assert [d["field"] for d in caught.value.details] == ["memory_mib"]
    made = rpc.billing.create_plan(plan)["plan"]  # one that fits
    with pytest.raises(BadRequest) as caught:
        rpc.billing.update_plan(made["plan_id"], {"cpus": too_many})
    assert [d["field"] for d in caught.value.details] == ["cpus"]
    assert rpc.billing.get_plan(made["plan_id"])["cpus"] == 1  # unchanged


def test_a_container_larger_than_its_host_is_refused_and_nothing_is_made(
        rpc, host, databases, docker_client):
    shrink(databases, host, 1, 256)  # smaller than BERTH_CONTAINER_MEMORY_MIB (512)
    with pytest.raises(BadRequest) as caught:  # the admin named the server
        rpc.containers.create_container(ADMIN, {"container_name": "big", "image": TEST_IMAGE,
                                                "server_id": host})
    assert caught.value.details == [{"field": "memory_mib", "message": "512 MiB is more "
                                     "than server local has (256 MiB)"}]
    with pytest.raises(Conflict, match="No server can hold a container of 1 CPUs and 512 MiB: "
                                       "the largest available, local, has 1 CPUs and 256 MiB"):
        rpc.containers.create_container(ADMIN, {"container_name": "big", "image": TEST_IMAGE})
    assert names(rpc) == [] and berth_copies(docker_client) == []

    rpc.containers.run_supervision()  # the next probe tells the host's real size again
    created = rpc.containers.create_container(ADMIN, {"container_name": "fits",
                                                      "image": TEST_IMAGE})
    assert created["server_id"] == host and berth_copies(docker_client) == ["fits"]


def test_concurrent_creates_by_one_customer_on_two_replicas_stay_within_the_count(
        rpc, host, docker_client):
    rental_on_plan(rpc, ALICE, max_containers=2)
    calls = [rpc.containers.create_container.call_async(
        ALICE, {"container_name": f"alice-{i}", "image": TEST_IMAGE}) for i in range(6)]
    made, refused = [], []
    for call in calls:
        try:
            made.append(call.result()["container_name"])
        except Conflict as exc:
            refused.append(str(exc))
    assert len(made) == 2 and len(refused) == 4, (made, refused)
    assert all("allows 2 container(s) and 2 exist" in r for r in refused), refused
    assert names(rpc) == sorted(made) and berth_copies(docker_client) == sorted(made)

    rpc.containers.delete_container(ALICE, made[0])  # room for one again
    rpc.containers.create_container(ALICE, {"container_name": "alice-again",
                                            "image": TEST_IMAGE})
    with pytest.raises(Conflict):
        rpc.containers.create_container(ALICE, {"container_name": "alice-more",
                                                "image": TEST_IMAGE})


def test_an_admins_update_keeps_a_customers_container_within_the_plans_ports(
        rpc, host, docker_client):
    rental_on_plan(rpc, ALICE, max_ports=1, customer_ports=True)
    port = 20000 + free_port() % 10000
    rpc.containers.create_container(ALICE, {"container_name": "site", "image": TEST_IMAGE,
                                            "ports": {"80/tcp": port}})
    with pytest.raises(BadRequest) as caught:  # the customer: one port, in the range
        rpc.containers.create_container(ALICE, {"container_name": "two", "image": TEST_IMAGE,
                                                "ports": {"80/tcp": 20001, "81/tcp": 20002}})
    assert caught.value.details[0]["field"] == "ports"
    with pytest.raises(BadRequest) as caught:
        rpc.containers.create_container(ALICE, {"container_name": "low", "image": TEST_IMAGE,
                                                "ports": {"80/tcp": 8080}})
    assert caught.value.details[0]["field"] == "ports" and "20000-29999" in \
        caught.value.details[0]["message"]
    with pytest.raises(BadRequest) as caught:  # an admin, updating it
        rpc.containers.update_container("site", {"ports": {"80/tcp": port,
                                                           "81/tcp": free_port()}})
    assert caught.value.details == [{"field": "ports", "message": "the owner's plan allows 1 "
                                     "published port(s), not 2"}]
    (row,) = rpc.containers.list_containers(ADMIN, {})["containers"]
    assert row["ports"] == {"80/tcp": port} and berth_copies(docker_client) == ["site"]


def test_a_create_that_fails_at_start_leaves_no_row_and_no_copy(rpc, host, docker_client):
    """A host port held by a process that is not Berth's: the engine creates the copy, its
    start fails; the copy and the row both go."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        port = listener.getsockname()[1]
        with pytest.raises(Conflict, match="already in use"):
            rpc.containers.create_container(ADMIN, {"container_name": "clash",
                                                    "image": TEST_IMAGE,
                                                    "ports": {"80/tcp": port}})
    finally:
        listener.close()
    assert names(rpc) == [] and berth_copies(docker_client) == []
    assert docker_client.api.containers(all=True, filters={"name": "^/clash$"}) == []
