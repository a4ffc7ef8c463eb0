"""Suspending a rental at its plan's traffic quota and resuming it (services.billing.suspension),
on SQLite sessions, with the events traffic would send."""
from __future__ import annotations

import pytest

from berth.errors import Conflict
from berth.events import (RentalRenewed, RentalResumed, RentalSuspended, TrafficQuotaCleared,
                          TrafficQuotaExceeded)
from services.billing import plans, rentals, suspension
from services.billing.tests.test_domain import (ALICE, BOB, NOW, TODAY, days, engine,  # noqa: F401
                                                new_serial, session, start_rental)

MONTH = "2024-06"


def OPEN() -> str:  # traffic says: the notice of MONTH is open
    return MONTH


def exceeded(user_id=ALICE["user_id"], month=MONTH) -> TrafficQuotaExceeded:
    return TrafficQuotaExceeded.new(user_id=user_id, month=month, used_bytes=2000,
                                    limit_bytes=1000)


def cleared(user_id=ALICE["user_id"], month=MONTH, cause="limit_raised") -> TrafficQuotaCleared:
    return TrafficQuotaCleared.new(user_id=user_id, month=month, cause=cause, used_bytes=2000,
                                   limit_bytes=5000)


def policy(session, action: str, quota: int | None = 1000) -> None:
    default = plans.default_plan(session)
    default.quota_action, default.traffic_quota_bytes = action, quota
    session.commit()


def test_a_suspend_plan_suspends_the_running_rental_once_and_says_why(session):
    policy(session, "suspend")
    rental = start_rental(session)
    event = exceeded()
    suspended = suspension.on_quota_exceeded(session, event, NOW, OPEN)
    session.commit()
    assert isinstance(suspended, RentalSuspended)
    reason = f"traffic quota reached on {event.occurred_at[:10]}"
    assert (suspended.rental_id, suspended.user_id, suspended.reason, suspended.month) == (
        rental.id, ALICE["user_id"], reason, MONTH)
    info = rentals.info(session, ALICE["user_id"])
    assert (info["rental_status"], info["suspension_reason"]) == ("active", reason)
    assert info["suspended_at"] is not None
    assert suspension.on_quota_exceeded(session, exceeded(), NOW, OPEN) is None  # already


def test_an_alert_plan_or_no_running_rental_suspends_nothing(session):
    policy(session, "alert")
    start_rental(session)
    assert suspension.on_quota_exceeded(session, exceeded(), NOW, OPEN) is None
    policy(session, "suspend")
    assert suspension.on_quota_exceeded(session, exceeded(BOB["user_id"]), NOW, OPEN) is None
    assert rentals.info(session, ALICE["user_id"])["suspension_reason"] is None


def test_the_month_s_notice_clearing_resumes_only_that_month_s_suspension(session):
    policy(session, "suspend")
    rental = start_rental(session)
    suspension.on_quota_exceeded(session, exceeded(), NOW, OPEN)
    session.commit()
    assert suspension.on_quota_cleared(session, cleared(month="2024-05")) is None
    resumed = suspension.on_quota_cleared(session, cleared(cause="new_month"))
    session.commit()
    assert isinstance(resumed, RentalResumed)
    assert (resumed.rental_id, resumed.cause, resumed.running) == (rental.id, "new_month", True)
    assert rentals.info(session, ALICE["user_id"])["suspension_reason"] is None
    assert suspension.on_quota_cleared(session, cleared()) is None  # nothing left to resume


def test_a_renewed_suspended_rental_stays_suspended_and_says_so(session):
    policy(session, "suspend")
    start_rental(session, end=TODAY + days(10))
    suspension.on_quota_exceeded(session, exceeded(), NOW, OPEN)
    session.commit()
    serial = new_serial(session, TODAY + days(40))
    rental, event = rentals.redeem(session, serial, ALICE["user_id"], TODAY, NOW)
    assert isinstance(event, RentalRenewed) and event.suspended
    assert rental.suspension_reason is not None


def test_an_admin_resumes_a_suspension_and_is_refused_without_one(session):
    policy(session, "suspend")
    start_rental(session)
    with pytest.raises(Conflict, match="not suspended"):
        suspension.resume(session, ALICE["user_id"], 1)
    suspension.on_quota_exceeded(session, exceeded(), NOW, OPEN)
    session.commit()
    rental, event = suspension.resume(session, ALICE["user_id"], 1)
    session.commit()
    assert (event.cause, event.actor_id, event.running) == ("admin", 1, True)
    assert rental.suspended_at is None and rental.suspended_month is None
    # the month's notice stays open at traffic: nothing suspends it again this month


def test_an_expired_suspended_rental_resumes_without_starting_anything(session):
    policy(session, "suspend")
    start_rental(session, end=TODAY + days(3))
    suspension.on_quota_exceeded(session, exceeded(), NOW, OPEN)
    rentals.expire_due(session, TODAY + days(4))
    session.commit()
    resumed = suspension.on_quota_cleared(session, cleared(cause="new_month"))
    assert resumed.running is False


def test_plan_quotas_name_each_rental_s_plan_quota_an_ended_one_s_too(session):
    policy(session, "alert", quota=None)
    start_rental(session, end=TODAY + days(3))
    assert suspension.plan_quotas(session, [ALICE["user_id"], BOB["user_id"]]) == {}
    policy(session, "alert", quota=7000)
    assert suspension.plan_quotas(session, [ALICE["user_id"], BOB["user_id"]]) == {
        ALICE["user_id"]: 7000}
    rentals.expire_due(session, TODAY + days(4))
    session.commit()  # expired: its quota still counts (its notice does not close by it)
    assert suspension.plan_quotas(session, [ALICE["user_id"]]) == {ALICE["user_id"]: 7000}


def test_an_exceeded_whose_notice_closed_since_suspends_nothing(session):
    """``cleared`` handled before ``exceeded`` (two queues): traffic says the notice is closed."""
    policy(session, "suspend")
    start_rental(session)
    assert suspension.on_quota_cleared(session, cleared()) is None
    assert suspension.on_quota_exceeded(session, exceeded(), NOW, lambda: None) is None
    assert suspension.on_quota_exceeded(session, exceeded(month="2024-05"), NOW, OPEN) is None
    assert rentals.info(session, ALICE["user_id"])["suspension_reason"] is None


def test_a_later_month_s_exceeded_keeps_the_suspension_past_the_earlier_month_s_clear(session):
    policy(session, "suspend")
    start_rental(session)
    suspension.on_quota_exceeded(session, exceeded(month="2024-05"), NOW, lambda: "2024-05")
    assert suspension.on_quota_exceeded(session, exceeded(), NOW, OPEN) is None  # already
    assert suspension.on_quota_cleared(session, cleared(month="2024-05",
                                                        cause="new_month")) is None
    assert rentals.info(session, ALICE["user_id"])["suspension_reason"] is not None
    assert isinstance(suspension.on_quota_cleared(session, cleared()), RentalResumed)


def test_a_new_rental_takes_over_the_suspension_of_the_one_that_ended(session):
    policy(session, "suspend")
    old = start_rental(session, end=TODAY + days(3))
    suspension.on_quota_exceeded(session, exceeded(), NOW, OPEN)
    rentals.expire_due(session, TODAY + days(4))
    session.commit()
    new = start_rental(session, end=TODAY + days(30), today=TODAY + days(4))
    assert new.id != old.id and new.suspension_reason is not None
    assert old.suspension_reason is None
    resumed = suspension.on_quota_cleared(session, cleared(cause="new_month"))
    assert (resumed.rental_id, resumed.running) == (new.id, True)
