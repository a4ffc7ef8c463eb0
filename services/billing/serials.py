"""Serials: generate, check, list, update, delete, and the atomic claim behind redeeming."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from berth.actor import Actor
from berth.db import isoformat
from berth.errors import BadRequest, Conflict, Forbidden
from berth.queries import get_or_404, one_or_404, page
from services.billing import allotments, codes, plans
from services.billing.models import Serial

INVALID_CODE = "Invalid serial code"


def effective_status(serial: Serial, today: dt.date) -> str:
    """``expired`` as soon as an unused serial passes its date, before any sweep runs."""
    if serial.status == "valid" and serial.expiry_date < today:
        return "expired"
    return serial.status


def may_see_assignee(serial: Serial, actor: Actor) -> bool:
    """Whose address a serial's ``issued_to`` may show: an admin's, or the assignee's own.
    A distributor (or anyone else signed in) checking a code learns nothing about users."""
    return actor.is_admin or (serial.issued_to_user_id is not None
                              and serial.issued_to_user_id == actor.user_id)


def sold_to(session: Session, distributor_id: int, user_id: int) -> bool:
    """Whether ``user_id`` redeemed a serial ``distributor_id`` issued: one of their
    customers, the only users a distributor may name."""
    return session.scalar(select(Serial.id).where(
        Serial.distributor_id == distributor_id, Serial.used_by == user_id).limit(1)) is not None


def to_check(serial: Serial, today: dt.date) -> dict:
    return {"serial_code": codes.display(serial.code), "status": effective_status(serial, today),
            "issued_to": serial.issued_to_email, "serial_id": serial.id, "type": serial.type,
            "expiry_date": serial.expiry_date.isoformat(), "plan_id": serial.plan_id}


def to_row(serial: Serial, today: dt.date, show_assignee: bool = True) -> dict:
    row = {**to_check(serial, today), "distributor_id": serial.distributor_id,
           "used_by": serial.used_by, "created_at": isoformat(serial.created_at)}
    if not show_assignee:
        row["issued_to"] = None  # a distributor does not get to collect customers' e-mails
    return row


def generate(session: Session, actor: Actor, serial_type: str, expiry_date: dt.date,
             today: dt.date, assignee: dict | None = None, plan_id: int | None = None,
             horizon_days: int | None = None) -> Serial:
    """A new serial; distributors make rental serials only, tagged with themselves, expiring
    at most ``horizon_days`` after today (BERTH_DISTRIBUTOR_MAX_DAYS), each paid for from
    their allotment of its plan in this transaction (services.billing.allotments). A rental
    serial sells ``plan_id``'s plan (by default the default plan); a distributor serial none."""
    is_distributor = actor.role == "distributor"
    if is_distributor and serial_type != "rental":
        raise Forbidden("Distributors may only generate rental serials")
    if expiry_date <= today:
        raise BadRequest("Invalid data", [{"field": "expiry_date",
                                          "message": "must be a date after today"}])
    if is_distributor and horizon_days is not None \
            and (expiry_date - today).days > horizon_days:
        raise BadRequest("Invalid data", [{
            "field": "expiry_date",
            "message": f"a distributor's serial may expire at most {horizon_days} days from "
                       f"today ({(today + dt.timedelta(days=horizon_days)).isoformat()})"}])
    if serial_type != "rental" and plan_id is not None:
        raise BadRequest("Invalid data", [{"field": "plan_id",
                                          "message": "only rental serials sell a plan"}])
    plan = plans.for_sale(session, plan_id) if serial_type == "rental" else None
    for _ in range(5):  # a collision of 95 random bits will not happen; be safe anyway
        serial = Serial(code=codes.generate(), type=serial_type, status="valid",
                        expiry_date=expiry_date, created_by=actor.user_id,
                        distributor_id=actor.user_id if is_distributor else None,
                        issued_to_user_id=assignee and assignee["user_id"],
                        issued_to_email=assignee and assignee["email"],
                        plan_id=plan.id if plan is not None else None)
        session.add(serial)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            continue
        if is_distributor:  # after the insert: a retry's rollback must not undo the spend
            allotments.spend(session, actor.user_id, plan, expiry_date, today)
        return serial
    raise Conflict("Could not allocate a unique serial code; try again")


def find(session: Session, text: str) -> Serial:
    """Look a code up; a malformed one (bad check symbol) never reaches the database."""
    code = codes.normalise(text)
    if code is None:
        raise BadRequest(INVALID_CODE)
    return one_or_404(session, select(Serial).where(Serial.code == code), "Serial not found")


def get(session: Session, serial_id: int) -> Serial:
    return get_or_404(session, Serial, serial_id)


def listing(session: Session, actor: Actor, limit: int, offset: int,
            today: dt.date) -> dict:
    """Admins see every serial; a distributor only those they issued."""
    query = select(Serial)
    if not actor.is_admin:
        query = query.where(Serial.distributor_id == actor.user_id)
    rows, total = page(session, query, (Serial.id.desc(),), limit, offset)
    return {"serials": [to_row(s, today, show_assignee=actor.is_admin) for s in rows],
            "total": total}


def used_distributor_serial(session: Session, user_id: int) -> Serial | None:
    return session.scalar(select(Serial).where(Serial.type == "distributor",
                                               Serial.status == "used",
                                               Serial.used_by == user_id).limit(1))


def change(session: Session, serial_id: int, changes: dict) -> Serial:
    serial = get(session, serial_id)
    if "serial_code" in changes and changes["serial_code"] is not None:
        code = codes.normalise(changes["serial_code"])
        if code is None:
            raise BadRequest(INVALID_CODE)
        if code != serial.code:
            if session.scalar(select(Serial.id).where(Serial.code == code)) is not None:
                raise Conflict("That serial code is already taken")
            serial.code = code
    if changes.get("expiry_date") is not None:
        serial.expiry_date = changes["expiry_date"]
    if changes.get("status") is not None:
        if serial.status == "used":
            raise Conflict("A used serial cannot be revoked or reinstated")
        serial.status = changes["status"]
    if serial.status == "expired" and changes.get("expiry_date") is not None:
        serial.status = "valid"  # a new date revives a serial that lapsed unused
    return serial


def claim(session: Session, serial: Serial, user_id: int, now: dt.datetime) -> bool:
    """Mark a valid serial used by ``user_id``; exactly one of two concurrent claims wins."""
    result = session.execute(
        update(Serial).where(Serial.id == serial.id, Serial.status == "valid")
        .values(status="used", used_by=user_id, used_at=now)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return False
    session.refresh(serial)
    return True


def refuse_unusable(serial: Serial, today: dt.date, expected_type: str, message: str) -> None:
    """Raise the right error if this serial cannot be redeemed now."""
    if serial.type != expected_type:
        raise BadRequest(message, [{"field": "serial_code",
                                    "message": f"this is a {serial.type} serial"}])
    status = effective_status(serial, today)
    if status != "valid":
        raise Conflict({"used": "Serial already used", "expired": "Serial has expired",
                        "revoked": "Serial has been revoked"}[status])


def expire_lapsed(session: Session, today: dt.date) -> int:
    result = session.execute(update(Serial)
                             .where(Serial.status == "valid", Serial.expiry_date < today)
                             .values(status="expired")
                             .execution_options(synchronize_session=False))
    return result.rowcount
