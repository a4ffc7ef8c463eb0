"""Plans and the image catalogue (services.billing.plans) on SQLite, without a broker."""
import datetime as dt

import pytest
from sqlalchemy.exc import IntegrityError

from berth.errors import BadRequest, Conflict, NotFound
from services.billing import plans
from services.billing.models import Plan
from services.billing.tests.test_domain import engine, session  # noqa: F401

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
LIMITS = {"cpus": 0.5, "memory_mib": 256, "pids_limit": 128, "max_containers": 2,
          "max_ports": 2, "log_max_mib": 5, "traffic_quota_bytes": 10**9,
          "quota_action": "suspend", "customer_ports": False}


def new_plan(session, name="small", **overrides):
    plan = plans.create(session, {"name": name, **LIMITS, **overrides})
    session.commit()
    return plan


def image(session, reference="nginx:1.27"):
    added = plans.add_image(session, {"reference": reference, "display_name": reference,
                                      "default_command": None, "container_port": 80})
    session.commit()
    return added


def test_a_database_without_plans_sells_the_standard_plan_by_default(session):
    plan = plans.for_sale(session, None)
    assert (plan.name, plan.is_default, plan.cpus) == ("standard", True, 1.0)
    assert plans.for_sale(session, None).id == plan.id  # made once


def test_a_plan_lists_its_entitlements_and_catalogue_images(session):
    nginx = image(session)
    plan = new_plan(session, image_ids=[nginx.id])
    row = plans.plan_row(session, plan)
    assert {k: row[k] for k in LIMITS} == LIMITS
    assert row["image_ids"] == [nginx.id] and row["images"][0]["reference"] == "nginx:1.27"
    assert row["retired"] is False


def test_is_default_moves_the_default(session):
    first = new_plan(session, "first")
    assert not first.is_default and plans.default_plan(session).name == "standard"
    plans.change(session, first.id, {"is_default": True})
    session.commit()
    second = new_plan(session, "second", is_default=True)
    session.refresh(first)
    assert second.is_default and not first.is_default
    plans.change(session, first.id, {"is_default": True})
    session.commit()
    session.refresh(second)
    assert first.is_default and not second.is_default


def test_the_default_cannot_be_unset_or_retired(session):
    plan = new_plan(session, is_default=True)
    with pytest.raises(Conflict, match="make another plan the default"):
        plans.change(session, plan.id, {"is_default": False})
    with pytest.raises(Conflict, match="make another plan the default first"):
        plans.retire(session, plan.id, NOW)


def test_a_retired_plan_sells_no_more_and_cannot_become_the_default(session):
    new_plan(session, "main")
    old = new_plan(session, "old")
    plans.retire(session, old.id, NOW)
    session.commit()
    with pytest.raises(Conflict, match="retired"):
        plans.for_sale(session, old.id)
    with pytest.raises(Conflict, match="retired"):
        plans.change(session, old.id, {"is_default": True})
    assert [p["name"] for p in plans.listing(session, 50, 0, False)["plans"]] == [
        "standard", "main"]
    assert len(plans.listing(session, 50, 0, True)["plans"]) == 3


def test_an_unknown_plan_or_image_is_a_400_naming_the_field(session):
    with pytest.raises(BadRequest) as caught:
        plans.for_sale(session, 999)
    assert caught.value.details[0]["field"] == "plan_id"
    with pytest.raises(BadRequest) as caught:
        new_plan(session, image_ids=[404])
    assert caught.value.details[0]["field"] == "image_ids"
    with pytest.raises(NotFound):
        plans.change(session, 999, {"cpus": 2.0})


def test_names_and_image_references_are_unique(session):
    new_plan(session)
    with pytest.raises(Conflict):
        new_plan(session)
    image(session)
    with pytest.raises(Conflict):
        image(session)


def test_an_image_a_selling_plan_offers_cannot_be_removed(session):
    nginx, redis = image(session), image(session, "redis:7")
    plan = new_plan(session, image_ids=[nginx.id, redis.id])
    with pytest.raises(Conflict, match="offered by plan"):
        plans.remove_image(session, nginx.id)
    plans.change(session, plan.id, {"image_ids": [redis.id]})
    plans.remove_image(session, nginx.id)
    session.commit()
    assert plans.image_ids_of(session, plan.id) == [redis.id]


def test_the_database_allows_one_default_plan_only(session):
    new_plan(session)
    session.add(Plan(name="rogue", **LIMITS, is_default=True))
    with pytest.raises(IntegrityError):
        session.commit()


# --- rentals on plans ------------------------------------------------------------------------

def sold(session, plan, expiry):
    from services.billing.tests.test_domain import new_serial
    serial = new_serial(session, expiry=expiry)
    serial.plan_id = plan.id if plan is not None else None
    session.commit()
    return serial


def test_a_rental_runs_on_its_serials_plan_and_extends_only_on_the_same_plan(session):
    from services.billing import rentals
    from services.billing.tests.test_domain import ALICE, TODAY, days
    small, large = new_plan(session, "small"), new_plan(session, "large", cpus=4.0)
    rental, _ = rentals.redeem(session, sold(session, small, TODAY + days(10)),
                               ALICE["user_id"], TODAY, NOW)
    session.commit()
    assert rental.plan_id == small.id
    assert rentals.info(session, ALICE["user_id"])["plan"]["name"] == "small"
    rentals.redeem(session, sold(session, small, TODAY + days(20)), ALICE["user_id"], TODAY, NOW)
    session.commit()
    other = sold(session, large, TODAY + days(40))
    with pytest.raises(Conflict, match="runs on plan small .* this serial is for plan large"):
        rentals.redeem(session, other, ALICE["user_id"], TODAY, NOW)
    session.rollback()
    session.refresh(other)
    assert other.status == "valid" and other.used_by is None  # kept for later
    assert rentals.info(session, ALICE["user_id"])["rental_expiry"] == \
        (TODAY + days(20)).isoformat()


def test_a_serial_sold_before_plans_starts_a_rental_on_the_default_plan(session):
    from services.billing import rentals
    from services.billing.tests.test_domain import ALICE, TODAY, days
    rental, _ = rentals.redeem(session, sold(session, None, TODAY + days(10)),
                               ALICE["user_id"], TODAY, NOW)
    assert rental.plan_id == plans.default_plan(session).id


def test_a_rental_serial_sells_the_named_or_default_plan_and_a_distributor_serial_none(session):
    from services.billing import serials
    from services.billing.tests.test_domain import ADMIN, TODAY, days
    small = new_plan(session)
    named = serials.generate(session, ADMIN, "rental", TODAY + days(9), TODAY, None, small.id)
    unnamed = serials.generate(session, ADMIN, "rental", TODAY + days(9), TODAY)
    assert named.plan_id == small.id
    assert unnamed.plan_id == plans.default_plan(session).id
    assert serials.generate(session, ADMIN, "distributor", TODAY + days(9), TODAY).plan_id is None
    with pytest.raises(BadRequest) as caught:
        serials.generate(session, ADMIN, "distributor", TODAY + days(9), TODAY, None, small.id)
    assert caught.value.details[0]["field"] == "plan_id"
    with pytest.raises(BadRequest) as caught:
        serials.generate(session, ADMIN, "rental", TODAY + days(9), TODAY, None, 4040)
    assert caught.value.details[0]["field"] == "plan_id"
    plans.retire(session, small.id, NOW)
    with pytest.raises(Conflict, match="retired"):
        serials.generate(session, ADMIN, "rental", TODAY + days(9), TODAY, None, small.id)


def test_moving_a_rental_to_an_unknown_plan_is_a_400_naming_plan_id_and_changes_nothing(
        session):
    from services.billing import rentals
    from services.billing.tests.test_domain import ALICE, TODAY, days
    small = new_plan(session, "small")
    rental, _ = rentals.redeem(session, sold(session, small, TODAY + days(10)),
                               ALICE["user_id"], TODAY, NOW)
    session.commit()
    with pytest.raises(BadRequest) as caught:
        rentals.edit(session, rental.id, {"plan_id": 4040, "end_date": TODAY + days(30)}, NOW)
    assert caught.value.details == [{"field": "plan_id", "message": "no plan 4040"}]
    session.rollback()
    session.refresh(rental)
    assert (rental.plan_id, rental.end_date) == (small.id, TODAY + days(10))
    moved, _ = rentals.edit(session, rental.id, {"plan_id": plans.default_plan(session).id},
                            NOW)
    assert moved.plan_id == plans.default_plan(session).id
