"""Distributor allotments: what a distributor may still sell of each plan (no nameko).

An admin grants a distributor an allotment per plan, counted in one of two units:

- ``serials``: each rental serial of that plan the distributor generates takes one;
- ``days``: each takes the days from the day it is generated to its ``expiry_date`` (the
  most it can buy: a rental it starts runs until that date, one it extends ends then).

An allotment row holds its balance in ``serials_left`` or ``days_left``, the other NULL. The
admin adds to it, or takes back with a negative amount, never below zero (409). An allotment
whose balance is zero may be granted again in the other unit; one with something left may
not (take it back first). Every grant or take-back is an ``allotment_changed`` event.

Generating takes the units in the transaction that inserts the serial, with a conditional
UPDATE (``... WHERE serials_left >= 1``), so concurrent generates never spend more than is
there; with nothing left (or no allotment of that plan) it is a 409 naming the plan and what
is left. Spending is not an event: the serial itself is the record of it. Serials an admin
generates use no allotment.
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from berth.db import insert_once, isoformat
from berth.errors import BadRequest, Conflict
from berth.events import AllotmentChanged
from services.billing.models import Allotment, Plan

if TYPE_CHECKING:
    from services.billing.distributors import Accounts

UNITS = ("serials", "days")
INVALID = "Invalid allotment data"
_COLUMNS = {"serials": Allotment.serials_left, "days": Allotment.days_left}


def unit_of(allotment: Allotment) -> str:
    return "serials" if allotment.serials_left is not None else "days"


def balance_of(allotment: Allotment) -> int:
    return allotment.serials_left if allotment.serials_left is not None else allotment.days_left


def _left(allotment: Allotment) -> str:
    return f"{balance_of(allotment)} {unit_of(allotment)} left"


def to_row(allotment: Allotment, plan: Plan) -> dict:
    return {"plan_id": plan.id, "plan_name": plan.name, "unit": unit_of(allotment),
            "serials_left": allotment.serials_left, "days_left": allotment.days_left,
            "updated_at": isoformat(allotment.updated_at)}


def requested_change(serials: int | None, days: int | None) -> tuple[str, int]:
    """The unit and the amount of a grant body: exactly one of ``serials`` and ``days``,
    not zero (400 naming the field otherwise)."""
    given = [(unit, amount) for unit, amount in (("serials", serials), ("days", days))
             if amount is not None]
    if len(given) != 1:
        raise BadRequest(INVALID, [{"field": "days" if given else "serials",
                                    "message": "give exactly one of serials and days"}])
    unit, amount = given[0]
    if amount == 0:
        raise BadRequest(INVALID, [{"field": unit, "message": "must not be 0 (a negative "
                                                              "amount takes back)"}])
    return unit, amount


def require_distributor(accounts: Accounts, user_id: int) -> dict:
    """The user, if a distributor: 404 for no such user, 409 for another role."""
    contact = accounts.contact(user_id)
    if contact["role"] != "distributor":
        raise Conflict(f"User {user_id} is not a distributor (their role is "
                       f"{contact['role']}): only a distributor sells from an allotment")
    return contact


def _plan(session: Session, plan_id: int) -> Plan:
    plan = session.get(Plan, plan_id)
    if plan is None:
        raise BadRequest(INVALID, [{"field": "plan_id", "message": f"no plan {plan_id}"}])
    return plan


def _reread(session: Session, distributor_id: int, plan_id: int) -> Allotment | None:
    return session.get(Allotment, (distributor_id, plan_id), populate_existing=True)


def change(session: Session, distributor_id: int, plan_id: int, unit: str, amount: int,
           actor_id: int | None) -> tuple[Allotment, Plan, AllotmentChanged]:
    """Add ``amount`` (negative: take back) ``unit`` to the distributor's allotment of the
    plan. Relative UPDATEs, so a grant and concurrent generates never lose each other's
    change. Returns the allotment, its plan and the event to record."""
    plan = _plan(session, plan_id)
    if amount > 0 and plan.retired_at is not None:
        raise Conflict(f"Plan {plan.name} is retired and sells no more")
    column = _COLUMNS[unit]
    other_unit = "days" if unit == "serials" else "serials"
    other = _COLUMNS[other_unit]
    key = (Allotment.distributor_id == distributor_id, Allotment.plan_id == plan_id)
    # a first grant starts from zero; without a commit (a refused take-back) it never was
    insert_once(session, Allotment, distributor_id=distributor_id, plan_id=plan_id,
                **{column.key: 0})
    added = session.execute(
        update(Allotment).where(*key, column.is_not(None), column + amount >= 0)
        .values({column: column + amount})
        .execution_options(synchronize_session=False)).rowcount == 1
    if not added:
        current = _reread(session, distributor_id, plan_id)
        if unit_of(current) == unit:
            raise Conflict(f"Distributor {distributor_id} has {_left(current)} of plan "
                           f"{plan.name}: {-amount} cannot be taken back")
        if amount < 0 or balance_of(current) != 0:
            raise Conflict(f"Distributor {distributor_id}'s allotment of plan {plan.name} is "
                           f"counted in {other_unit} ({_left(current)}): grant {other_unit}, "
                           f"or take them back first")
        switched = session.execute(
            update(Allotment).where(*key, other == 0).values({column: amount, other: None})
            .execution_options(synchronize_session=False)).rowcount == 1
        if not switched:
            raise Conflict("The allotment changed meanwhile; try again")
    allotment = _reread(session, distributor_id, plan_id)
    event = AllotmentChanged.new(distributor_id=distributor_id, plan_id=plan_id, unit=unit,
                                 change=amount, balance=balance_of(allotment),
                                 actor_id=actor_id)
    return allotment, plan, event


def of(session: Session, distributor_id: int) -> list[dict]:
    """The distributor's allotments, one per plan (those spent to zero too)."""
    rows = session.execute(select(Allotment, Plan).join(Plan, Plan.id == Allotment.plan_id)
                           .where(Allotment.distributor_id == distributor_id)
                           .order_by(Allotment.plan_id)).all()
    return [to_row(allotment, plan) for allotment, plan in rows]


def cost(allotment: Allotment, expiry_date: dt.date, today: dt.date) -> int:
    """What one serial expiring on ``expiry_date`` takes of this allotment."""
    return 1 if unit_of(allotment) == "serials" else (expiry_date - today).days


def spend(session: Session, distributor_id: int, plan: Plan, expiry_date: dt.date,
          today: dt.date) -> None:
    """Take what one serial of ``plan`` expiring on ``expiry_date`` costs from the
    distributor's allotment, in the caller's transaction; 409 naming the plan and what is
    left if that is not enough (or there is no allotment of the plan)."""
    allotment = _reread(session, distributor_id, plan.id)
    if allotment is None:
        raise Conflict(f"You have no allotment of plan {plan.name}: ask an admin for one")
    column = _COLUMNS[unit_of(allotment)]
    price = cost(allotment, expiry_date, today)
    spent = session.execute(
        update(Allotment).where(Allotment.distributor_id == distributor_id,
                                Allotment.plan_id == plan.id, column >= price)
        .values({column: column - price})
        .execution_options(synchronize_session=False)).rowcount == 1
    if not spent:
        allotment = _reread(session, distributor_id, plan.id)
        needed = "" if unit_of(allotment) == "serials" else \
            f"; a serial expiring {expiry_date.isoformat()} takes {price} days"
        raise Conflict(f"Your allotment of plan {plan.name} has {_left(allotment)}{needed}")
