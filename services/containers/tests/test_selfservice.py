"""A customer's own create against their plan (services.containers.selfservice), no engine."""
from __future__ import annotations

import pytest

from berth.errors import BadRequest, Conflict, Forbidden
from services.containers.placement import free_ports
from services.containers.schemas import CreateContainer
from services.containers.selfservice import Allowance, customer_create

NGINX = {"image_id": 1, "reference": "nginx:1.27", "display_name": "nginx",
         "default_command": None, "container_port": 80}
SHELL = {"image_id": 2, "reference": "berth-test:1", "display_name": "shell",
         "default_command": "sh -c 'exec sleep 3600'", "container_port": None}
PLAN = {"name": "small", "max_containers": 2, "max_ports": 1, "customer_ports": False,
        "images": [NGINX, SHELL]}
RANGE = (20000, 29999)  # BERTH_CUSTOMER_PORT_MIN, _MAX


def body(**fields) -> CreateContainer:
    return CreateContainer.model_validate({"container_name": "box", "image": "nginx:1.27",
                                           **fields})


def test_berth_publishes_the_images_port_and_keeps_the_default_command():
    wish = customer_create(body(), PLAN, RANGE)
    assert (wish.command, wish.ports, wish.published) == (None, None, ["80/tcp"])
    wish = customer_create(body(image="berth-test:1"), PLAN, RANGE)
    assert (wish.command, wish.published) == (["sh", "-c", "exec sleep 3600"], [])
    assert customer_create(body(command=["echo", "hi"]), PLAN, RANGE).command == ["echo", "hi"]


def test_an_image_outside_the_catalogue_is_a_400_naming_what_is_offered():
    with pytest.raises(BadRequest) as caught:
        customer_create(body(image="redis:7"), PLAN, RANGE)
    assert caught.value.details == [{"field": "image", "message": "not in your plan's "
                                     "catalogue (offered: berth-test:1, nginx:1.27)"}]


def test_the_plans_container_count_is_a_409_saying_so():
    allowance = Allowance.of(PLAN)
    allowance.count(1)
    with pytest.raises(Conflict, match=r"allows 2 container\(s\) and 2 exist"):
        allowance.count(2)


def test_a_plans_ports_per_container_are_a_400_naming_ports():
    allowance = Allowance.of({**PLAN, "max_ports": 2})
    allowance.ports(None)
    allowance.ports({"80/tcp": 20001, "81/tcp": 20002})
    with pytest.raises(BadRequest) as caught:
        allowance.ports({"80/tcp": 20001, "81/tcp": 20002, "82/tcp": 20003})
    assert caught.value.details == [{"field": "ports", "message": "the owner's plan allows 2 "
                                     "published port(s), not 3"}]
    no_ports = Allowance.of({**PLAN, "max_ports": 0})
    with pytest.raises(BadRequest):
        no_ports.ports({"80/tcp": 20001})


def test_a_plan_without_ports_publishes_not_even_the_images_port():
    wish = customer_create(body(), {**PLAN, "max_ports": 0}, RANGE)
    assert (wish.ports, wish.published) == (None, [])


def test_no_plan_no_server_choice_and_host_ports_only_where_the_plan_allows():
    with pytest.raises(Conflict, match="no active rental"):
        customer_create(body(), None, RANGE)
    with pytest.raises(Forbidden):
        customer_create(body(server_id=1), PLAN, RANGE)
    with pytest.raises(BadRequest) as caught:
        customer_create(body(ports={"80/tcp": 20080}), PLAN, RANGE)
    assert caught.value.details[0]["field"] == "ports"
    choosing = {**PLAN, "customer_ports": True}
    assert customer_create(body(ports={"80/tcp": 20080}), choosing, RANGE).ports == {
        "80/tcp": 20080}
    with pytest.raises(BadRequest, match="Invalid container data"):
        customer_create(body(ports={"80/tcp": 20080, "81/tcp": 20081}), choosing, RANGE)


@pytest.mark.parametrize("port", [8080, 19999, 30000, 1])
def test_host_ports_a_customer_chooses_must_be_in_the_customers_range(port):
    choosing = {**PLAN, "customer_ports": True}
    with pytest.raises(BadRequest) as caught:
        customer_create(body(ports={"80/tcp": port}), choosing, RANGE)
    assert caught.value.details == [{"field": "ports", "message": f"host port {port} is "
                                     f"outside the customers' range 20000-29999"}]
    assert customer_create(body(ports={"80/tcp": 29999}), choosing, RANGE).ports == {
        "80/tcp": 29999}


@pytest.mark.parametrize("ports", [{"80/tcp": 0}, {"80/tcp": 65536}, {"0/tcp": 20000},
                                   {"65536/tcp": 20000}, {"80/icmp": 20000}])
def test_ports_outside_1_to_65535_are_a_400_naming_ports(ports):
    from berth.errors import BadRequest as Invalid
    from berth.validation import parse
    with pytest.raises(Invalid) as caught:
        parse(CreateContainer, {"container_name": "box", "image": "nginx", "ports": ports},
              "Invalid container data")
    assert caught.value.details[0]["field"].split(".")[0] == "ports", caught.value.details


def test_free_ports_are_the_lowest_unused_in_the_range():
    assert free_ports({20000, 20002}, 2, 20000, 20010) == [20001, 20003]
    assert free_ports({20000, 20001}, 3, 20000, 20002) == [20002]  # the range ran out


def test_capacity_a_container_asks_is_its_plans_or_the_operators():
    from services.containers.placement import misfits, needs_of
    assert needs_of({"cpus": 0.5, "memory_mib": 256}, 1.0, 512) == (0.5, 256)
    assert needs_of(None, 1.0, 512) == (1.0, 512)
    assert misfits((2.0, 512), 2, 512, "h") == []
    assert misfits((2.0, 512), None, None, "h") == []  # not known yet: it fits
    assert misfits((2.5, 600), 2, 512, "h") == [
        {"field": "cpus", "message": "2.5 CPUs is more than server h has (2 CPUs)"},
        {"field": "memory_mib", "message": "600 MiB is more than server h has (512 MiB)"}]
    assert [m["field"] for m in misfits((1.0, 600), 2, 512, "h")] == ["memory_mib"]
