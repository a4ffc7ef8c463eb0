"""Billing service on the real broker, against SQLite and PostgreSQL: serials and rentals by
RPC, concurrent redeems, distributors through the users service, and the expiry pass run by two
replicas at once with real mail."""
from __future__ import annotations

import datetime as dt
import json
import time

import eventlet
import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from berth.db import utcnow
from berth.errors import BadRequest, Conflict, Forbidden, NotFound
from services.alerts.service import AlertsService
from services.billing import codes
from services.billing.service import BillingService
from services.users.service import UsersService
from tests.fixtures import service_config
from tests.support import poll

ADMIN = {"user_id": 1, "role": "admin", "username": "root"}
QUIET = 3.0  # how long to wait before concluding that no (further) mail is coming


def today() -> dt.date:
    return utcnow().date()


def day(n: int) -> str:
    return (today() + dt.timedelta(days=n)).isoformat()


@pytest.fixture
def billing(make_service):
    make_service(UsersService)
    return make_service(BillingService)


@pytest.fixture(autouse=True)
def _fresh_settings():
    yield
    from berth.settings import reload_settings
    reload_settings()


@pytest.fixture
def smtp_env(smtp_server, monkeypatch):
    """Services started after this mail to the test's real SMTP server."""
    monkeypatch.setenv("BERTH_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("BERTH_SMTP_PORT", str(smtp_server.port))
    from berth.settings import reload_settings
    reload_settings()
    return smtp_server


def register(rpc, name: str) -> dict:
    user_id = rpc.users.add_user({"username": name, "password": "password-1",
                                  "email": f"{name}@example.com"})["user_id"]
    return {"user_id": user_id, "role": "user", "username": name}


def generate(rpc, expiry: str, user_id: int | None = None, serial_type: str = "rental",
             actor: dict = ADMIN) -> dict:
    data = {"type": serial_type, "expiry_date": expiry}
    if user_id is not None:
        data["user_id"] = user_id
    return rpc.billing.generate_serial(actor, data)


def redeem(rpc, actor: dict, code: str) -> dict:
    return rpc.billing.redeem_serial(actor, {"serial_code": code})


def concurrently(amqp_uri: str, calls: list) -> list:
    """Run every ``call(proxy)`` at once, each in its own greenthread with its own cluster
    proxy (a proxy is single-threaded); the results, or the exceptions raised."""
    config = {"AMQP_URI": amqp_uri, "serializer": "json"}
    runners = [ClusterRpcProxy(config, timeout=60) for _ in calls]
    proxies = [runner.start() for runner in runners]
    gate = eventlet.event.Event()

    def run(call, proxy):
        gate.wait()
        try:
            return call(proxy)
        except Exception as exc:  # noqa: BLE001 - the caller inspects what each call got
            return exc

    try:
        pool = eventlet.GreenPool(len(calls))
        threads = [pool.spawn(run, call, proxy) for call, proxy in zip(calls, proxies)]
        eventlet.sleep(0)
        gate.send(True)
        return [thread.wait() for thread in threads]
    finally:
        for runner in runners:
            runner.stop()


def race_behind_row_lock(databases, amqp_uri: str, rental_id: int, calls: list,
                         lock: str = "SELECT id FROM rentals WHERE id = :id FOR UPDATE"
                         ) -> list:
    """Run ``calls`` at once. On PostgreSQL, hold the rental's row lock (or the rows ``lock``
    selects with ``:id`` = ``rental_id``) until every call is blocked behind it, so that each
    of them has read the row before any of them writes (the widest race window, every time;
    the test fails if they never all queued there). SQLite: a plain race (one connection per
    replica in this process: the calls are serialised anyway, and a held SQLite lock would
    stall the whole process)."""
    if databases.backend != "postgresql":
        return concurrently(amqp_uri, calls)
    from sqlalchemy import text

    from berth.db import make_engine
    engine = make_engine(databases.url("billing"))
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db "
                   "AND wait_event_type = 'Lock'")
    try:
        with engine.connect() as locker, \
                engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
            locker.execute(text(lock), {"id": rental_id})
            race = eventlet.spawn(concurrently, amqp_uri, calls)
            try:  # otherwise the calls ran one after another: the race promised never was
                poll(lambda: watcher.execute(waiting, {"db": engine.url.database}).scalar(),
                     until=lambda blocked: blocked >= len(calls), timeout=20,
                     what=f"the {len(calls)} calls all waiting behind the row lock")
            finally:
                locker.rollback()
                results = race.wait()
    finally:
        engine.dispose()
    return results


def mails(smtp, address: str, subject_part: str = "") -> list:
    return [m for m in smtp.messages()
            if (m["To"] or "").lower() == address and subject_part in (m["Subject"] or "")]


def wait_for_count(smtp, address: str, subject_part: str, count: int, timeout: float = 20):
    """The mails, once at least ``count`` such mails arrived."""
    return poll(lambda: mails(smtp, address, subject_part), until=lambda found: len(found) >= count,
                timeout=timeout, interval=0.2, details=smtp.summary,
                what=f"{count} mails to {address} with {subject_part!r} in the subject")


# --- serials and rentals by RPC --------------------------------------------------------------

def test_generate_check_redeem_info_and_history(billing, rpc):
    alice = register(rpc, "alice")
    reply = generate(rpc, day(30), alice["user_id"])
    assert reply["message"] == "Serial number generated successfully"
    code, serial_id = reply["serial_code"], reply["serial_id"]
    assert isinstance(serial_id, int)
    assert codes.normalise(code) == code.replace("-", "")

    check = rpc.billing.check_serial(code)
    assert check["serial_code"] == code
    assert check["status"] == "valid"
    assert check["issued_to"] == "alice@example.com"
    assert check["expiry_date"] == day(30)
    assert check["type"] == "rental" and check["serial_id"] == serial_id
    assert rpc.billing.check_serial(code.lower().replace("-", " "))["serial_id"] == serial_id

    assert rpc.billing.rental_info(alice["user_id"]) == {
        "user_id": alice["user_id"], "rental_status": "none", "rental_expiry": None,
        "rental_id": None, "plan": None, "suspended_at": None, "suspension_reason": None}

    redeemed = redeem(rpc, alice, code)
    assert redeemed["rental_status"] == "active"
    assert redeemed["rental_expiry"] == day(30)
    assert redeemed["serial_id"] == serial_id
    rental_id = redeemed["rental_id"]

    assert rpc.billing.check_serial(code)["status"] == "used"
    info = rpc.billing.rental_info(alice["user_id"])
    plan = info.pop("plan")  # issue 15: the plan the serial sold (here the default)
    assert plan["is_default"] and plan["plan_id"] == reply["plan_id"]
    assert info == {
        "user_id": alice["user_id"], "rental_status": "active", "rental_expiry": day(30),
        "rental_id": rental_id, "suspended_at": None, "suspension_reason": None}
    assert redeemed["renewed"] is False
    row = {"rental_id": rental_id, "status": "active", "start_date": day(0),
           "end_date": day(30), "serial_id": serial_id, "renewed_at": None,
           "plan_id": plan["plan_id"], "suspended_at": None, "suspension_reason": None}
    assert rpc.billing.rental_history(alice["user_id"]) == {
        "user_id": alice["user_id"], "rental_history": [row]}


def test_a_second_serial_extends_the_rental_and_a_shorter_one_is_refused(billing, rpc):
    alice = register(rpc, "alice")
    first = redeem(rpc, alice, generate(rpc, day(10))["serial_code"])
    second = redeem(rpc, alice, generate(rpc, day(40))["serial_code"])
    assert second["rental_id"] == first["rental_id"]
    assert second["rental_expiry"] == day(40)
    assert (second["rental_status"], second["renewed"]) == ("active", True)
    [row] = rpc.billing.rental_history(alice["user_id"])["rental_history"]
    assert row["status"] == "active" and row["renewed_at"] is not None
    shorter = generate(rpc, day(20))["serial_code"]
    with pytest.raises(Conflict):
        redeem(rpc, alice, shorter)
    assert rpc.billing.check_serial(shorter)["status"] == "valid"
    assert len(rpc.billing.rental_history(alice["user_id"])["rental_history"]) == 1


def test_issued_to_is_the_assignees_email_at_issue_and_others_cannot_redeem(billing, rpc):
    alice, bob = register(rpc, "alice"), register(rpc, "bob")
    code = generate(rpc, day(30), alice["user_id"])["serial_code"]
    with pytest.raises(Forbidden):
        redeem(rpc, bob, code)
    assert rpc.billing.check_serial(code)["status"] == "valid"
    bearer = generate(rpc, day(30))["serial_code"]
    assert rpc.billing.check_serial(bearer)["issued_to"] is None
    redeem(rpc, bob, bearer)
    assert rpc.billing.check_serial(bearer)["status"] == "used"


def test_generate_for_an_unknown_user_is_not_found_and_creates_nothing(billing, rpc):
    with pytest.raises(NotFound):
        generate(rpc, day(30), 424242)
    assert rpc.billing.list_serials(ADMIN, {})["total"] == 0


def test_bad_codes_and_bad_dates(billing, rpc):
    alice = register(rpc, "alice")
    code = generate(rpc, day(30))["serial_code"]
    typo = code[:3] + ("7" if code[3] != "7" else "8") + code[4:]
    for bad in (typo, "ABC123"):
        with pytest.raises(BadRequest) as error:
            rpc.billing.check_serial(bad)
        assert str(error.value) == "Invalid serial code"
    for bad in (typo, "ABC123", ""):
        with pytest.raises(BadRequest) as error:
            redeem(rpc, alice, bad)
        assert str(error.value) == "Invalid serial code"
    assert rpc.billing.check_serial(code)["status"] == "valid"
    with pytest.raises(NotFound):
        rpc.billing.check_serial(codes.display(codes.generate()))
    with pytest.raises(BadRequest):
        generate(rpc, day(0))
    with pytest.raises(BadRequest):
        generate(rpc, "2025-02-30")
    with pytest.raises(BadRequest):
        redeem(rpc, alice, generate(rpc, day(30), serial_type="distributor")["serial_code"])


def test_update_delete_and_listing(billing, rpc):
    distributor = {**register(rpc, "reseller"), "role": "distributor"}
    rpc.users.update_user(distributor["user_id"], {"role": "distributor"})
    plan_id = rpc.billing.list_plans({})["plans"][0]["plan_id"]
    rpc.billing.change_allotment(ADMIN, distributor["user_id"], {"plan_id": plan_id,
                                                                 "serials": 1})
    mine = generate(rpc, day(30), actor=distributor)
    with pytest.raises(Forbidden):
        generate(rpc, day(30), serial_type="distributor", actor=distributor)
    other = generate(rpc, day(30))
    listed = rpc.billing.list_serials(distributor, {})
    assert listed["total"] == 1 and listed["serials"][0]["serial_id"] == mine["serial_id"]
    assert listed["serials"][0]["distributor_id"] == distributor["user_id"]
    assert rpc.billing.list_serials(ADMIN, {})["total"] == 2

    replacement = codes.display(codes.generate())
    reply = rpc.billing.update_serial(mine["serial_id"], {"serial_code": replacement,
                                                          "expiry_date": day(60)})
    assert reply["message"] == "Serial number updated successfully"
    assert rpc.billing.check_serial(replacement)["expiry_date"] == day(60)
    with pytest.raises(NotFound):
        rpc.billing.check_serial(mine["serial_code"])
    with pytest.raises(Conflict):
        rpc.billing.update_serial(mine["serial_id"], {"serial_code": other["serial_code"]})
    rpc.billing.update_serial(other["serial_id"], {"status": "revoked"})
    assert rpc.billing.check_serial(other["serial_code"])["status"] == "revoked"

    assert rpc.billing.delete_serial(other["serial_id"]) == {
        "message": "Serial number deleted successfully"}
    with pytest.raises(NotFound):
        rpc.billing.delete_serial(other["serial_id"])
    with pytest.raises(NotFound):
        rpc.billing.update_serial(other["serial_id"], {"status": "revoked"})


def test_renew_edit_and_delete_rentals(billing, rpc):
    alice = register(rpc, "alice")
    serial = generate(rpc, day(10))
    rental_id = redeem(rpc, alice, serial["serial_code"])["rental_id"]
    with pytest.raises(BadRequest):
        rpc.billing.renew_rental({"rental_id": rental_id, "new_expiry_date": day(5)})
    with pytest.raises(NotFound):
        rpc.billing.renew_rental({"rental_id": 99999, "new_expiry_date": day(50)})
    reply = rpc.billing.renew_rental({"rental_id": rental_id, "new_expiry_date": day(50)})
    assert reply["message"] == "Rental renewed successfully"
    assert reply["rental"]["end_date"] == day(50) and reply["rental"]["status"] == "active"
    # every route says the same word for the renewed rental, and when it was renewed
    [row] = rpc.billing.rental_history(alice["user_id"])["rental_history"]
    assert row == reply["rental"] and row["renewed_at"] is not None
    assert rpc.billing.rental_info(alice["user_id"])["rental_status"] == "active"
    with pytest.raises(BadRequest) as error:
        rpc.billing.update_rental_history(rental_id, {"status": "paused"})
    assert error.value.details[0]["field"] == "status"

    with pytest.raises(BadRequest):
        rpc.billing.update_rental_history(rental_id, {"end_date": day(-1)})
    reply = rpc.billing.update_rental_history(rental_id, {"start_date": day(-3)})
    assert reply["message"] == "User rental history updated successfully"
    assert reply["rental"]["start_date"] == day(-3)

    assert rpc.billing.delete_rental_for_serial(serial["serial_id"]) == {
        "message": "Rental deleted successfully", "rental_id": rental_id,
        "user_id": alice["user_id"]}  # what the audit row is about
    with pytest.raises(NotFound):
        rpc.billing.delete_rental_for_serial(serial["serial_id"])
    assert rpc.billing.rental_history(alice["user_id"])["rental_history"] == []

    rental_id = redeem(rpc, alice, generate(rpc, day(10))["serial_code"])["rental_id"]
    assert rpc.billing.delete_rental_history(rental_id) == {
        "message": "User rental history deleted successfully"}
    with pytest.raises(NotFound):
        rpc.billing.delete_rental_history(rental_id)


def test_expiring_rentals_are_those_ending_within_the_days_soonest_first(billing, rpc):
    alice, bob, carol = (register(rpc, name) for name in ("alice", "bob", "carol"))
    redeem(rpc, alice, generate(rpc, day(6))["serial_code"])
    redeem(rpc, bob, generate(rpc, day(2))["serial_code"])
    redeem(rpc, carol, generate(rpc, day(30))["serial_code"])
    week = rpc.billing.expiring_rentals({})
    assert week["days"] == 7 and week["total"] == 2
    assert [(r["username"], r["end_date"], r["days_left"]) for r in week["rentals"]] == [
        ("bob", day(2), 2), ("alice", day(6), 6)]
    assert rpc.billing.expiring_rentals({"days": 3})["total"] == 1
    assert rpc.billing.expiring_rentals({"days": 30, "limit": 1, "offset": 2})["rentals"][0][
        "username"] == "carol"
    with pytest.raises(BadRequest):
        rpc.billing.expiring_rentals({"days": -1})


# --- concurrency -----------------------------------------------------------------------------

def test_ten_concurrent_redeems_of_one_code_by_one_user_make_one_rental(billing, rpc, amqp_uri):
    alice = register(rpc, "alice")
    serial = generate(rpc, day(30), alice["user_id"])
    results = concurrently(amqp_uri, [
        lambda proxy: redeem(proxy, alice, serial["serial_code"]) for _ in range(10)])
    wins = [r for r in results if isinstance(r, dict)]
    losses = [r for r in results if not isinstance(r, dict)]
    assert len(wins) == 1, results
    assert all(isinstance(r, Conflict) for r in losses), losses
    history = rpc.billing.rental_history(alice["user_id"])["rental_history"]
    assert [r["rental_id"] for r in history] == [wins[0]["rental_id"]]
    assert history[0]["end_date"] == day(30)
    check = rpc.billing.check_serial(serial["serial_code"])
    assert check["status"] == "used"
    row = [s for s in rpc.billing.list_serials(ADMIN, {})["serials"]
           if s["serial_id"] == serial["serial_id"]]
    assert row[0]["used_by"] == alice["user_id"]


def test_two_users_racing_for_one_bearer_code_one_wins(billing, rpc, amqp_uri):
    racers = [register(rpc, f"racer{n}") for n in range(6)]
    serial = generate(rpc, day(30))
    results = concurrently(amqp_uri, [
        lambda proxy, who=who: redeem(proxy, who, serial["serial_code"])
        for who in racers + racers])
    wins = [(who, r) for who, r in zip(racers + racers, results) if isinstance(r, dict)]
    assert len(wins) == 1, results
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, dict)), results
    winner = wins[0][0]
    for who in racers:
        history = rpc.billing.rental_history(who["user_id"])["rental_history"]
        assert len(history) == (1 if who is winner else 0)
    row = [s for s in rpc.billing.list_serials(ADMIN, {})["serials"]
           if s["serial_id"] == serial["serial_id"]]
    assert row[0]["used_by"] == winner["user_id"] and row[0]["status"] == "used"


def test_one_user_redeeming_different_codes_at_once_gets_one_running_rental(
        billing, rpc, amqp_uri):
    alice = register(rpc, "alice")
    serials = [generate(rpc, day(30 + n)) for n in range(6)]
    results = concurrently(amqp_uri, [
        lambda proxy, s=s: redeem(proxy, alice, s["serial_code"]) for s in serials])
    assert all(isinstance(r, (dict, Conflict)) for r in results), results
    wins = [r for r in results if isinstance(r, dict)]
    assert wins
    history = rpc.billing.rental_history(alice["user_id"])["rental_history"]
    assert len(history) == 1  # at most one running rental per user, even under a race
    used = [s for s in serials
            if rpc.billing.check_serial(s["serial_code"])["status"] == "used"]
    assert len(used) == len(wins)  # a refused redeem never burns its serial


def test_concurrent_redeems_of_serials_with_one_date_extend_the_rental_once(
        billing, rpc, amqp_uri, databases, request):
    """Six serials to the same date, redeemed at once by a user with a shorter rental: one
    extends it, the others cannot extend it any further, are refused and stay valid."""
    alice = register(rpc, "alice")
    rental_id = redeem(rpc, alice, generate(rpc, day(10))["serial_code"])["rental_id"]
    serials = [generate(rpc, day(60)) for _ in range(6)]
    results = race_behind_row_lock(databases, amqp_uri, rental_id, [
        lambda proxy, s=s: redeem(proxy, alice, s["serial_code"]) for s in serials])
    wins = [r for r in results if isinstance(r, dict)]
    assert all(isinstance(r, (dict, Conflict)) for r in results), results
    assert len(wins) == 1, results
    history = rpc.billing.rental_history(alice["user_id"])["rental_history"]
    assert [(r["rental_id"], r["end_date"]) for r in history] == [(rental_id, day(60))]
    statuses = sorted(rpc.billing.check_serial(s["serial_code"])["status"] for s in serials)
    assert statuses == ["used"] + ["valid"] * 5


# --- distributors ----------------------------------------------------------------------------

def role_of(rpc, user_id: int) -> str:
    return rpc.users.contact(user_id)["role"]


def test_apply_distributor_makes_the_user_a_distributor_once(billing, rpc):
    alice, bob = register(rpc, "alice"), register(rpc, "bob")
    code = generate(rpc, day(30), serial_type="distributor")["serial_code"]
    reply = rpc.billing.apply_distributor({"user_id": alice["user_id"],
                                           "distributor_code": code})
    assert reply == {"message": "Distributor application successful"}
    assert role_of(rpc, alice["user_id"]) == "distributor"  # before the answer, not after
    assert rpc.billing.check_serial(code)["status"] == "used"
    with pytest.raises(Conflict):
        rpc.billing.apply_distributor({"user_id": bob["user_id"], "distributor_code": code})
    assert role_of(rpc, bob["user_id"]) == "user"


def test_apply_distributor_for_a_distributor_or_with_a_rental_code_is_refused(billing, rpc):
    alice = register(rpc, "alice")
    rental_code = generate(rpc, day(30))["serial_code"]
    with pytest.raises(BadRequest) as error:
        rpc.billing.apply_distributor({"user_id": alice["user_id"],
                                       "distributor_code": rental_code})
    assert str(error.value) == "Invalid distributor data"
    first, second = (generate(rpc, day(30), serial_type="distributor")["serial_code"]
                     for _ in range(2))
    rpc.billing.apply_distributor({"user_id": alice["user_id"], "distributor_code": first})
    assert role_of(rpc, alice["user_id"]) == "distributor"
    with pytest.raises(Conflict):
        rpc.billing.apply_distributor({"user_id": alice["user_id"],
                                       "distributor_code": second})
    assert rpc.billing.check_serial(second)["status"] == "valid"  # not burnt
    with pytest.raises(NotFound):
        rpc.billing.apply_distributor({"user_id": 424242, "distributor_code": second})


def test_with_verified_addresses_required_an_unverified_user_cannot_redeem(make_service, rpc,
                                                                           monkeypatch):
    from berth.settings import reload_settings
    from services.billing.service import UNVERIFIED

    monkeypatch.setenv("BERTH_REQUIRE_VERIFIED_EMAIL", "true")
    reload_settings()
    make_service(UsersService)
    make_service(BillingService)
    alice = register(rpc, "alice")
    code = generate(rpc, day(30))["serial_code"]
    with pytest.raises(Forbidden) as refused:
        redeem(rpc, alice, code)
    assert str(refused.value) == UNVERIFIED
    assert rpc.billing.check_serial(code)["status"] == "valid"


# --- mail ------------------------------------------------------------------------------------

def test_redeem_and_an_expiry_notice_reach_the_users_mailbox(make_service, rpc, smtp_env):
    make_service(UsersService)
    make_service(AlertsService)
    make_service(BillingService)
    alice = register(rpc, "alice")
    redeem(rpc, alice, generate(rpc, day(30))["serial_code"])
    started = wait_for_count(smtp_env, "alice@example.com", "rental is active", 1)
    assert len(started) == 1
    assert day(30) in started[0].get_payload()
    reply = rpc.billing.send_expiry_notification({"user_id": alice["user_id"],
                                                  "expiry_date": day(30)})
    assert reply == {"message": "Expiry notification sent"}
    notice = wait_for_count(smtp_env, "alice@example.com", "expiry date", 1)
    assert len(notice) == 1 and day(30) in notice[0].get_payload()
    with pytest.raises(NotFound):
        rpc.billing.send_expiry_notification({"user_id": 424242, "expiry_date": day(30)})


# --- two replicas: expiry and reminders ------------------------------------------------------

REMINDER_SUBJECTS = {"Your Berth rental ends in 7 days", "Your Berth rental ends in 3 days",
                     "Your Berth rental ends tomorrow"}


def start_billing_pair(make_service=None, container_factory=None, amqp_uri=None,
                       database_url=None, interval: float = 0.5):
    """Two billing replicas with a fast expiry timer (``interval`` seconds); a fresh schema
    only via make_service."""
    if make_service is not None:
        return [make_service(BillingService, EXPIRY_INTERVAL=interval) for _ in range(2)]
    replicas = []
    for _ in range(2):
        container = container_factory(BillingService, service_config(
            amqp_uri, database_url, EXPIRY_INTERVAL=interval))
        container.start()
        replicas.append(container)
    return replicas


def sweep(amqp_uri: str, days_: list[str], callers: int = 4) -> list:
    """Each day in turn, ``callers`` concurrent run_expiry calls (load-balanced over replicas)."""
    failures = []
    for when in days_:
        results = concurrently(amqp_uri, [lambda proxy: proxy.billing.run_expiry(when)
                                          for _ in range(callers)])
        failures += [(when, r) for r in results if not isinstance(r, dict)]
    return failures


def reminder_subjects(smtp, address: str) -> list[str]:
    return sorted(m["Subject"] for m in mails(smtp, address, "rental ends"))


@pytest.fixture
def mail_platform(make_service, smtp_env):
    make_service(UsersService)
    make_service(AlertsService, MAIL_RETRY_INTERVAL=0.5)
    return smtp_env


def test_two_replicas_send_each_reminder_once_even_across_a_restart(
        mail_platform, make_service, container_factory, amqp_uri, databases, rpc):
    """Concurrent passes over every day to the end, timers running too: 3 mails, never more
    (whether every concurrent call also answers is test_concurrent_expiry_passes_all_answer)."""
    smtp = mail_platform
    replicas = start_billing_pair(make_service)
    alice = register(rpc, "alice")
    redeem(rpc, alice, generate(rpc, day(7))["serial_code"])
    days_ = [day(n) for n in range(0, 8)]

    sweep(amqp_uri, days_)
    found = wait_for_count(smtp, "alice@example.com", "rental ends", 3)
    time.sleep(QUIET)  # the timers keep running: any duplicate would show up now
    assert reminder_subjects(smtp, "alice@example.com") == sorted(REMINDER_SUBJECTS), found

    for container in replicas:
        container.stop()
    start_billing_pair(container_factory=container_factory, amqp_uri=amqp_uri,
                       database_url=databases.url("billing"))
    sweep(amqp_uri, days_)
    time.sleep(QUIET)
    assert reminder_subjects(smtp, "alice@example.com") == sorted(REMINDER_SUBJECTS)
    assert rpc.billing.rental_info(alice["user_id"])["rental_status"] == "active"
    reminders = outbox_events(databases, "rental_expiry_reminder_due")
    assert sorted(e["days_left"] for e in reminders) == [1, 3, 7]


def outbox_events(databases, event_type: str) -> list[dict]:
    """The events billing recorded (its outbox), read from its own database."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from berth.db import make_engine
    from services.billing.models import OutboxEvent
    engine = make_engine(databases.url("billing"))
    try:
        with Session(engine) as session:
            return [json.loads(row.payload) for row in session.scalars(
                select(OutboxEvent).where(OutboxEvent.event_type == event_type))]
    finally:
        engine.dispose()


def test_two_replicas_expire_a_rental_once_and_mail_it_once(
        mail_platform, make_service, amqp_uri, databases, rpc, request):
    smtp = mail_platform
    start_billing_pair(make_service, interval=3600)  # no timer in the race
    alice = register(rpc, "alice")
    rental_id = redeem(rpc, alice, generate(rpc, day(3))["serial_code"])["rental_id"]
    race_behind_row_lock(databases, amqp_uri, rental_id, [
        lambda proxy: proxy.billing.run_expiry(day(4)) for _ in range(6)])
    info = rpc.billing.rental_info(alice["user_id"])
    assert info["rental_status"] == "expired" and info["rental_id"] == rental_id
    history = rpc.billing.rental_history(alice["user_id"])["rental_history"]
    assert history[0]["status"] == "expired"
    wait_for_count(smtp, "alice@example.com", "has expired", 1)
    time.sleep(QUIET)
    expired = mails(smtp, "alice@example.com", "has expired")
    assert len(expired) == 1, [m["Subject"] for m in expired]
    assert day(3) in expired[0].get_payload()
    assert len(outbox_events(databases, "rental_expired")) == 1


def test_concurrent_expiry_passes_all_answer(make_service, amqp_uri, databases, rpc, request):
    """An operator's run_expiry racing another replica's pass is not a 500."""
    make_service(UsersService)
    start_billing_pair(make_service, interval=3600)  # no timer in the race
    alice = register(rpc, "alice")
    rental_id = redeem(rpc, alice, generate(rpc, day(3))["serial_code"])["rental_id"]
    results = race_behind_row_lock(databases, amqp_uri, rental_id, [
        lambda proxy: proxy.billing.run_expiry(day(0)) for _ in range(6)])
    assert all(isinstance(r, dict) for r in results), results
    assert sum(r["reminders"] for r in results) == 1
    reminders = outbox_events(databases, "rental_expiry_reminder_due")
    assert [(e["rental_id"], e["days_left"]) for e in reminders] == [(rental_id, 3)]


def test_many_concurrent_passes_over_many_days_remind_and_expire_each_rental_once(
        make_service, amqp_uri, databases, rpc):
    """Every pass that answers did its share; whatever failed left nothing behind."""
    make_service(UsersService)
    start_billing_pair(make_service)
    users = [register(rpc, f"user{n}") for n in range(4)]
    for n, who in enumerate(users):
        redeem(rpc, who, generate(rpc, day(2 + 2 * n))["serial_code"])
    sweep(amqp_uri, [day(n) for n in range(0, 11)], callers=8)
    for who in users:
        assert rpc.billing.rental_info(who["user_id"])["rental_status"] == "expired"
    reminders = outbox_events(databases, "rental_expiry_reminder_due")
    for n, who in enumerate(users):  # a 2-day rental is first seen inside the 3-day window
        days_left = sorted(e["days_left"] for e in reminders if e["user_id"] == who["user_id"])
        assert days_left == ([1, 2] if n == 0 else [1, 3, min(2 + 2 * n, 7)]), days_left
