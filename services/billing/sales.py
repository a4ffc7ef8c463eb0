"""A distributor's sales: the serials they issued that were redeemed, who redeemed them and
the state of the rental each made or extended (no nameko).

A customer is named by user id and username, never by e-mail address: usernames are asked
of the users service in one batch per page (``Names``). Unredeemed serials are listed by
``GET /api/serials``.
"""
from __future__ import annotations

from typing import Protocol

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from berth.actor import NOT_YOURS, Actor
from berth.db import isoformat
from berth.errors import Forbidden
from berth.queries import page
from services.billing import codes
from services.billing.models import Plan, Rental, Serial
from services.billing.schemas import RUNNING


class Names(Protocol):
    def usernames(self, user_ids: list[int]) -> dict[int, str]:
        """The username of each user id that names a user (unknown ids are left out)."""


def whose(actor: Actor, distributor_id: int | None) -> int | None:
    """Whose sales ``actor`` may list: a distributor their own (naming another is 403); an
    admin the one named, or every distributor's (None)."""
    if actor.is_admin:
        return distributor_id
    if distributor_id not in (None, actor.user_id):
        raise Forbidden(NOT_YOURS)
    return actor.user_id


def _issued_by(distributor_id: int | None):
    if distributor_id is None:
        return Serial.distributor_id.is_not(None)
    return Serial.distributor_id == distributor_id


def summary(session: Session, distributor_id: int | None) -> dict:
    """Counts over every serial the distributor issued (or every distributor's)."""
    issued = _issued_by(distributor_id)
    by_status = dict(session.execute(select(Serial.status, func.count()).where(issued)
                                     .group_by(Serial.status)).all())
    customers = session.scalar(select(func.count(distinct(Serial.used_by)))
                               .where(issued, Serial.used_by.is_not(None)))
    active = session.scalar(select(func.count(distinct(Rental.id)))
                            .join(Serial, Serial.rental_id == Rental.id)
                            .where(issued, Rental.status == RUNNING))
    return {"issued": sum(by_status.values()), "redeemed": by_status.get("used", 0),
            "customers": customers or 0, "active_rentals": active or 0}


def listing(session: Session, distributor_id: int | None, limit: int, offset: int) -> dict:
    """One page of redeemed serials, newest redemption first, with ``customer`` holding
    only the user id (``name_customers`` adds the usernames), and the summary."""
    statement = select(Serial).where(_issued_by(distributor_id), Serial.status == "used")
    serials, total = page(session, statement, (Serial.used_at.desc(), Serial.id.desc()),
                          limit, offset)
    rental_ids = {s.rental_id for s in serials if s.rental_id is not None}
    plan_ids = {s.plan_id for s in serials if s.plan_id is not None}
    rentals = {r.id: r for r in session.scalars(select(Rental).where(Rental.id.in_(rental_ids)))}
    plans = {p.id: p for p in session.scalars(select(Plan).where(Plan.id.in_(plan_ids)))}
    rows = []
    for serial in serials:
        rental, plan = rentals.get(serial.rental_id), plans.get(serial.plan_id)
        rows.append({
            "serial_id": serial.id, "serial_code": codes.display(serial.code),
            "distributor_id": serial.distributor_id, "plan_id": serial.plan_id,
            "plan_name": plan.name if plan is not None else None,
            "expiry_date": serial.expiry_date.isoformat(), "used_at": isoformat(serial.used_at),
            "customer": {"user_id": serial.used_by, "username": None},
            "rental": None if rental is None else {
                "rental_id": rental.id, "status": rental.status,
                "end_date": rental.end_date.isoformat()}})
    return {"sales": rows, "total": total, "summary": summary(session, distributor_id)}


def name_customers(reply: dict, names: Names) -> dict:
    """Fill in each customer's username, asking for the whole page at once (a user deleted
    since keeps their id, username null)."""
    ids = sorted({row["customer"]["user_id"] for row in reply["sales"]
                  if row["customer"]["user_id"] is not None})
    known = names.usernames(ids) if ids else {}
    for row in reply["sales"]:
        row["customer"]["username"] = known.get(row["customer"]["user_id"])
    return reply
