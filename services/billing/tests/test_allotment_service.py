"""Distributor allotments and sales by RPC on the real broker, against SQLite and PostgreSQL:
who may be granted one, concurrent generates that never overspend, the event, and the sales
listing with usernames asked of the users service."""
from __future__ import annotations

import pytest

from berth.errors import BadRequest, Conflict, Forbidden, NotFound
from services.billing.service import BillingService
from services.billing.tests.test_service import (ADMIN, day, generate, outbox_events,
                                                 race_behind_row_lock, redeem, register)
from services.users.service import UsersService

ALLOTMENT_ROW = ("SELECT distributor_id FROM allotments WHERE distributor_id = :id "
                 "FOR UPDATE")


@pytest.fixture
def billing(make_service):
    make_service(UsersService)
    return make_service(BillingService)


def distributor(rpc, name: str) -> dict:
    user = register(rpc, name)
    rpc.users.update_user(user["user_id"], {"role": "distributor"})
    return {**user, "role": "distributor"}


def grant(rpc, who: dict, amount: int, unit: str = "serials", plan_id: int | None = None):
    plan_id = plan_id or default_plan_id(rpc)
    return rpc.billing.change_allotment(ADMIN, who["user_id"],
                                        {"plan_id": plan_id, unit: amount})


def default_plan_id(rpc) -> int:
    return next(p["plan_id"] for p in rpc.billing.list_plans({})["plans"] if p["is_default"])


def test_only_a_distributor_is_granted_an_allotment_of_a_plan_that_exists(billing, rpc):
    dora, alice = distributor(rpc, "dora"), register(rpc, "alice")
    with pytest.raises(NotFound):
        grant(rpc, {"user_id": 424242}, 2)
    with pytest.raises(Conflict, match=f"User {alice['user_id']} is not a distributor"):
        grant(rpc, alice, 2)
    with pytest.raises(BadRequest) as error:
        grant(rpc, dora, 2, plan_id=4242)
    assert error.value.details == [{"field": "plan_id", "message": "no plan 4242"}]
    with pytest.raises(BadRequest) as error:
        rpc.billing.change_allotment(ADMIN, dora["user_id"], {"plan_id": default_plan_id(rpc),
                                                              "serials": 1, "days": 30})
    assert error.value.details[0]["field"] == "days"
    assert rpc.billing.list_allotments(dora["user_id"])["allotments"] == []

    reply = grant(rpc, dora, 2)
    assert reply["message"] == "Allotment changed"
    assert {k: reply["allotment"][k] for k in ("plan_name", "unit", "serials_left",
                                               "days_left")} == \
        {"plan_name": "standard", "unit": "serials", "serials_left": 2, "days_left": None}
    assert rpc.billing.list_allotments(dora["user_id"])["allotments"] == [reply["allotment"]]
    with pytest.raises(Conflict, match="has 2 serials left of plan standard: 3 cannot be "
                                       "taken back"):
        grant(rpc, dora, -3)
    assert rpc.billing.list_allotments(dora["user_id"])["allotments"][0]["serials_left"] == 2
    with pytest.raises(NotFound):
        rpc.billing.list_allotments(424242)


def test_grants_and_take_backs_are_events_spending_is_not(billing, rpc, databases):
    dora = distributor(rpc, "dora")
    grant(rpc, dora, 3)
    grant(rpc, dora, -1)
    generate(rpc, day(30), actor=dora)
    events = sorted(outbox_events(databases, "allotment_changed"), key=lambda e: e["change"],
                    reverse=True)
    assert [(e["distributor_id"], e["unit"], e["change"], e["balance"], e["actor_id"])
            for e in events] == [(dora["user_id"], "serials", 3, 3, ADMIN["user_id"]),
                                 (dora["user_id"], "serials", -1, 2, ADMIN["user_id"])]
    assert rpc.billing.list_allotments(dora["user_id"])["allotments"][0]["serials_left"] == 1


def test_concurrent_generates_never_spend_more_than_the_allotment(
        billing, rpc, amqp_uri, databases):
    """Eight generates at once against three serials: on PostgreSQL every one of them has
    inserted its serial and read the allotment before any spends (they all wait behind the
    allotment's row lock), so only the conditional UPDATE can keep them from overspending."""
    dora = distributor(rpc, "dora")
    grant(rpc, dora, 3)
    results = race_behind_row_lock(databases, amqp_uri, dora["user_id"], [
        lambda proxy: generate(proxy, day(30), actor=dora) for _ in range(8)],
        lock=ALLOTMENT_ROW)
    wins = [r for r in results if isinstance(r, dict)]
    assert len(wins) == 3, results
    losses = [r for r in results if not isinstance(r, dict)]
    assert all(isinstance(r, Conflict) and "0 serials left" in str(r) for r in losses), losses
    assert rpc.billing.list_allotments(dora["user_id"])["allotments"][0]["serials_left"] == 0
    listed = rpc.billing.list_serials(dora, {})
    assert sorted(s["serial_id"] for s in listed["serials"]) == \
        sorted(w["serial_id"] for w in wins)  # a refused generate stored no serial


def test_concurrent_generates_in_days_never_overspend(billing, rpc, amqp_uri, databases):
    dora = distributor(rpc, "dora")
    grant(rpc, dora, 100, unit="days")
    results = race_behind_row_lock(databases, amqp_uri, dora["user_id"], [
        lambda proxy: generate(proxy, day(30), actor=dora) for _ in range(5)],
        lock=ALLOTMENT_ROW)
    assert len([r for r in results if isinstance(r, dict)]) == 3, results
    assert rpc.billing.list_allotments(dora["user_id"])["allotments"][0]["days_left"] == 10


def test_a_distributors_serial_expires_within_366_days_by_default(billing, rpc):
    dora = distributor(rpc, "dora")
    grant(rpc, dora, 5)
    with pytest.raises(BadRequest) as error:
        generate(rpc, day(367), actor=dora)  # the default: 366 days
    assert error.value.details[0]["field"] == "expiry_date"
    assert generate(rpc, day(366), actor=dora)["serial_id"]
    assert generate(rpc, day(2000))["serial_id"]  # an admin is not bound


def test_a_distributor_cannot_redeem_their_own_serial_and_sells_it_instead(billing, rpc):
    dora, alice, bob = distributor(rpc, "dora"), register(rpc, "alice"), register(rpc, "bob")
    grant(rpc, dora, 3)
    first = generate(rpc, day(30), actor=dora)
    with pytest.raises(Forbidden, match="You issued this serial"):
        redeem(rpc, dora, first["serial_code"])
    assert rpc.billing.check_serial(first["serial_code"])["status"] == "valid"
    rental = redeem(rpc, alice, first["serial_code"])
    generate(rpc, day(40), actor=dora)  # not redeemed: not a sale

    sales = rpc.billing.distributor_sales(dora, {})
    assert sales["total"] == 1
    [sale] = sales["sales"]
    assert sale["customer"] == {"user_id": alice["user_id"], "username": "alice"}
    assert sale["rental"] == {"rental_id": rental["rental_id"], "status": "active",
                              "end_date": day(30)}
    assert "alice@example.com" not in str(sales)
    assert sales["summary"] == {"issued": 2, "redeemed": 1, "customers": 1,
                                "active_rentals": 1}
    with pytest.raises(Forbidden):
        rpc.billing.distributor_sales(dora, {"distributor_id": bob["user_id"]})
    assert rpc.billing.distributor_sales(ADMIN, {"distributor_id": dora["user_id"]}) == sales
    with pytest.raises(BadRequest):
        rpc.billing.distributor_sales(dora, {"limit": 0})
