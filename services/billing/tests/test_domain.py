"""Serials and rentals without a broker, on SQLite sessions, with explicit dates."""
import datetime as dt

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import sessionmaker

from berth.actor import Actor
from berth.db import isoformat, make_engine
from berth.errors import BadRequest, Conflict, Forbidden, NotFound
from berth.events import RentalExpired, RentalExpiryReminderDue, RentalRenewed, RentalStarted
from services.billing import allotments, codes, plans, rentals, serials
from services.billing.models import Base, Rental, RentalReminder, Serial

TODAY = dt.date(2024, 6, 1)
NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
ADMIN = Actor(1, "admin", "root")
DISTRIBUTOR = Actor(50, "distributor", "reseller")
OTHER_DISTRIBUTOR = Actor(51, "distributor", "reseller2")
ALICE = {"user_id": 10, "email": "alice@example.com"}
BOB = {"user_id": 11, "email": "bob@example.com"}
THRESHOLDS = (7, 3, 1)


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/billing.sqlite3")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine):
    with sessionmaker(bind=engine, expire_on_commit=False)() as session:
        yield session


def statements(engine) -> list:
    """Every SQL statement the engine runs from now on."""
    seen = []
    event.listen(engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *args: seen.append(statement))
    return seen


def new_serial(session, expiry=TODAY + days(30), serial_type="rental", actor=ADMIN,
               assignee=None, today=TODAY) -> Serial:
    serial = serials.generate(session, actor, serial_type, expiry, today, assignee)
    session.commit()
    return serial


def allot(session, actor=DISTRIBUTOR, serials=10, plan_id=None) -> None:
    """Give a distributor ``serials`` serials of a plan (the default one unless named)."""
    plan_id = plan_id or plans.default_plan(session).id
    allotments.change(session, actor.user_id, plan_id, "serials", serials, ADMIN.user_id)
    session.commit()


def start_rental(session, user_id=ALICE["user_id"], end=TODAY + days(30), today=TODAY,
                 now=NOW) -> Rental:
    serial = new_serial(session, end, today=today)
    rental, _ = rentals.redeem(session, serial, user_id, today, now)
    session.commit()
    return rental


def add_rental(session, user_id, status, start, end) -> Rental:
    rental = Rental(user_id=user_id, status=status, start_date=start, end_date=end)
    session.add(rental)
    session.commit()
    return rental


def typo(code: str, position: int = 3) -> str:
    replacement = "7" if code[position] != "7" else "8"
    return code[:position] + replacement + code[position + 1:]


# --- serials: generate ---------------------------------------------------------------------

def test_admin_generates_a_valid_bearer_serial_of_either_type(session):
    for serial_type in ("rental", "distributor"):
        serial = new_serial(session, TODAY + days(10), serial_type)
        assert serial.id is not None
        assert serial.type == serial_type and serial.status == "valid"
        assert serial.expiry_date == TODAY + days(10)
        assert serial.created_by == ADMIN.user_id
        assert serial.distributor_id is None
        assert serial.issued_to_user_id is None and serial.issued_to_email is None
        assert codes.normalise(serial.code) == serial.code
    assert session.scalar(select(func.count()).select_from(Serial)) == 2


def test_generated_serial_for_an_assignee_stores_their_email(session):
    serial = new_serial(session, assignee=ALICE)
    assert serial.issued_to_user_id == ALICE["user_id"]
    assert serial.issued_to_email == "alice@example.com"
    check = serials.to_check(serial, TODAY)
    assert check["issued_to"] == "alice@example.com"
    assert check["serial_code"] == codes.display(serial.code)
    assert check["status"] == "valid" and check["type"] == "rental"
    assert check["expiry_date"] == (TODAY + days(30)).isoformat()
    assert check["serial_id"] == serial.id


def test_a_distributor_makes_rental_serials_tagged_with_itself(session):
    allot(session)
    serial = new_serial(session, actor=DISTRIBUTOR)
    assert serial.distributor_id == DISTRIBUTOR.user_id
    assert serial.created_by == DISTRIBUTOR.user_id
    assert serials.to_row(serial, TODAY)["distributor_id"] == DISTRIBUTOR.user_id


def test_a_distributor_may_not_make_distributor_serials(session):
    with pytest.raises(Forbidden):
        new_serial(session, serial_type="distributor", actor=DISTRIBUTOR)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Serial)) == 0


@pytest.mark.parametrize("expiry", [TODAY, TODAY - days(1), dt.date(2000, 1, 1)])
def test_an_expiry_today_or_in_the_past_is_refused(session, expiry):
    with pytest.raises(BadRequest) as error:
        new_serial(session, expiry)
    assert error.value.details and error.value.details[0]["field"] == "expiry_date"
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Serial)) == 0


def test_generated_codes_are_different(session):
    drawn = {new_serial(session).code for _ in range(50)}
    assert len(drawn) == 50


# --- serials: find, status -----------------------------------------------------------------

def test_find_accepts_the_display_form_and_sloppy_typing(session):
    serial = new_serial(session)
    shown = codes.display(serial.code)
    for text in (serial.code, shown, shown.lower(), shown.replace("-", " ")):
        assert serials.find(session, text).id == serial.id


@pytest.mark.parametrize("text", ["", "ABC123", "not a code at all", "0" * 64, "U" * 20])
def test_a_malformed_code_is_refused_without_a_query(engine, session, text):
    seen = statements(engine)
    with pytest.raises(BadRequest) as error:
        serials.find(session, text)
    assert str(error.value) == serials.INVALID_CODE == "Invalid serial code"
    assert seen == []


def test_a_typo_in_a_real_code_is_caught_by_the_check_symbol_not_the_database(engine, session):
    serial = new_serial(session)
    seen = statements(engine)
    for position in (0, 10, 19):
        with pytest.raises(BadRequest) as error:
            serials.find(session, typo(serial.code, position))
        assert str(error.value) == "Invalid serial code"
    assert seen == []


def test_an_unknown_well_formed_code_is_not_found(session):
    new_serial(session)
    with pytest.raises(NotFound):
        serials.find(session, codes.generate())


def test_effective_status_is_expired_after_the_expiry_date_only_for_unused_serials(session):
    serial = new_serial(session, TODAY + days(5))
    assert serials.effective_status(serial, TODAY + days(5)) == "valid"  # the last day counts
    assert serials.effective_status(serial, TODAY + days(6)) == "expired"
    assert serials.to_check(serial, TODAY + days(6))["status"] == "expired"
    assert serial.status == "valid"  # nothing written before a sweep
    for status in ("used", "revoked"):
        serial.status = status
        assert serials.effective_status(serial, TODAY + days(100)) == status


def test_expire_lapsed_marks_only_valid_serials_past_their_date(session):
    lapsed = new_serial(session, TODAY + days(2))
    current = new_serial(session, TODAY + days(10))
    revoked = new_serial(session, TODAY + days(2))
    serials.change(session, revoked.id, {"status": "revoked"})
    session.commit()
    assert serials.expire_lapsed(session, TODAY + days(3)) == 1
    session.commit()
    session.expire_all()  # a bulk UPDATE: reload what the session holds
    assert (lapsed.status, current.status, revoked.status) == ("expired", "valid", "revoked")
    assert serials.expire_lapsed(session, TODAY + days(3)) == 0


# --- serials: change -----------------------------------------------------------------------

def test_change_replaces_the_code_with_a_well_formed_unique_one(session):
    serial = new_serial(session)
    old = serial.code
    replacement = codes.generate()
    serials.change(session, serial.id, {"serial_code": codes.display(replacement).lower()})
    session.commit()
    assert serial.code == replacement
    assert serials.find(session, replacement).id == serial.id
    with pytest.raises(NotFound):
        serials.find(session, old)


def test_change_to_its_own_code_is_not_a_conflict(session):
    serial = new_serial(session)
    serials.change(session, serial.id, {"serial_code": codes.display(serial.code)})
    assert serial.code == serials.find(session, serial.code).code


def test_change_refuses_a_malformed_code(session):
    serial = new_serial(session)
    old = serial.code
    for text in ("XYZ789", typo(old)):
        with pytest.raises(BadRequest) as error:
            serials.change(session, serial.id, {"serial_code": text})
        assert str(error.value) == "Invalid serial code"
    session.rollback()
    assert session.get(Serial, serial.id).code == old


def test_change_refuses_a_code_another_serial_has(session):
    first, second = new_serial(session), new_serial(session)
    with pytest.raises(Conflict) as error:
        serials.change(session, second.id, {"serial_code": first.code.lower()})
    assert error.value.status == 409
    session.rollback()
    assert session.get(Serial, second.id).code != first.code


def test_change_revokes_and_reinstates(session):
    serial = new_serial(session)
    serials.change(session, serial.id, {"status": "revoked"})
    session.commit()
    assert serial.status == "revoked"
    serials.change(session, serial.id, {"status": "valid"})
    session.commit()
    assert serial.status == "valid"


def test_a_used_serial_cannot_be_revoked_or_reinstated(session):
    serial = new_serial(session)
    rentals.redeem(session, serial, ALICE["user_id"], TODAY, NOW)
    session.commit()
    for status in ("revoked", "valid"):
        with pytest.raises(Conflict):
            serials.change(session, serial.id, {"status": status})
        session.rollback()
        assert session.get(Serial, serial.id).status == "used"


def test_a_new_date_revives_a_serial_that_lapsed_unused(session):
    serial = new_serial(session, TODAY + days(1))
    serials.expire_lapsed(session, TODAY + days(2))
    session.commit()
    session.expire_all()  # a bulk UPDATE: reload what the session holds
    assert serial.status == "expired"
    serials.change(session, serial.id, {"expiry_date": TODAY + days(40)})
    session.commit()
    assert serial.status == "valid" and serial.expiry_date == TODAY + days(40)


def test_change_of_an_unknown_serial_is_not_found(session):
    with pytest.raises(NotFound):
        serials.change(session, 4242, {"status": "revoked"})


# --- serials: listing and claim ------------------------------------------------------------

def test_a_distributor_lists_only_its_own_serials_and_the_admin_all(session):
    allot(session, DISTRIBUTOR)
    allot(session, OTHER_DISTRIBUTOR)
    mine = [new_serial(session, actor=DISTRIBUTOR).id for _ in range(3)]
    theirs = [new_serial(session, actor=OTHER_DISTRIBUTOR).id for _ in range(2)]
    admins = [new_serial(session, serial_type="distributor").id]
    listed = serials.listing(session, DISTRIBUTOR, 100, 0, TODAY)
    assert listed["total"] == 3
    assert sorted(row["serial_id"] for row in listed["serials"]) == sorted(mine)
    assert all(row["distributor_id"] == DISTRIBUTOR.user_id for row in listed["serials"])
    listed = serials.listing(session, OTHER_DISTRIBUTOR, 100, 0, TODAY)
    assert sorted(row["serial_id"] for row in listed["serials"]) == sorted(theirs)
    everything = serials.listing(session, ADMIN, 100, 0, TODAY)
    assert everything["total"] == 6
    assert sorted(r["serial_id"] for r in everything["serials"]) == sorted(mine + theirs + admins)
    page = serials.listing(session, ADMIN, 2, 1, TODAY)
    assert page["total"] == 6 and len(page["serials"]) == 2


def test_a_plain_user_lists_nothing(session):
    allot(session)
    new_serial(session)
    new_serial(session, actor=DISTRIBUTOR)
    listed = serials.listing(session, Actor(10, "user"), 100, 0, TODAY)
    assert listed == {"serials": [], "total": 0}


def test_a_serial_is_claimed_once(session):
    serial = new_serial(session)
    assert serials.claim(session, serial, ALICE["user_id"], NOW) is True
    session.commit()
    assert serial.status == "used" and serial.used_by == ALICE["user_id"]
    assert serial.used_at == NOW
    assert serials.claim(session, serial, BOB["user_id"], NOW) is False
    session.commit()
    assert session.get(Serial, serial.id).used_by == ALICE["user_id"]


def test_a_revoked_serial_cannot_be_claimed(session):
    serial = new_serial(session)
    serials.change(session, serial.id, {"status": "revoked"})
    session.commit()
    assert serials.claim(session, serial, ALICE["user_id"], NOW) is False


# --- rentals: redeem -----------------------------------------------------------------------

def test_redeem_starts_a_rental_until_the_serials_date(session):
    serial = new_serial(session, TODAY + days(30))
    rental, started = rentals.redeem(session, serial, ALICE["user_id"], TODAY, NOW)
    session.commit()
    assert rental.id is not None
    assert (rental.status, rental.start_date, rental.end_date) == (
        "active", TODAY, TODAY + days(30))
    assert rental.user_id == ALICE["user_id"] and rental.serial_id == serial.id
    assert isinstance(started, RentalStarted)
    assert (started.rental_id, started.user_id, started.start_date, started.end_date) == (
        rental.id, ALICE["user_id"], TODAY.isoformat(), (TODAY + days(30)).isoformat())
    assert serial.status == "used" and serial.used_by == ALICE["user_id"]
    assert serial.rental_id == rental.id


def test_redeem_extends_a_running_rental(session):
    rental = start_rental(session, end=TODAY + days(30))
    later = new_serial(session, TODAY + days(60))
    extended, renewed = rentals.redeem(session, later, ALICE["user_id"], TODAY + days(5), NOW)
    session.commit()
    assert extended.id == rental.id
    assert extended.end_date == TODAY + days(60) and extended.start_date == TODAY
    # one word for a running rental: extending by a serial or by the renew route both leave
    # it "active", with renewed_at saying when
    assert extended.status == "active" and extended.renewed_at == NOW
    assert rentals.history(session, ALICE["user_id"])[0]["renewed_at"] == isoformat(NOW)
    assert isinstance(renewed, RentalRenewed)
    assert renewed.previous_end_date == (TODAY + days(30)).isoformat()
    assert renewed.end_date == (TODAY + days(60)).isoformat()
    assert later.rental_id == rental.id and later.status == "used"
    assert session.scalar(select(func.count()).select_from(Rental)) == 1


@pytest.mark.parametrize("offset", [30, 29, 10])
def test_redeem_refuses_a_serial_that_would_not_extend_the_rental(session, offset):
    start_rental(session, end=TODAY + days(30))
    shorter = new_serial(session, TODAY + days(offset))
    with pytest.raises(Conflict):
        rentals.redeem(session, shorter, ALICE["user_id"], TODAY, NOW)
    session.rollback()
    assert session.get(Serial, shorter.id).status == "valid"
    assert session.get(Serial, shorter.id).used_by is None
    assert rentals.current(session, ALICE["user_id"]).end_date == TODAY + days(30)


def test_redeem_refuses_a_serial_issued_to_another_user(session):
    serial = new_serial(session, assignee=ALICE)
    with pytest.raises(Forbidden):
        rentals.redeem(session, serial, BOB["user_id"], TODAY, NOW)
    session.rollback()
    assert session.get(Serial, serial.id).status == "valid"
    assert rentals.current(session, BOB["user_id"]) is None
    rental, _ = rentals.redeem(session, serial, ALICE["user_id"], TODAY, NOW)
    assert rental.user_id == ALICE["user_id"]


def test_redeem_refuses_a_used_serial(session):
    serial = new_serial(session)
    rentals.redeem(session, serial, ALICE["user_id"], TODAY, NOW)
    session.commit()
    with pytest.raises(Conflict) as error:
        rentals.redeem(session, serial, BOB["user_id"], TODAY, NOW)
    assert str(error.value) == "Serial already used"


def test_redeem_refuses_an_expired_serial_before_any_sweep(session):
    serial = new_serial(session, TODAY + days(3))
    with pytest.raises(Conflict) as error:
        rentals.redeem(session, serial, ALICE["user_id"], TODAY + days(4), NOW)
    assert str(error.value) == "Serial has expired"
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Rental)) == 0


def test_redeem_refuses_a_revoked_serial(session):
    serial = new_serial(session)
    serials.change(session, serial.id, {"status": "revoked"})
    session.commit()
    with pytest.raises(Conflict) as error:
        rentals.redeem(session, serial, ALICE["user_id"], TODAY, NOW)
    assert str(error.value) == "Serial has been revoked"


def test_redeem_refuses_a_distributor_serial(session):
    serial = new_serial(session, serial_type="distributor")
    with pytest.raises(BadRequest):
        rentals.redeem(session, serial, ALICE["user_id"], TODAY, NOW)
    session.rollback()
    assert session.get(Serial, serial.id).status == "valid"


def test_redeem_after_the_rental_expired_starts_a_new_one(session):
    old = start_rental(session, end=TODAY + days(5))
    rentals.expire_due(session, TODAY + days(6))
    session.commit()
    serial = new_serial(session, TODAY + days(40), today=TODAY + days(6))
    rental, started = rentals.redeem(session, serial, ALICE["user_id"], TODAY + days(6), NOW)
    session.commit()
    assert rental.id != old.id and isinstance(started, RentalStarted)
    assert rental.start_date == TODAY + days(6)
    assert old.status == "expired"


# --- rentals: renew, edit, delete ----------------------------------------------------------

def test_renew_moves_the_end_later(session):
    rental = start_rental(session, end=TODAY + days(10))
    renewed, event_ = rentals.renew(session, rental.id, TODAY + days(40), TODAY, NOW)
    session.commit()
    assert renewed.end_date == TODAY + days(40) and renewed.status == "active"
    assert renewed.renewed_at == NOW
    # the history and the rental info say the same word
    assert rentals.history(session, ALICE["user_id"])[0]["status"] == "active"
    assert rentals.info(session, ALICE["user_id"])["rental_status"] == "active"
    assert isinstance(event_, RentalRenewed)
    assert event_.previous_end_date == (TODAY + days(10)).isoformat()
    assert event_.end_date == (TODAY + days(40)).isoformat()


@pytest.mark.parametrize("offset", [10, 9, -3])
def test_renew_to_a_date_not_later_than_the_end_is_refused_with_details(session, offset):
    rental = start_rental(session, end=TODAY + days(10))
    with pytest.raises(BadRequest) as error:
        rentals.renew(session, rental.id, TODAY + days(offset), TODAY, NOW)
    assert error.value.details[0]["field"] == "new_expiry_date"
    assert "later" in error.value.details[0]["message"]
    session.rollback()
    assert session.get(Rental, rental.id).end_date == TODAY + days(10)


def test_renew_to_a_past_date_is_refused(session):
    rental = add_rental(session, ALICE["user_id"], "expired", TODAY - days(40), TODAY - days(20))
    with pytest.raises(BadRequest) as error:
        rentals.renew(session, rental.id, TODAY - days(5), TODAY, NOW)
    assert error.value.details[0]["field"] == "new_expiry_date"
    assert "past" in error.value.details[0]["message"]


def test_renew_of_an_unknown_rental_is_not_found(session):
    with pytest.raises(NotFound):
        rentals.renew(session, 999, TODAY + days(10), TODAY, NOW)


def test_renewing_an_expired_rental_makes_it_running_again(session):
    rental = start_rental(session, end=TODAY + days(5))
    rentals.expire_due(session, TODAY + days(6))
    session.commit()
    assert rental.status == "expired"
    renewed, event_ = rentals.renew(session, rental.id, TODAY + days(30), TODAY + days(6), NOW)
    session.commit()
    assert renewed.status == "active" and renewed.renewed_at == NOW
    assert isinstance(event_, RentalRenewed)
    assert event_.previous_end_date == (TODAY + days(5)).isoformat()
    assert rentals.current(session, ALICE["user_id"]).id == rental.id
    assert rentals.info(session, ALICE["user_id"])["rental_status"] == "active"


def test_renewing_an_old_rental_while_another_runs_is_a_conflict(session):
    old = add_rental(session, ALICE["user_id"], "expired", TODAY - days(40), TODAY - days(10))
    running = start_rental(session, end=TODAY + days(20))
    with pytest.raises(Conflict):
        rentals.renew(session, old.id, TODAY + days(60), TODAY, NOW)
    session.rollback()
    assert session.get(Rental, old.id).status == "expired"
    assert rentals.current(session, ALICE["user_id"]).id == running.id


def test_edit_changes_dates_and_status(session):
    rental = start_rental(session, end=TODAY + days(10))
    _, events = rentals.edit(session, rental.id, {"end_date": TODAY + days(5)}, NOW)
    assert events == []  # still running: nothing for containers to do
    _, [event] = rentals.edit(session, rental.id, {"status": "cancelled",
                                                   "end_date": TODAY + days(3)}, NOW)
    session.commit()
    assert (rental.status, rental.start_date, rental.end_date) == (
        "cancelled", TODAY, TODAY + days(3))
    # stopping a running rental by hand is an expiry: the user's containers must stop
    assert (event.TYPE, event.user_id, event.rental_id) == ("rental_expired",
                                                           ALICE["user_id"], rental.id)
    assert rental.renewed_at is None
    _, [event] = rentals.edit(session, rental.id, {"status": "active"}, NOW)
    assert (event.TYPE, event.previous_end_date) == ("rental_renewed",
                                                     (TODAY + days(3)).isoformat())
    assert rental.renewed_at == NOW


def test_edit_takes_the_seeds_renewed_as_active(session):
    rental = add_rental(session, ALICE["user_id"], "expired", TODAY - days(40), TODAY - days(10))
    _, [event] = rentals.edit(session, rental.id, {"status": "renewed",
                                                   "end_date": TODAY + days(9)}, NOW)
    session.commit()
    assert rental.status == "active" and rental.renewed_at == NOW
    assert event.TYPE == "rental_renewed"
    assert rentals.current(session, ALICE["user_id"]).id == rental.id


def test_deleting_a_running_rental_expires_it(session):
    rental = start_rental(session, end=TODAY + days(10))
    event = rentals.delete(session, rental.id)
    assert (event.TYPE, event.user_id) == ("rental_expired", ALICE["user_id"])
    old = add_rental(session, ALICE["user_id"], "expired", TODAY - days(40), TODAY - days(10))
    assert rentals.delete(session, old.id) is None


def test_edit_refuses_an_end_before_the_start(session):
    rental = start_rental(session, end=TODAY + days(10))
    with pytest.raises(BadRequest) as error:
        rentals.edit(session, rental.id, {"end_date": TODAY - days(1)}, NOW)
    assert error.value.details[0]["field"] == "end_date"
    with pytest.raises(BadRequest):
        rentals.edit(session, rental.id, {"start_date": TODAY + days(11)}, NOW)
    session.rollback()
    assert session.get(Rental, rental.id).end_date == TODAY + days(10)


def test_edit_refuses_a_second_running_rental(session):
    old = add_rental(session, ALICE["user_id"], "expired", TODAY - days(40), TODAY - days(10))
    start_rental(session, end=TODAY + days(20))
    with pytest.raises(Conflict):
        rentals.edit(session, old.id, {"status": "active"}, NOW)


def test_edit_of_an_unknown_rental_is_not_found(session):
    with pytest.raises(NotFound):
        rentals.edit(session, 999, {"status": "expired"}, NOW)


def test_delete_for_serial_removes_the_rental_the_serial_started_or_extended(session):
    first = new_serial(session, TODAY + days(10))
    rental, _ = rentals.redeem(session, first, ALICE["user_id"], TODAY, NOW)
    second = new_serial(session, TODAY + days(20))
    rentals.redeem(session, second, ALICE["user_id"], TODAY, NOW)
    session.commit()
    deleted, _ = rentals.delete_for_serial(session, second.id)
    session.commit()
    assert deleted.id == rental.id and session.get(Rental, rental.id) is None
    with pytest.raises(NotFound):
        rentals.delete_for_serial(session, first.id)


def test_delete_for_serial_without_a_rental_is_not_found(session):
    unused = new_serial(session)
    with pytest.raises(NotFound):
        rentals.delete_for_serial(session, unused.id)
    with pytest.raises(NotFound):
        rentals.delete_for_serial(session, 4242)


def test_deleting_a_rental_with_reminders_removes_them_too(session):
    rental = start_rental(session, end=TODAY + days(3))
    assert len(rentals.due_reminders(session, TODAY, THRESHOLDS)) == 1
    session.commit()
    rentals.delete(session, rental.id)
    session.commit()
    assert session.scalar(select(func.count()).select_from(RentalReminder)) == 0
    with pytest.raises(NotFound):
        rentals.delete(session, rental.id)


# --- rentals: info, history, expiry --------------------------------------------------------

def test_info_says_none_then_active_then_expired(session):
    assert rentals.info(session, ALICE["user_id"]) == {
        "user_id": ALICE["user_id"], "rental_status": "none", "rental_expiry": None,
        "rental_id": None, "plan": None, "suspended_at": None, "suspension_reason": None}
    rental = start_rental(session, end=TODAY + days(5))
    info = rentals.info(session, ALICE["user_id"])
    assert info.pop("plan")["name"] == "standard"  # the default plan, unnamed serials sell it
    assert info == {
        "user_id": ALICE["user_id"], "rental_status": "active",
        "rental_expiry": (TODAY + days(5)).isoformat(), "rental_id": rental.id,
        "suspended_at": None, "suspension_reason": None}
    rentals.expire_due(session, TODAY + days(6))
    session.commit()
    info = rentals.info(session, ALICE["user_id"])
    assert info["rental_status"] == "expired" and info["rental_id"] == rental.id
    assert rentals.info(session, BOB["user_id"])["rental_status"] == "none"


def test_info_ignores_cancelled_rentals(session):
    add_rental(session, ALICE["user_id"], "cancelled", TODAY - days(5), TODAY + days(5))
    assert rentals.info(session, ALICE["user_id"])["rental_status"] == "none"


def test_history_lists_only_that_users_rentals_newest_first(session):
    old = add_rental(session, ALICE["user_id"], "expired", TODAY - days(60), TODAY - days(30))
    new = start_rental(session, end=TODAY + days(10))
    add_rental(session, BOB["user_id"], "expired", TODAY - days(60), TODAY - days(30))
    rows = rentals.history(session, ALICE["user_id"])
    assert [r["rental_id"] for r in rows] == [new.id, old.id]
    assert rows[0] == {"rental_id": new.id, "status": "active", "start_date": TODAY.isoformat(),
                       "end_date": (TODAY + days(10)).isoformat(), "serial_id": new.serial_id,
                       "renewed_at": None, "plan_id": new.plan_id, "suspended_at": None,
                       "suspension_reason": None}
    assert new.plan_id is not None


def test_expire_due_expires_only_running_rentals_past_their_end(session):
    past = add_rental(session, 1, "active", TODAY - days(30), TODAY - days(1))
    renewed_past = add_rental(session, 2, "active", TODAY - days(30), TODAY - days(3))
    renewed_past.renewed_at = NOW
    ends_today = add_rental(session, 3, "active", TODAY - days(30), TODAY)
    already = add_rental(session, 4, "expired", TODAY - days(30), TODAY - days(2))
    cancelled = add_rental(session, 5, "cancelled", TODAY - days(30), TODAY - days(2))
    events = rentals.expire_due(session, TODAY)
    session.commit()
    assert sorted(e.rental_id for e in events) == sorted([past.id, renewed_past.id])
    assert all(isinstance(e, RentalExpired) for e in events)
    by_id = {e.rental_id: e for e in events}
    assert by_id[past.id].user_id == 1
    assert by_id[past.id].end_date == (TODAY - days(1)).isoformat()
    assert (past.status, renewed_past.status, ends_today.status, already.status,
            cancelled.status) == ("expired", "expired", "active", "expired", "cancelled")
    assert rentals.expire_due(session, TODAY) == []


def test_past_end_lists_rentals_past_their_end_except_cancelled(session):
    past = add_rental(session, 1, "active", TODAY - days(30), TODAY - days(1))
    expired = add_rental(session, 2, "expired", TODAY - days(30), TODAY - days(2))
    add_rental(session, 3, "active", TODAY - days(30), TODAY)
    add_rental(session, 4, "cancelled", TODAY - days(30), TODAY - days(2))
    assert rentals.past_end(session, TODAY) == [
        {"rental_id": expired.id, "user_id": 2, "expiry_date": (TODAY - days(2)).isoformat()},
        {"rental_id": past.id, "user_id": 1, "expiry_date": (TODAY - days(1)).isoformat()}]


# --- reminders -----------------------------------------------------------------------------

def simulate(session, first_day: dt.date, last_day: dt.date, passes_per_day: int = 1) -> list:
    """Run the reminder pass every day (several times a day); every event returned."""
    events = []
    day = first_day
    while day <= last_day:
        for _ in range(passes_per_day):
            events += rentals.due_reminders(session, day, THRESHOLDS)
            session.commit()
        day += days(1)
    return events


def test_three_reminders_go_out_7_3_and_1_days_before_each_once(session):
    end = TODAY + days(10)
    rental = add_rental(session, ALICE["user_id"], "active", TODAY - days(20), end)
    events = simulate(session, end - days(10), end, passes_per_day=3)
    assert [e.days_left for e in events] == [7, 3, 1]
    assert all(isinstance(e, RentalExpiryReminderDue) for e in events)
    assert all(e.rental_id == rental.id and e.user_id == ALICE["user_id"]
               and e.end_date == end.isoformat() for e in events)
    rows = session.scalars(select(RentalReminder.days_before)).all()
    assert sorted(rows) == [1, 3, 7]
    assert simulate(session, end - days(10), end + days(3)) == []


def test_a_rental_first_seen_5_days_before_the_end_is_reminded_at_5_3_and_1(session):
    end = TODAY + days(5)
    add_rental(session, ALICE["user_id"], "active", TODAY, end)
    events = simulate(session, TODAY, end)
    assert [e.days_left for e in events] == [5, 3, 1]
    assert sorted(session.scalars(select(RentalReminder.days_before)).all()) == [1, 3, 7]


def test_a_rental_first_seen_on_its_last_day_gets_one_reminder(session):
    add_rental(session, ALICE["user_id"], "active", TODAY - days(3), TODAY)
    assert [e.days_left for e in simulate(session, TODAY, TODAY, passes_per_day=2)] == [0]


def test_extending_the_end_makes_reminders_due_again_for_the_new_date(session):
    end = TODAY + days(10)
    rental = add_rental(session, ALICE["user_id"], "active", TODAY - days(20), end)
    assert [e.days_left for e in simulate(session, TODAY, end - days(1))] == [7, 3, 1]
    new_end = end + days(10)
    rentals.renew(session, rental.id, new_end, end - days(1), NOW)
    session.commit()
    again = simulate(session, end - days(1), new_end, passes_per_day=2)
    assert [e.days_left for e in again] == [7, 3, 1]
    assert {e.end_date for e in again} == {new_end.isoformat()}


def test_no_reminders_for_expired_or_cancelled_rentals_or_far_ends(session):
    add_rental(session, 1, "expired", TODAY - days(30), TODAY + days(2))
    add_rental(session, 2, "cancelled", TODAY - days(30), TODAY + days(2))
    add_rental(session, 3, "active", TODAY - days(30), TODAY + days(8))
    add_rental(session, 4, "active", TODAY - days(30), TODAY - days(1))
    assert rentals.due_reminders(session, TODAY, THRESHOLDS) == []


def test_every_running_rental_gets_its_own_reminder(session):
    ids = {add_rental(session, user, "active", TODAY, TODAY + days(7)).id for user in (1, 2, 3)}
    events = rentals.due_reminders(session, TODAY, THRESHOLDS)
    assert {e.rental_id for e in events} == ids
    assert rentals.due_reminders(session, TODAY, THRESHOLDS) == []


@pytest.mark.parametrize("days_left, expected", [
    (100, None), (8, None), (7, 7), (6, 7), (5, 7), (4, 7), (3, 3), (2, 3), (1, 1), (0, 1),
    (-1, None), (-30, None)])
def test_threshold_for(days_left, expected):
    assert rentals.threshold_for(days_left, THRESHOLDS) == expected
    assert rentals.threshold_for(days_left, (1, 7, 3)) == expected  # order does not matter


def test_threshold_for_odd_threshold_sets():
    assert rentals.threshold_for(0, ()) is None
    assert rentals.threshold_for(5, ()) is None
    assert rentals.threshold_for(5, (5,)) == 5
    assert rentals.threshold_for(6, (5,)) is None
    assert rentals.threshold_for(0, (0, 2)) == 0
    assert rentals.threshold_for(1, (0, 2)) == 2


def test_no_thresholds_means_no_reminders_not_a_crash(session):
    add_rental(session, 1, "active", TODAY, TODAY + days(2))
    assert rentals.due_reminders(session, TODAY, ()) == []
