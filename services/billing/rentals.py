"""Rentals: created or extended by redeeming serials, renewed, expired, reminded about.

A rental's state is one of ``schemas.RENTAL_STATES``: ``active`` (running; a user has at most
one), ``expired``, ``cancelled``. Being renewed is not a state: ``renewed_at`` records when the
rental last became ``rental_renewed`` (its end moved later, or it was made to run again).
Every state change returns the event that describes it; the service records it in the outbox
in the same transaction.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from berth.db import insert_once, isoformat, utcnow
from berth.errors import BadRequest, Conflict, Forbidden, NotFound
from berth.events import (Event, RentalExpired, RentalExpiryReminderDue, RentalPlanChanged,
                          RentalRenewed, RentalStarted)
from berth.queries import get_or_404, page
from services.billing import plans, serials, suspension
from services.billing.models import Plan, Rental, RentalReminder, Serial
from services.billing.schemas import RUNNING


def to_row(rental: Rental) -> dict:
    return {"rental_id": rental.id, "status": rental.status,
            "start_date": rental.start_date.isoformat(), "end_date": rental.end_date.isoformat(),
            "serial_id": rental.serial_id, "renewed_at": isoformat(rental.renewed_at),
            "plan_id": rental.plan_id, **suspension_of(rental)}


def suspension_of(rental: Rental) -> dict:
    """Whether the rental is suspended, since when and why (``suspension.py``)."""
    return {"suspended_at": isoformat(rental.suspended_at),
            "suspension_reason": rental.suspension_reason}


def current(session: Session, user_id: int, lock: bool = False) -> Rental | None:
    """The user's running rental; ``lock`` holds its row until commit (PostgreSQL)."""
    query = select(Rental).where(Rental.user_id == user_id, Rental.status == RUNNING)
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def get(session: Session, rental_id: int) -> Rental:
    return get_or_404(session, Rental, rental_id)


def redeem(session: Session, serial: Serial, user_id: int, today: dt.date,
           now: dt.datetime) -> tuple[Rental, Event]:
    """Use a rental serial: start the user's rental on the serial's plan, or extend it to the
    serial's date. A running rental is extended only by a serial of its own plan: one of
    another plan is refused (409) and stays unused, to be redeemed when the rental has ended
    or after an admin moved the rental to that plan (``edit`` with ``plan_id``). The
    distributor who issued a serial cannot redeem it (403; it stays valid)."""
    serials.refuse_unusable(serial, today, "rental", "Not a rental serial")
    if serial.issued_to_user_id is not None and serial.issued_to_user_id != user_id:
        raise Forbidden("This serial was issued to another user")
    if serial.distributor_id is not None and serial.distributor_id == user_id:
        raise Forbidden("You issued this serial: a distributor sells their serials, they "
                        "cannot redeem them")
    # the lock makes concurrent redeems by one user take turns, each seeing the end date the
    # previous one wrote, so a serial that no longer extends the rental is refused unused
    running = current(session, user_id, lock=True)
    plan = plans.get(session, serial.plan_id) if serial.plan_id else plans.default_plan(session)
    if running is not None and (running.plan_id or plan.id) != plan.id:
        on = plans.get(session, running.plan_id)
        raise Conflict(f"Your rental runs on plan {on.name} until "
                       f"{running.end_date.isoformat()}; this serial is for plan {plan.name}: "
                       f"redeem it when the rental has ended")
    if running is not None and running.end_date >= serial.expiry_date:
        raise Conflict(f"Your rental already runs until {running.end_date.isoformat()}")
    if not serials.claim(session, serial, user_id, now):
        raise Conflict("Serial already used")
    if running is None:
        rental = Rental(user_id=user_id, serial_id=serial.id, status=RUNNING,
                        start_date=today, end_date=serial.expiry_date, plan_id=plan.id)
        session.add(rental)
        try:
            session.flush()
        except IntegrityError:  # a concurrent redeem of another serial started one first
            session.rollback()
            raise Conflict("Another redeem for this user is in progress; try again") from None
        suspension.carry_over(session, user_id, rental)
        event = RentalStarted.new(rental_id=rental.id, user_id=user_id,
                                  start_date=today.isoformat(),
                                  end_date=rental.end_date.isoformat())
    else:
        previous = running.end_date
        running.end_date, running.renewed_at = serial.expiry_date, now
        running.plan_id = plan.id
        rental = running
        event = RentalRenewed.new(rental_id=rental.id, user_id=user_id,
                                  end_date=rental.end_date.isoformat(),
                                  previous_end_date=previous.isoformat(),
                                  suspended=rental.suspended_at is not None)
    serial.rental_id = rental.id
    return rental, event


def renew(session: Session, rental_id: int, new_end: dt.date, today: dt.date,
          now: dt.datetime) -> tuple[Rental, Event]:
    """Move a rental's end later; one that had ended runs again (``active``)."""
    rental = get(session, rental_id)
    if new_end <= rental.end_date:
        raise BadRequest("Invalid data", [{
            "field": "new_expiry_date",
            "message": f"must be later than the current end date {rental.end_date}"}])
    if new_end < today:
        raise BadRequest("Invalid data", [{"field": "new_expiry_date",
                                          "message": "must not be in the past"}])
    if rental.status != RUNNING:
        other = current(session, rental.user_id)
        if other is not None:
            raise Conflict(f"User {rental.user_id} already has a running rental "
                           f"({other.id})")
    previous = rental.end_date
    rental.end_date, rental.status, rental.renewed_at = new_end, RUNNING, now
    return rental, RentalRenewed.new(rental_id=rental.id, user_id=rental.user_id,
                                     end_date=new_end.isoformat(),
                                     previous_end_date=previous.isoformat(),
                                     suspended=rental.suspended_at is not None)


def history(session: Session, user_id: int) -> list[dict]:
    rows = session.scalars(select(Rental).where(Rental.user_id == user_id)
                           .order_by(Rental.start_date.desc(), Rental.id.desc()))
    return [to_row(r) for r in rows]


def edit(session: Session, rental_id: int, changes: dict, now: dt.datetime
         ) -> tuple[Rental, list[Event]]:
    """An admin's correction. One that stops a running rental is a ``rental_expired`` (its
    containers stop); one that makes a rental run again is a ``rental_renewed``; one that
    moves it to another plan a ``rental_plan_changed``. The seed's word ``renewed`` is taken
    as ``active``."""
    rental = get(session, rental_id)
    start = changes.get("start_date") or rental.start_date
    end = changes.get("end_date") or rental.end_date
    if end < start:
        raise BadRequest("Invalid data", [{"field": "end_date",
                                          "message": "must not be before start_date"}])
    status = changes.get("status") or rental.status
    if status == "renewed":
        status = RUNNING
    if status == RUNNING and rental.status != RUNNING:
        other = current(session, rental.user_id)
        if other is not None and other.id != rental.id:
            raise Conflict(f"User {rental.user_id} already has a running rental ({other.id})")
    events: list[Event] = []
    if changes.get("plan_id") is not None:
        if session.get(Plan, changes["plan_id"]) is None:
            raise BadRequest("Invalid data", [{"field": "plan_id",
                                              "message": f"no plan {changes['plan_id']}"}])
        if changes["plan_id"] != rental.plan_id:
            events.append(RentalPlanChanged.new(
                rental_id=rental.id, user_id=rental.user_id, end_date=end.isoformat(),
                from_plan_id=rental.plan_id, plan_id=changes["plan_id"]))
        rental.plan_id = changes["plan_id"]
    was_running, previous_end = rental.status == RUNNING, rental.end_date
    rental.start_date, rental.end_date, rental.status = start, end, status
    event = _running_change(rental, was_running, previous_end)
    if isinstance(event, RentalRenewed):
        rental.renewed_at = now
    return rental, events + ([event] if event is not None else [])


def _running_change(rental: Rental, was_running: bool, previous_end: dt.date) -> Event | None:
    fields = {"rental_id": rental.id, "user_id": rental.user_id,
              "end_date": rental.end_date.isoformat()}
    if was_running and rental.status != RUNNING:
        return RentalExpired.new(**fields)
    if not was_running and rental.status == RUNNING:
        return RentalRenewed.new(**fields, previous_end_date=previous_end.isoformat(),
                                 suspended=rental.suspended_at is not None)
    return None


def _removed(rental: Rental) -> Event | None:
    """Deleting a running rental ends it: its containers must stop."""
    if rental.status != RUNNING:
        return None
    return RentalExpired.new(rental_id=rental.id, user_id=rental.user_id,
                             end_date=rental.end_date.isoformat())


def delete(session: Session, rental_id: int) -> Event | None:
    rental = get(session, rental_id)
    session.delete(rental)
    return _removed(rental)


def delete_for_serial(session: Session, serial_id: int) -> tuple[Rental, Event | None]:
    """Delete the rental a serial started or extended; returns it and the event to send."""
    serial = session.get(Serial, serial_id)
    rental_id = serial.rental_id if serial is not None else None
    if rental_id is None:
        rental = session.scalar(select(Rental).where(Rental.serial_id == serial_id))
    else:
        rental = session.get(Rental, rental_id)
    if rental is None:
        raise NotFound(f"No rental for serial {serial_id}")
    session.delete(rental)
    return rental, _removed(rental)


def info(session: Session, user_id: int) -> dict:
    rental = current(session, user_id) or session.scalar(
        select(Rental).where(Rental.user_id == user_id, Rental.status != "cancelled")
        .order_by(Rental.end_date.desc()).limit(1))
    if rental is None:
        return {"user_id": user_id, "rental_status": "none", "rental_expiry": None,
                "rental_id": None, "plan": None, "suspended_at": None,
                "suspension_reason": None}
    plan = plans.get(session, rental.plan_id) if rental.plan_id else plans.default_plan(session)
    return {"user_id": user_id, "rental_status": rental.status,  # active or expired
            "rental_expiry": rental.end_date.isoformat(), "rental_id": rental.id,
            "plan": plans.plan_row(session, plan), **suspension_of(rental)}


def past_end(session: Session, today: dt.date) -> list[dict]:
    rows = session.scalars(select(Rental).where(Rental.end_date < today,
                                                Rental.status != "cancelled")
                           .order_by(Rental.end_date, Rental.id))
    return [{"rental_id": r.id, "user_id": r.user_id, "expiry_date": r.end_date.isoformat()}
            for r in rows]


def ending_within(session: Session, today: dt.date, days: int, limit: int,
                  offset: int) -> tuple[list[dict], int]:
    """Running rentals whose end date is today up to ``days`` days ahead, soonest first (a
    page of them, and how many in all); usernames are the caller's to add."""
    rows, total = page(session, select(Rental).where(
        Rental.status == RUNNING, Rental.end_date >= today,
        Rental.end_date <= today + dt.timedelta(days=days)), (Rental.end_date, Rental.id),
        limit, offset)
    return [{"rental_id": r.id, "user_id": r.user_id, "end_date": r.end_date.isoformat(),
             "days_left": (r.end_date - today).days, "plan_id": r.plan_id,
             "suspended_at": isoformat(r.suspended_at)} for r in rows], total


def expire_due(session: Session, today: dt.date) -> list[Event]:
    """Running rentals whose end_date has passed become ``expired``, each exactly once: the
    conditional UPDATE lets only one of several overlapping passes expire a rental."""
    events = []
    due = session.execute(select(Rental.id, Rental.user_id, Rental.end_date)
                          .where(Rental.status == RUNNING, Rental.end_date < today)).all()
    for rental_id, user_id, end_date in due:
        won = session.execute(
            update(Rental).where(Rental.id == rental_id, Rental.status == RUNNING,
                                 Rental.end_date < today)
            .values(status="expired", updated_at=utcnow())
            .execution_options(synchronize_session="fetch")).rowcount == 1
        if won:
            events.append(RentalExpired.new(rental_id=rental_id, user_id=user_id,
                                            end_date=end_date.isoformat()))
    return events


def threshold_for(days_left: int, thresholds: tuple[int, ...]) -> int | None:
    """The reminder due with ``days_left`` days to go: the smallest threshold >= days_left.

    A rental first seen 5 days before its end gets the 7-day reminder (saying 5 days), then
    the 3- and 1-day ones; every reminder goes once per (rental, threshold, end date).
    """
    fitting = [t for t in sorted(thresholds) if t >= days_left]
    return fitting[0] if fitting and days_left >= 0 else None


def due_reminders(session: Session, today: dt.date, thresholds: tuple[int, ...]
                  ) -> list[Event]:
    """Record and return the reminders due today that were never sent (each exactly once:
    the reminder row is inserted only if its (rental, threshold, end date) is new)."""
    if not thresholds:
        return []
    horizon = today + dt.timedelta(days=max(thresholds))
    events = []
    for rental in session.scalars(select(Rental).where(Rental.status == RUNNING,
                                                       Rental.end_date >= today,
                                                       Rental.end_date <= horizon)):
        days_left = (rental.end_date - today).days
        threshold = threshold_for(days_left, thresholds)
        if threshold is None:
            continue
        if not insert_once(session, RentalReminder, rental_id=rental.id,
                           days_before=threshold, end_date=rental.end_date, sent_at=utcnow()):
            continue
        events.append(RentalExpiryReminderDue.new(
            rental_id=rental.id, user_id=rental.user_id,
            end_date=rental.end_date.isoformat(), days_left=days_left))
    return events
