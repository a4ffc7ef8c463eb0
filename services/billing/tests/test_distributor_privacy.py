"""A distributor learns nothing about users they did not sell to (real broker and database)."""
from __future__ import annotations

import datetime as dt

import pytest

from berth.errors import NotFound
from services.billing.service import BillingService
from services.users.service import UsersService

ADMIN = {"user_id": 1, "role": "admin", "username": "root"}
EXPIRY = (dt.date.today() + dt.timedelta(days=30)).isoformat()


@pytest.fixture
def billing(make_service):
    make_service(UsersService)
    return make_service(BillingService)


def user(rpc, name: str, role: str = "user") -> dict:
    user_id = rpc.users.add_user({"username": name, "password": "password-1",
                                  "email": f"{name}@example.com"})["user_id"]
    return {"user_id": user_id, "role": role, "username": name}


def test_check_shows_the_assignee_to_admins_and_the_assignee_only(billing, rpc):
    alice, bob = user(rpc, "alice"), user(rpc, "bob")
    reseller = {**user(rpc, "reseller"), "role": "distributor"}
    code = rpc.billing.generate_serial(ADMIN, {"type": "rental", "expiry_date": EXPIRY,
                                               "user_id": alice["user_id"]})["serial_code"]
    assert rpc.billing.check_serial(code, ADMIN)["issued_to"] == "alice@example.com"
    assert rpc.billing.check_serial(code, alice)["issued_to"] == "alice@example.com"
    for stranger in (bob, reseller):
        check = rpc.billing.check_serial(code, stranger)
        assert check["issued_to"] is None and check["status"] == "valid"


def test_a_distributor_names_only_users_who_redeemed_their_serials(billing, rpc):
    alice, bob = user(rpc, "alice"), user(rpc, "bob")
    reseller = {**user(rpc, "reseller"), "role": "distributor"}
    rpc.users.update_user(reseller["user_id"], {"role": "distributor"})
    plan_id = rpc.billing.list_plans({})["plans"][0]["plan_id"]
    rpc.billing.change_allotment(ADMIN, reseller["user_id"], {"plan_id": plan_id,
                                                              "serials": 2})
    # bob exists, but never bought from this distributor: the same answer as no such user
    for user_id in (bob["user_id"], 424242):
        with pytest.raises(NotFound, match=f"User {user_id} not found"):
            rpc.billing.generate_serial(reseller, {"type": "rental", "expiry_date": EXPIRY,
                                                   "user_id": user_id})
    bearer = rpc.billing.generate_serial(reseller, {"type": "rental", "expiry_date": EXPIRY})
    rpc.billing.redeem_serial(alice, {"serial_code": bearer["serial_code"]})
    named = rpc.billing.generate_serial(reseller, {"type": "rental", "expiry_date": EXPIRY,
                                                   "user_id": alice["user_id"]})
    assert rpc.billing.check_serial(named["serial_code"], reseller)["issued_to"] is None
    assert rpc.billing.check_serial(named["serial_code"], alice)["issued_to"] == \
        "alice@example.com"
