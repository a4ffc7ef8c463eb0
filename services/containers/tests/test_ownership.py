"""Who may own a new container, with users and billing stood in for by a fake."""
from __future__ import annotations

import pytest

from berth.actor import Actor
from berth.errors import Conflict, NotFound
from services.containers.ownership import owner_of_new_container


class FakeAccounts:
    """Users (role, disabled) and their rental states; records what was asked."""

    def __init__(self, users: dict[int, dict], rentals: dict[int, str]):
        self.users, self.rentals, self.asked = users, rentals, []

    def contact(self, user_id: int) -> dict:
        self.asked.append(("contact", user_id))
        if user_id not in self.users:
            raise NotFound(f"User {user_id} not found")
        return self.users[user_id]

    def rental_status(self, user_id: int) -> str:
        self.asked.append(("rental_status", user_id))
        return self.rentals.get(user_id, "none")


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
