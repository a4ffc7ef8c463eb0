"""Who may own a new container, with users and billing stood in for by a fake."""
from __future__ import annotations

import pytest

from berth.actor import Actor
from berth.errors import Conflict, NotFound
from services.containers.engine_ops import Confinement
from services.containers.ownership import limits_of, owner_of_new_container


class FakeAccounts:
    """Users (role, disabled) and their rental states; records what was asked."""

    def __init__(self, users: dict[int, dict], rentals: dict[int, str],
                 suspensions: dict[int, str] | None = None):
        self.users, self.rentals, self.asked = users, rentals, []
        self.suspensions = suspensions or {}

    def contact(self, user_id: int) -> dict:
        self.asked.append(("contact", user_id))
        if user_id not in self.users:
            raise NotFound(f"User {user_id} not found")
        return self.users[user_id]

    def rental_status(self, user_id: int) -> str:
        self.asked.append(("rental_status", user_id))
        return self.rentals.get(user_id, "none")

    def rental_plan(self, user_id: int) -> dict | None:
        self.asked.append(("rental_plan", user_id))
        return PLAN if user_id in self.rentals else None

    def rental_suspension(self, user_id: int) -> str | None:
        return self.suspensions.get(user_id)


PLAN = {"name": "small", "memory_mib": 256, "cpus": 0.5, "pids_limit": 64, "log_max_mib": 9,
        "max_containers": 2, "max_ports": 1}
ALICE = Actor(2, "user")
ADMIN = Actor(1, "admin")


def accounts(**rentals) -> FakeAccounts:
    return FakeAccounts({2: {"role": "user", "disabled": False},
                         3: {"role": "user", "disabled": True},
                         4: {"role": "admin", "disabled": False}},
                        {int(k[1:]): v for k, v in rentals.items()})


def test_a_customer_with_a_running_rental_owns_what_they_create():
    fake = accounts(u2="active")
    assert owner_of_new_container(ALICE, None, fake) == 2
    assert fake.asked == [("rental_status", 2)]  # no need to look herself up


@pytest.mark.parametrize("state", ["none", "expired", "cancelled"])
def test_a_customer_without_a_running_rental_creates_nothing(state):
    with pytest.raises(Conflict, match="User 2 has no active rental"):
        owner_of_new_container(ALICE, None, accounts(u2=state))


def test_an_admin_needs_no_rental_for_their_own_container():
    fake = accounts()
    assert owner_of_new_container(ADMIN, None, fake) == 1
    assert fake.asked == []


def test_an_admin_creating_for_a_customer_needs_the_customers_rental():
    with pytest.raises(Conflict, match="User 2 has no active rental"):
        owner_of_new_container(ADMIN, 2, accounts())
    assert owner_of_new_container(ADMIN, 2, accounts(u2="active")) == 2


def test_a_container_for_another_admin_needs_no_rental():
    fake = accounts()
    assert owner_of_new_container(ADMIN, 4, fake) == 4
    assert fake.asked == [("contact", 4)]


def test_a_disabled_owner_is_refused_before_billing_is_asked():
    fake = accounts(u3="active")
    with pytest.raises(Conflict, match="User 3 is disabled"):
        owner_of_new_container(ADMIN, 3, fake)
    assert fake.asked == [("contact", 3)]


def test_an_unknown_owner_is_not_found():
    with pytest.raises(NotFound):
        owner_of_new_container(ADMIN, 99, accounts())


def test_a_new_container_runs_under_its_owners_running_plan():
    assert limits_of(2, False, accounts(u2="active")) == {"memory_mib": 256, "cpus": 0.5,
                                                   "pids_limit": 64, "log_max_mib": 9,
                                                   "max_ports": 1}


@pytest.mark.parametrize("state", ["none", "expired"])
def test_without_a_running_rental_the_operators_defaults_apply(state):
    assert limits_of(2, False, accounts(u2=state)) is None


def test_an_admins_container_runs_under_the_defaults_without_asking_billing():
    fake = accounts(u4="active")
    assert limits_of(4, True, fake) is None
    assert fake.asked == []


def test_a_plans_limits_replace_the_operators_in_the_engines_terms():
    defaults = Confinement(memory_bytes=512 * 2**20, nano_cpus=10**9, pids_limit=256,
                           log_max_size_mib=10, log_max_files=3)
    assert defaults.with_limits(None) is defaults
    mine = defaults.with_limits({"memory_mib": 256, "cpus": 0.5, "pids_limit": 64,
                                 "log_max_mib": 9})
    assert (mine.memory_bytes, mine.memory_swap_bytes, mine.nano_cpus, mine.pids_limit,
            mine.log_max_size_mib, mine.log_max_files) == (
        256 * 2**20, 512 * 2**20, 500_000_000, 64, 3, 3)
    assert mine.capabilities == defaults.capabilities and mine.network == defaults.network


def test_a_customer_starts_their_containers_only_while_their_rental_runs():
    from services.containers.ownership import rental_refusal
    assert rental_refusal(2, accounts(u2="active")) is None
    assert rental_refusal(2, accounts(u2="expired")) == (
        "Your rental is expired: redeem a serial to run your containers again")
    assert rental_refusal(2, accounts()) == (
        "You have no rental: redeem a serial to run your containers")


def test_a_suspended_customer_starts_nothing_and_hears_why():
    from services.containers.ownership import rental_refusal
    fake = accounts(u2="active")
    fake.suspensions[2] = "traffic quota reached on 2026-12-14"
    refusal = rental_refusal(2, fake)
    assert refusal.startswith("Your rental is suspended: traffic quota reached on 2026-12-14.")
    assert "quota is raised" in refusal
