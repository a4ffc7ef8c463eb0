"""The one actor type: what crosses the wire, and the self-or-admin rule."""
import dataclasses

import pytest

from berth.actor import NOT_YOURS, Actor
from berth.errors import Forbidden


def test_the_wire_dict_is_the_one_the_services_have_always_received():
    actor = Actor(7, "distributor", "dora")
    assert actor.to_wire() == {"user_id": 7, "role": "distributor", "username": "dora"}
    assert Actor.of(actor.to_wire()) == actor


def test_of_tolerates_a_missing_username_and_a_string_id():
    assert Actor.of({"user_id": "7", "role": "user"}) == Actor(7, "user", "")


def test_an_actor_without_a_role_is_granted_nothing():
    nobody = Actor.of({"user_id": 7})
    assert nobody.role == "" and not nobody.is_admin
    with pytest.raises(Forbidden):
        nobody.require_self_or_admin(user_id=8)


def test_an_actor_cannot_change_once_made():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Actor(1, "user").role = "admin"


@pytest.mark.parametrize("named", [{"user_id": 2}, {"username": "alice"},
                                   {"username": "ALICE"}, {}])
def test_a_user_may_name_themselves(named):
    Actor(2, "user", "alice").require_self_or_admin(**named)


@pytest.mark.parametrize("named", [{"user_id": 3}, {"username": "bob"},
                                   {"user_id": 2, "username": "bob"}])
def test_a_user_may_not_name_another(named):
    with pytest.raises(Forbidden) as refused:
        Actor(2, "user", "alice").require_self_or_admin(**named)
    assert refused.value.message == NOT_YOURS == "You may only access your own records"


def test_an_admin_may_name_anyone():
    admin = Actor(1, "admin", "root")
    assert admin.is_admin and not Actor(2, "distributor").is_admin
    admin.require_self_or_admin(user_id=3, username="bob")
