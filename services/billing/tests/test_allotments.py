"""Distributor allotments, the horizon, self-redeeming and the sales listing
(services.billing.allotments, serials, rentals, sales) on SQLite, without a broker."""
import datetime as dt

import pytest
from sqlalchemy import func, select

from berth.actor import NOT_YOURS, Actor
from berth.errors import BadRequest, Conflict, Forbidden
from berth.events import AllotmentChanged
from services.billing import allotments, plans, rentals, sales, serials
from services.billing.models import Allotment, Serial
from services.billing.tests.test_domain import (ADMIN, DISTRIBUTOR, NOW,  # noqa: F401
                                                OTHER_DISTRIBUTOR, TODAY, days, engine,
                                                session)
from services.billing.tests.test_plans import new_plan

ALICE, BOB = 10, 11


def grant(session, amount, unit="serials", plan_id=None, distributor=DISTRIBUTOR):
    plan_id = plan_id or plans.default_plan(session).id
    allotment, plan, event = allotments.change(session, distributor.user_id, plan_id, unit,
                                               amount, ADMIN.user_id)
    session.commit()
    return allotment, event


def sell(session, expiry=TODAY + days(30), plan_id=None, actor=DISTRIBUTOR, horizon=366,
         assignee=None) -> Serial:
    serial = serials.generate(session, actor, "rental", expiry, TODAY, assignee, plan_id,
                              horizon_days=horizon)
    session.commit()
    return serial


def refused_sale(session, error, match, **kwargs):
    with pytest.raises(error, match=match) as raised:
        sell(session, **kwargs)
    session.rollback()
    return raised.value


def left(session, plan_id=None, distributor=DISTRIBUTOR) -> tuple:
    plan_id = plan_id or plans.default_plan(session).id
    row = session.get(Allotment, (distributor.user_id, plan_id), populate_existing=True)
    return None if row is None else (row.serials_left, row.days_left)


def serial_count(session) -> int:
    return session.scalar(select(func.count()).select_from(Serial))


# --- granting ----------------------------------------------------------------------------------

def test_a_grant_adds_and_says_so_in_an_event(session):
    _, first = grant(session, 2)
    allotment, second = grant(session, 3)
    assert (allotment.serials_left, allotment.days_left) == (5, None)
    assert isinstance(second, AllotmentChanged)
    plan_id = plans.default_plan(session).id
    assert (second.distributor_id, second.plan_id, second.unit, second.change,
            second.balance, second.actor_id) == (DISTRIBUTOR.user_id, plan_id, "serials", 3,
                                                 5, ADMIN.user_id)
    assert first.balance == 2
    assert allotments.of(session, DISTRIBUTOR.user_id) == [{
        "plan_id": plan_id, "plan_name": "standard", "unit": "serials", "serials_left": 5,
        "days_left": None, "updated_at": allotments.to_row(allotment, plans.get(
            session, plan_id))["updated_at"]}]
    assert allotments.of(session, OTHER_DISTRIBUTOR.user_id) == []


def test_taking_back_never_goes_below_zero(session):
    grant(session, 3)
    allotment, event = grant(session, -2)
    assert allotment.serials_left == 1 and (event.change, event.balance) == (-2, 1)
    with pytest.raises(Conflict, match="has 1 serials left of plan standard: 2 cannot be "
                                       "taken back"):
        grant(session, -2)
    session.rollback()
    assert left(session) == (1, None)


def test_taking_back_what_was_never_granted_is_refused_and_leaves_no_row(session):
    with pytest.raises(Conflict, match="0 serials left"):
        grant(session, -1)
    session.rollback()
    assert left(session) is None


def test_an_allotment_keeps_its_unit_while_something_is_left(session):
    grant(session, 2)
    with pytest.raises(Conflict, match="counted in serials \\(2 serials left\\)"):
        grant(session, 30, "days")
    session.rollback()
    grant(session, -2)
    allotment, event = grant(session, 30, "days")  # spent to zero: it may change unit
    assert (allotment.serials_left, allotment.days_left) == (None, 30)
    assert (event.unit, event.balance) == ("days", 30)


def test_the_plan_must_exist_and_a_retired_one_takes_back_only(session):
    with pytest.raises(BadRequest) as error:
        grant(session, 1, plan_id=4242)
    assert error.value.details == [{"field": "plan_id", "message": "no plan 4242"}]
    session.rollback()
    new_plan(session, "main")
    old = new_plan(session, "old")
    grant(session, 2, plan_id=old.id)
    plans.retire(session, old.id, NOW)
    session.commit()
    with pytest.raises(Conflict, match="Plan old is retired"):
        grant(session, 1, plan_id=old.id)
    session.rollback()
    allotment, _ = grant(session, -2, plan_id=old.id)
    assert allotment.serials_left == 0


@pytest.mark.parametrize("serials_, days_, field", [
    (None, None, "serials"), (1, 5, "days"), (0, None, "serials"), (None, 0, "days")])
def test_a_grant_names_exactly_one_unit_and_not_zero(serials_, days_, field):
    with pytest.raises(BadRequest) as error:
        allotments.requested_change(serials_, days_)
    assert [d["field"] for d in error.value.details] == [field]


def test_a_grant_body_gives_its_unit_and_amount():
    assert allotments.requested_change(None, -7) == ("days", -7)
    assert allotments.requested_change(4, None) == ("serials", 4)


# --- spending: generating a serial ---------------------------------------------------------

def test_each_serial_takes_one_and_an_empty_allotment_is_409(session):
    grant(session, 2)
    first, second = sell(session), sell(session)
    assert first.distributor_id == second.distributor_id == DISTRIBUTOR.user_id
    assert left(session) == (0, None)
    refused_sale(session, Conflict, "Your allotment of plan standard has 0 serials left")
    assert serial_count(session) == 2  # the refused serial was never stored


def test_without_an_allotment_of_that_plan_a_distributor_sells_nothing(session):
    refused_sale(session, Conflict, "You have no allotment of plan standard")
    small = new_plan(session, "small")
    grant(session, 5)  # of the default plan, not of small
    refused_sale(session, Conflict, "no allotment of plan small", plan_id=small.id)
    grant(session, 1, plan_id=small.id)
    assert sell(session, plan_id=small.id).plan_id == small.id
    assert left(session, small.id) == (0, None) and left(session) == (5, None)
    assert serial_count(session) == 1


def test_days_are_taken_from_today_to_the_expiry_date(session):
    grant(session, 45, "days")
    sell(session, TODAY + days(30))
    assert left(session) == (None, 15)
    error = refused_sale(session, Conflict, "has 15 days left", expiry=TODAY + days(16))
    assert "takes 16 days" in str(error)
    sell(session, TODAY + days(15))
    assert left(session) == (None, 0)


def test_an_admins_serial_takes_no_allotment(session):
    grant(session, 1, distributor=DISTRIBUTOR)
    sell(session, actor=ADMIN)
    sell(session, actor=ADMIN, expiry=TODAY + days(5000))  # and knows no horizon
    assert left(session) == (1, None)


def test_the_horizon_bounds_a_distributors_expiry_date(session):
    grant(session, 5)
    sell(session, TODAY + days(90), horizon=90)
    with pytest.raises(BadRequest) as error:
        sell(session, TODAY + days(91), horizon=90)
    session.rollback()
    [detail] = error.value.details
    assert detail["field"] == "expiry_date"
    assert "at most 90 days" in detail["message"]
    assert left(session) == (4, None)  # the refused serial took nothing


# --- a distributor does not redeem their own -------------------------------------------------

def test_a_distributor_cannot_redeem_a_serial_they_issued(session):
    grant(session, 1)
    serial = sell(session)
    with pytest.raises(Forbidden, match="You issued this serial"):
        rentals.redeem(session, serial, DISTRIBUTOR.user_id, TODAY, NOW)
    session.rollback()
    assert session.get(Serial, serial.id, populate_existing=True).status == "valid"
    rental, _ = rentals.redeem(session, serial, OTHER_DISTRIBUTOR.user_id, TODAY, NOW)
    session.commit()
    assert rental.user_id == OTHER_DISTRIBUTOR.user_id  # another distributor buys like anyone


# --- sales ---------------------------------------------------------------------------------------

class Names:
    def __init__(self, known):
        self.known, self.asked = known, []

    def usernames(self, user_ids):
        self.asked.append(list(user_ids))
        return {i: self.known[i] for i in user_ids if i in self.known}


def redeem(session, serial, user_id, now=NOW):
    rental, _ = rentals.redeem(session, serial, user_id, TODAY, now)
    session.commit()
    return rental


def test_sales_list_redeemed_serials_their_customers_and_rentals(session):
    grant(session, 10)
    grant(session, 10, distributor=OTHER_DISTRIBUTOR)
    to_alice, to_bob, extends_bob, unsold = (sell(session, TODAY + days(n))
                                             for n in (30, 20, 40, 50))
    theirs = sell(session, actor=OTHER_DISTRIBUTOR)
    alice_rental = redeem(session, to_alice, ALICE, NOW)
    bob_rental = redeem(session, to_bob, BOB, NOW + dt.timedelta(minutes=1))
    redeem(session, extends_bob, BOB, NOW + dt.timedelta(minutes=2))
    redeem(session, theirs, ALICE + 100)
    rentals.edit(session, alice_rental.id, {"status": "cancelled"}, NOW)
    session.commit()

    names = Names({ALICE: "alice", BOB: "bob"})
    reply = sales.name_customers(sales.listing(session, DISTRIBUTOR.user_id, 50, 0), names)
    assert names.asked == [[ALICE, BOB]]  # one batch per page
    assert reply["total"] == 3
    assert [r["serial_id"] for r in reply["sales"]] == [extends_bob.id, to_bob.id, to_alice.id]
    newest = reply["sales"][0]
    assert newest["customer"] == {"user_id": BOB, "username": "bob"}
    assert newest["rental"] == {"rental_id": bob_rental.id, "status": "active",
                                "end_date": (TODAY + days(40)).isoformat()}
    assert (newest["plan_name"], newest["distributor_id"]) == ("standard",
                                                               DISTRIBUTOR.user_id)
    assert reply["sales"][2]["rental"]["status"] == "cancelled"
    assert all("email" not in str(row) for row in reply["sales"])
    assert reply["summary"] == {"issued": 4, "redeemed": 3, "customers": 2,
                                "active_rentals": 1}
    assert unsold.id not in [r["serial_id"] for r in reply["sales"]]

    second_page = sales.listing(session, DISTRIBUTOR.user_id, 2, 2)
    assert [r["serial_id"] for r in second_page["sales"]] == [to_alice.id]
    everyone = sales.listing(session, None, 50, 0)  # an admin's view of every distributor
    assert everyone["total"] == 4 and everyone["summary"]["customers"] == 3


def test_a_deleted_rental_or_user_leaves_the_sale_listed(session):
    grant(session, 1)
    serial = sell(session)
    rental = redeem(session, serial, ALICE)
    rentals.delete(session, rental.id)
    session.commit()
    reply = sales.name_customers(sales.listing(session, DISTRIBUTOR.user_id, 50, 0),
                                 Names({}))
    [row] = reply["sales"]
    assert row["rental"] is None and row["customer"] == {"user_id": ALICE, "username": None}


def test_whose_sales_a_caller_may_list():
    assert sales.whose(DISTRIBUTOR, None) == DISTRIBUTOR.user_id
    assert sales.whose(DISTRIBUTOR, DISTRIBUTOR.user_id) == DISTRIBUTOR.user_id
    with pytest.raises(Forbidden, match=NOT_YOURS):
        sales.whose(DISTRIBUTOR, OTHER_DISTRIBUTOR.user_id)
    assert sales.whose(ADMIN, None) is None
    assert sales.whose(ADMIN, OTHER_DISTRIBUTOR.user_id) == OTHER_DISTRIBUTOR.user_id
    assert sales.whose(Actor(3, "user"), None) == 3  # a user has sold nothing: an empty list
