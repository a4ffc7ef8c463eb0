"""Plans and the image catalogue through the billing service's RPC (real broker, database)."""
from __future__ import annotations

import datetime as dt
import time

import pytest

from berth.errors import BadRequest, Conflict, NotFound
from services.billing.service import BillingService

SMALL = {"name": "small", "cpus": 0.5, "memory_mib": 256, "pids_limit": 128,
         "max_containers": 2, "max_ports": 2, "log_max_mib": 5,
         "traffic_quota_bytes": 10**9, "quota_action": "suspend"}


@pytest.fixture
def billing(make_service):
    return make_service(BillingService)


def test_an_admin_builds_a_catalogue_and_a_plan_that_offers_it(billing, rpc):
    image = rpc.billing.add_image({"reference": "nginx:1.27", "display_name": "nginx",
                                   "container_port": 80})["image"]
    made = rpc.billing.create_plan({**SMALL, "image_ids": [image["image_id"]]})
    plan = made["plan"]
    assert made["message"] == "Plan created successfully"
    assert plan["images"][0]["reference"] == "nginx:1.27" and plan["quota_action"] == "suspend"
    listed = rpc.billing.list_plans({})
    # the standard plan (the default every serial sold so far is on) and the new one
    assert [(p["name"], p["is_default"]) for p in listed["plans"]] == [
        ("standard", True), ("small", False)]
    assert rpc.billing.get_plan(plan["plan_id"]) == plan


def test_moving_the_default_and_retiring_the_old_one(billing, rpc):
    standard = rpc.billing.list_plans({})["plans"][0]
    small = rpc.billing.create_plan(SMALL)["plan"]
    moved = rpc.billing.update_plan(small["plan_id"], {"is_default": True, "cpus": 2})
    assert moved["plan"]["is_default"] and moved["plan"]["cpus"] == 2.0
    retired = rpc.billing.retire_plan(standard["plan_id"])["plan"]
    assert retired["retired"] and retired["retired_at"]
    assert [p["name"] for p in rpc.billing.list_plans({})["plans"]] == ["small"]
    assert len(rpc.billing.list_plans({"include_retired": "true"})["plans"]) == 2
    with pytest.raises(Conflict):
        rpc.billing.retire_plan(small["plan_id"])  # the default


def test_bad_plan_data_is_a_400_naming_the_field_and_changes_nothing(billing, rpc):
    for field, value in (("cpus", 0), ("memory_mib", 10**9), ("quota_action", "delete"),
                         ("image_ids", [5])):
        with pytest.raises(BadRequest) as caught:
            rpc.billing.create_plan({**SMALL, field: value})
        assert caught.value.details[0]["field"] == field, caught.value.details
    with pytest.raises(BadRequest):
        rpc.billing.update_plan(1, {})
    with pytest.raises(NotFound):
        rpc.billing.update_plan(999, {"cpus": 1})
    assert [p["name"] for p in rpc.billing.list_plans({})["plans"]] == ["standard"]


def test_an_image_in_use_cannot_be_removed_until_no_selling_plan_offers_it(billing, rpc):
    image = rpc.billing.add_image({"reference": "redis:7", "display_name": "Redis"})["image"]
    plan = rpc.billing.create_plan({**SMALL, "image_ids": [image["image_id"]]})["plan"]
    with pytest.raises(Conflict):
        rpc.billing.delete_image(image["image_id"])
    rpc.billing.update_plan(plan["plan_id"], {"image_ids": []})
    assert rpc.billing.delete_image(image["image_id"])["message"]
    assert rpc.billing.list_images({})["total"] == 0


def test_a_customer_redeems_a_serial_of_a_plan_and_sees_it_in_rental_info(make_service, rpc):
    from services.users.service import UsersService
    make_service(UsersService)
    make_service(BillingService)
    admin = {"user_id": 1, "role": "admin", "username": "root"}
    alice_id = rpc.users.add_user({"username": "alice", "password": "password-1",
                                   "email": "alice@example.com"})["user_id"]
    alice = {"user_id": alice_id, "role": "user", "username": "alice"}
    small = rpc.billing.create_plan(SMALL)["plan"]
    expiry = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    serial = rpc.billing.generate_serial(admin, {"type": "rental", "expiry_date": expiry,
                                                 "plan_id": small["plan_id"]})
    assert serial["plan_id"] == small["plan_id"]
    assert rpc.billing.check_serial(serial["serial_code"])["plan_id"] == small["plan_id"]
    rpc.billing.redeem_serial(alice, {"serial_code": serial["serial_code"]})
    info = rpc.billing.rental_info(alice_id)
    assert info["rental_status"] == "active" and info["rental_expiry"] == expiry
    assert info["plan"]["name"] == "small" and info["plan"]["max_containers"] == 2
    other = rpc.billing.generate_serial(admin, {"type": "rental", "expiry_date": expiry})
    with pytest.raises(Conflict, match="runs on plan small"):
        rpc.billing.redeem_serial(alice, {"serial_code": other["serial_code"]})
    assert rpc.billing.check_serial(other["serial_code"])["status"] == "valid"
    # containers and traffic are not running here: the summary says so instead of failing
    summary = rpc.billing.rental_summary(alice_id)
    assert summary["plan"]["name"] == "small" and summary["rental_status"] == "active"
    assert summary["used"] == {"containers": None, "traffic_month": None, "traffic_bytes": None,
                               "unavailable": ["containers", "traffic"]}


def test_without_the_containers_service_a_plan_is_not_held_to_a_hosts_size(billing, rpc):
    """Billing asks containers for the hosts' size with a short timeout; with containers not
    running it accepts the plan rather than block (services/containers/tests/test_capacity.py checks
    the refusal with a real host)."""
    started = time.monotonic()
    plan = rpc.billing.create_plan({**SMALL, "cpus": 256, "memory_mib": 1_048_576})["plan"]
    changed = rpc.billing.update_plan(plan["plan_id"], {"cpus": 200})["plan"]
    assert (plan["cpus"], changed["cpus"]) == (256, 200)
    assert time.monotonic() - started < 2 * 2.0 + 1  # two asks, each at most CAPACITY_TIMEOUT
