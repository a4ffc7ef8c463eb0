"""Becoming a distributor (services.billing.distributors) against a fake users service."""
import pytest

from berth.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable
from berth.events import DistributorCodeRedeemed
from services.billing import codes, distributors
from services.billing.tests.test_domain import (ALICE, BOB, NOW, TODAY, days, engine,  # noqa: F401
                                                new_serial, session)


class FakeAccounts:
    """The users service as billing sees it: roles by user id; anyone else is unknown."""

    def __init__(self, **roles):
        self.roles = {int(user_id[1:]): role for user_id, role in roles.items()}
        self.asked = []

    def contact(self, user_id: int) -> dict:
        self.asked.append(user_id)
        if user_id not in self.roles:
            raise NotFound(f"User {user_id} not found")
        return {"user_id": user_id, "role": self.roles[user_id], "email": "x@example.com"}

    def grant_distributor(self, user_id: int, serial_id: int) -> str:
        """As the users service grants: once per serial, a plain user becomes a
        distributor; ``down`` makes it a users outage."""
        if getattr(self, "down", False):
            raise ServiceUnavailable("users did not answer")
        granted = self.__dict__.setdefault("granted", set())
        if serial_id not in granted:
            granted.add(serial_id)
            if self.roles[user_id] == "user":
                self.roles[user_id] = "distributor"
        return self.roles[user_id]


def accounts():
    return FakeAccounts(**{f"u{ALICE['user_id']}": "user", f"u{BOB['user_id']}": "user"})


def code_of(serial) -> str:
    return codes.display(serial.code)


def test_a_plain_user_claims_a_distributor_serial_and_the_event_grants_the_role(session):
    serial = new_serial(session, serial_type="distributor")
    claimed, event = distributors.apply(session, accounts(), ALICE["user_id"], code_of(serial),
                                        TODAY, NOW)
    assert claimed.id == serial.id and claimed.used_by == ALICE["user_id"]
    assert isinstance(event, DistributorCodeRedeemed)
    assert (event.user_id, event.serial_id) == (ALICE["user_id"], serial.id)


def test_someone_who_is_already_a_distributor_is_refused_before_the_serial_is_read(session):
    fake = FakeAccounts(**{f"u{ALICE['user_id']}": "distributor"})
    with pytest.raises(Conflict, match="already a distributor"):
        distributors.apply(session, fake, ALICE["user_id"], "not even a code", TODAY, NOW)


def test_an_unknown_user_is_not_found(session):
    serial = new_serial(session, serial_type="distributor")
    with pytest.raises(NotFound):
        distributors.apply(session, accounts(), 424242, code_of(serial), TODAY, NOW)
    assert serial.used_by is None and serial.status == "valid"


def test_a_malformed_code_names_the_field(session):
    with pytest.raises(BadRequest) as caught:
        distributors.apply(session, accounts(), ALICE["user_id"], "%%%", TODAY, NOW)
    assert caught.value.details == [{"field": "distributor_code",
                                     "message": "not a well-formed serial code"}]


def test_a_rental_serial_or_an_expired_one_is_refused(session):
    rental = new_serial(session)
    with pytest.raises(BadRequest):
        distributors.apply(session, accounts(), ALICE["user_id"], code_of(rental), TODAY, NOW)
    lapsed = new_serial(session, serial_type="distributor", expiry=TODAY + days(1))
    with pytest.raises((BadRequest, Conflict)):
        distributors.apply(session, accounts(), ALICE["user_id"], code_of(lapsed),
                           TODAY + days(2), NOW)


def test_a_serial_issued_to_another_user_is_forbidden(session):
    serial = new_serial(session, serial_type="distributor", assignee=BOB)
    with pytest.raises(Forbidden):
        distributors.apply(session, accounts(), ALICE["user_id"], code_of(serial), TODAY, NOW)


def test_a_second_distributor_serial_and_a_used_one_are_conflicts(session):
    first, second = (new_serial(session, serial_type="distributor") for _ in range(2))
    distributors.apply(session, accounts(), ALICE["user_id"], code_of(first), TODAY, NOW)
    session.commit()
    # the role arrives by event; until then alice is still a "user" to the users service
    with pytest.raises(Conflict, match="already redeemed a distributor serial"):
        distributors.apply(session, accounts(), ALICE["user_id"], code_of(second), TODAY, NOW)
    with pytest.raises(Conflict, match="already used"):
        distributors.apply(session, accounts(), BOB["user_id"], code_of(first), TODAY, NOW)


# --- the role before the answer (read your own writes) -------------------------------------

def test_the_grant_makes_the_user_a_distributor_and_is_recorded(session):
    serial = new_serial(session, serial_type="distributor")
    fake = accounts()
    claimed, _ = distributors.apply(session, fake, ALICE["user_id"], code_of(serial), TODAY, NOW)
    distributors.grant(session, fake, claimed, NOW)
    assert fake.roles[ALICE["user_id"]] == "distributor"
    assert claimed.role_granted_at == NOW


def test_a_failed_grant_is_completed_by_the_same_application_again(session):
    serial = new_serial(session, serial_type="distributor")
    fake = accounts()
    fake.down = True
    claimed, event = distributors.apply(session, fake, ALICE["user_id"], code_of(serial),
                                        TODAY, NOW)
    assert event is not None
    with pytest.raises(ServiceUnavailable):
        distributors.grant(session, fake, claimed, NOW)
    assert claimed.status == "used" and claimed.role_granted_at is None
    fake.down = False
    with pytest.raises(Conflict, match="already redeemed"):  # another code is no retry
        distributors.apply(session, fake, ALICE["user_id"],
                           code_of(new_serial(session, serial_type="distributor")), TODAY, NOW)
    again, event = distributors.apply(session, fake, ALICE["user_id"], code_of(serial),
                                      TODAY, NOW)
    assert again.id == serial.id and event is None  # no second claim, no second event
    distributors.grant(session, fake, again, NOW)
    assert fake.roles[ALICE["user_id"]] == "distributor" and again.role_granted_at == NOW


def test_a_granted_serial_never_promotes_a_demoted_user_again(session):
    serial = new_serial(session, serial_type="distributor")
    fake = accounts()
    claimed, _ = distributors.apply(session, fake, ALICE["user_id"], code_of(serial), TODAY, NOW)
    distributors.grant(session, fake, claimed, NOW)
    fake.roles[ALICE["user_id"]] = "user"  # an admin demoted her
    with pytest.raises(Conflict, match="already used"):
        distributors.apply(session, fake, ALICE["user_id"], code_of(serial), TODAY, NOW)
    assert fake.roles[ALICE["user_id"]] == "user"


def test_a_grant_the_users_service_refuses_is_a_conflict(session):
    """Users grants once per serial: if the event granted it, an admin demoted the user and
    only then the retry comes, the role stays taken away."""
    serial = new_serial(session, serial_type="distributor")
    fake = accounts()
    fake.down = True
    claimed, _ = distributors.apply(session, fake, ALICE["user_id"], code_of(serial), TODAY, NOW)
    with pytest.raises(ServiceUnavailable):
        distributors.grant(session, fake, claimed, NOW)
    fake.down = False
    fake.granted = {serial.id}  # the event granted it meanwhile, then the demotion
    again, _ = distributors.apply(session, fake, ALICE["user_id"], code_of(serial), TODAY, NOW)
    with pytest.raises(Conflict):
        distributors.grant(session, fake, again, NOW)
    assert again.role_granted_at is None and fake.roles[ALICE["user_id"]] == "user"
