"""A customer's own create against their plan (services.containers.selfservice), no engine."""
from __future__ import annotations

import pytest

from berth.errors import BadRequest, Conflict, Forbidden
from services.containers.placement import free_ports
from services.containers.schemas import CreateContainer
from services.containers.selfservice import customer_create

NGINX = {"image_id": 1, "reference": "nginx:1.27", "display_name": "nginx",
         "default_command": None, "container_port": 80}
SHELL = {"image_id": 2, "reference": "berth-test:1", "display_name": "shell",
         "default_command": "sh -c 'exec sleep 3600'", "container_port": None}
PLAN = {"name": "small", "max_containers": 2, "max_ports": 1, "customer_ports": False,
        "images": [NGINX, SHELL]}


def body(**fields) -> CreateContainer:
    return CreateContainer.model_validate({"container_name": "box", "image": "nginx:1.27",
                                           **fields})


def test_berth_publishes_the_images_port_and_keeps_the_default_command():
    wish = customer_create(body(), PLAN, held=0)
    assert (wish.command, wish.ports, wish.published) == (None, None, ["80/tcp"])
    wish = customer_create(body(image="berth-test:1"), PLAN, held=1)
    assert (wish.command, wish.published) == (["sh", "-c", "exec sleep 3600"], [])
    assert customer_create(body(command=["echo", "hi"]), PLAN, 0).command == ["echo", "hi"]


def test_an_image_outside_the_catalogue_is_a_400_naming_what_is_offered():
    with pytest.raises(BadRequest) as caught:
        customer_create(body(image="redis:7"), PLAN, held=0)
    assert caught.value.details == [{"field": "image", "message": "not in your plan's "
                                     "catalogue (offered: berth-test:1, nginx:1.27)"}]


def test_the_plans_container_count_is_a_409_saying_so():
    with pytest.raises(Conflict, match=r"allows 2 container\(s\) and you have 2"):
        customer_create(body(), PLAN, held=2)


def test_no_plan_no_server_choice_and_host_ports_only_where_the_plan_allows():
    with pytest.raises(Conflict, match="no active rental"):
        customer_create(body(), None, held=0)
    with pytest.raises(Forbidden):
        customer_create(body(server_id=1), PLAN, held=0)
    with pytest.raises(BadRequest) as caught:
        customer_create(body(ports={"80/tcp": 8080}), PLAN, held=0)
    assert caught.value.details[0]["field"] == "ports"
    choosing = {**PLAN, "customer_ports": True}
    assert customer_create(body(ports={"80/tcp": 8080}), choosing, 0).ports == {"80/tcp": 8080}
    with pytest.raises(BadRequest, match="Invalid container data"):
        customer_create(body(ports={"80/tcp": 8080, "81/tcp": 8081}), choosing, 0)


def test_free_ports_are_the_lowest_unused_in_the_range():
    assert free_ports({20000, 20002}, 2, 20000, 20010) == [20001, 20003]
    assert free_ports({20000, 20001}, 3, 20000, 20002) == [20002]  # the range ran out
