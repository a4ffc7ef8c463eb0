"""Suspending a rental at its plan's traffic quota, and resuming it (no nameko).

Traffic decides who is over their quota (``traffic_quota_exceeded``) and who is within it again
(``traffic_quota_cleared``: a raised limit, a larger plan, a new month). Billing decides what
that means for the rental: a plan whose ``quota_action`` is ``suspend`` suspends the user's
running rental (``rental_suspended``: containers stops their containers and refuses to start
them); the clearing of that month's notice, or an admin, resumes it (``rental_resumed``). A
plan whose action is ``alert`` only gets the alert and the mail, as before.

The suspension is on the rental row, so it outlives renewals (a renewed rental stays suspended:
``rental_renewed`` says so) and ends only by being resumed. An admin's resume holds for the
rest of the month: traffic sends no new ``traffic_quota_exceeded`` while that month's notice is
open.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from berth.errors import Conflict
from berth.events import (Event, RentalResumed, RentalSuspended, TrafficQuotaCleared,
                          TrafficQuotaExceeded)
from services.billing import plans, rentals
from services.billing.models import Plan, Rental
from services.billing.schemas import RUNNING


def reason(event: TrafficQuotaExceeded) -> str:
    """What the customer reads: ``traffic quota reached on 2026-12-14`` (UTC day)."""
    return f"traffic quota reached on {event.occurred_at[:10]}"


def lock_user(session: Session, user_id: int) -> None:
    """Hold every rental row of the user until commit (PostgreSQL): the quota handlers of one
    user take turns, so the one that runs second sees what the first one did."""
    session.execute(select(Rental.id).where(Rental.user_id == user_id).with_for_update())


def on_quota_exceeded(session: Session, event: TrafficQuotaExceeded, now: dt.datetime,
                      open_month: Callable[[], str | None]) -> Event | None:
    """Suspend the user's running rental if its plan says so. ``open_month()`` asks traffic,
    under the user's lock, the month of the user's open notice (None: none is open): events
    of different types arrive in any order, so an ``exceeded`` whose notice has closed since
    (a raised limit, the month's end: its ``cleared`` may have been handled first) suspends
    nothing."""
    lock_user(session, event.user_id)
    rental = rentals.current(session, event.user_id, lock=True)
    if rental is None or open_month() != event.month:
        return None
    if rental.suspended_at is not None:  # still over, in a later month: the same suspension
        rental.suspended_month = max(rental.suspended_month or event.month, event.month)
        return None
    plan = plans.get(session, rental.plan_id) if rental.plan_id else plans.default_plan(session)
    if plan.quota_action != "suspend":
        return None
    rental.suspended_at, rental.suspended_month = now, event.month
    rental.suspension_reason = reason(event)
    return RentalSuspended.new(rental_id=rental.id, user_id=rental.user_id,
                               end_date=rental.end_date.isoformat(),
                               reason=rental.suspension_reason, month=event.month,
                               used_bytes=event.used_bytes, limit_bytes=event.limit_bytes)


def on_quota_cleared(session: Session, event: TrafficQuotaCleared) -> Event | None:
    """Resume the rental suspended for passing the quota of ``event.month``, if any."""
    lock_user(session, event.user_id)
    rental = session.scalar(select(Rental).where(Rental.user_id == event.user_id,
                                                 Rental.suspended_month == event.month,
                                                 Rental.suspended_at.is_not(None))
                            .order_by(Rental.id.desc()).limit(1))
    return None if rental is None else _resume(rental, event.cause)


def carry_over(session: Session, user_id: int, new: Rental) -> None:
    """A new rental of a user whose last one ended suspended takes the suspension over: buying
    a rental does not lift a quota the user is still over (the month's end, a raised limit or
    an admin does)."""
    old = session.scalar(select(Rental).where(Rental.user_id == user_id, Rental.id != new.id,
                                              Rental.suspended_at.is_not(None))
                         .order_by(Rental.id.desc()).limit(1))
    if old is None:
        return
    new.suspended_at, new.suspension_reason = old.suspended_at, old.suspension_reason
    new.suspended_month = old.suspended_month
    old.suspended_at = old.suspension_reason = old.suspended_month = None


def resume(session: Session, user_id: int, actor_id: int) -> tuple[Rental, Event]:
    """An admin lifts the user's suspension (409 when none)."""
    rental = session.scalar(select(Rental).where(Rental.user_id == user_id,
                                                 Rental.suspended_at.is_not(None))
                            .order_by(Rental.id.desc()).limit(1).with_for_update())
    if rental is None:
        raise Conflict(f"User {user_id}'s rental is not suspended")
    return rental, _resume(rental, "admin", actor_id)


def _resume(rental: Rental, cause: str, actor_id: int | None = None) -> Event:
    rental.suspended_at = rental.suspension_reason = rental.suspended_month = None
    return RentalResumed.new(rental_id=rental.id, user_id=rental.user_id,
                             end_date=rental.end_date.isoformat(), cause=cause,
                             running=rental.status == RUNNING, actor_id=actor_id)


def plan_quotas(session: Session, user_ids: list[int]) -> dict[int, int]:
    """user id -> the monthly traffic quota of their rental's plan (the running one, else the
    latest that ended: a suspended rental that expires keeps its quota, so its notice does not
    close as if the limit were raised), for the users of ``user_ids`` whose plan sets one (the
    others: traffic's default)."""
    quotas: dict[int, int] = {}
    ids = sorted(set(user_ids))
    default = plans.default_plan(session).traffic_quota_bytes
    for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
        seen: set[int] = set()
        for user_id, plan_id, quota in session.execute(
                select(Rental.user_id, Rental.plan_id, Plan.traffic_quota_bytes)
                .outerjoin(Plan, Plan.id == Rental.plan_id)
                .where(Rental.status != "cancelled", Rental.user_id.in_(chunk))
                .order_by(Rental.user_id, (Rental.status == RUNNING).desc(),
                          Rental.end_date.desc(), Rental.id.desc())):
            if user_id in seen:
                continue  # the first row of each user is their rental (as rental_info says)
            seen.add(user_id)
            quota = quota if plan_id is not None else default
            if quota is not None:
                quotas[user_id] = quota
    return quotas
