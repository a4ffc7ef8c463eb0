"""ACLs without a broker: generate, change, info, logs, downloads and the file."""
import datetime as dt
import json

import pytest

from berth.errors import Conflict, NotFound
from services.users import accounts, acl

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
ADMIN_ID = 1


@pytest.fixture
def alice(session):
    user = accounts.create_user(session, "alice", "alice@example.com", "hash",
                                role="distributor")
    session.commit()
    return user


def at(seconds):
    return T0 + dt.timedelta(seconds=seconds)


# --- generate / change -----------------------------------------------------------------------

def test_generate_for_unknown_user_is_not_found(session):
    with pytest.raises(NotFound, match="User 99 not found"):
        acl.generate(session, 99, ["read"], ADMIN_ID, T0)


def test_generate_removes_duplicates_keeping_order(session, alice):
    row = acl.generate(session, alice.id, ["write", "read", "write", "exec", "read"],
                       ADMIN_ID, T0)
    session.commit()
    assert row.permissions == ["write", "read", "exec"]
    assert acl.info(session, alice.id)["acl_info"]["permissions"] == ["write", "read", "exec"]


def test_generate_twice_is_a_conflict_and_keeps_the_first(session, alice):
    acl.generate(session, alice.id, ["read"], ADMIN_ID, T0)
    session.commit()
    with pytest.raises(Conflict, match="already has an ACL"):
        acl.generate(session, alice.id, ["write"], ADMIN_ID, at(1))
    session.rollback()
    assert acl.info(session, alice.id)["acl_info"]["permissions"] == ["read"]
    assert acl.logs(session, alice.id, 50, 0)["total"] == 1


def test_change_without_an_acl_is_not_found(session, alice):
    with pytest.raises(NotFound, match="no ACL"):
        acl.change(session, alice.id, ["read"], ADMIN_ID, T0)


def test_change_for_unknown_user_is_not_found(session):
    with pytest.raises(NotFound, match="User 99 not found"):
        acl.change(session, 99, ["read"], ADMIN_ID, T0)


def test_change_replaces_the_permissions(session, alice):
    acl.generate(session, alice.id, ["read", "write"], ADMIN_ID, T0)
    row = acl.change(session, alice.id, ["exec", "exec", "read"], ADMIN_ID, at(5))
    session.commit()
    assert row.permissions == ["exec", "read"]
    assert row.updated_at == at(5)
    assert acl.info(session, alice.id)["acl_info"]["permissions"] == ["exec", "read"]


# --- info ------------------------------------------------------------------------------------

def test_info_without_an_acl_has_empty_permissions_and_the_role(session, alice):
    assert acl.info(session, alice.id) == {
        "user_id": alice.id, "acl_info": {"permissions": [], "role": "distributor"}}


def test_info_with_an_acl(session, alice):
    acl.generate(session, alice.id, ["read"], ADMIN_ID, T0)
    session.commit()
    assert acl.info(session, alice.id) == {
        "user_id": alice.id, "acl_info": {"permissions": ["read"], "role": "distributor"}}


def test_info_for_unknown_user_is_not_found(session):
    with pytest.raises(NotFound):
        acl.info(session, 12345)


# --- logs ------------------------------------------------------------------------------------

def test_logs_are_newest_first_with_total_and_pages(session, alice):
    acl.generate(session, alice.id, ["p0"], ADMIN_ID, at(0))
    for i in range(1, 5):
        acl.change(session, alice.id, [f"p{i}"], ADMIN_ID + i, at(i * 10))
    session.commit()

    everything = acl.logs(session, alice.id, 50, 0)
    assert everything["user_id"] == alice.id and everything["total"] == 5
    assert [e["permissions"] for e in everything["logs"]] == [["p4"], ["p3"], ["p2"], ["p1"],
                                                             ["p0"]]
    assert [e["action"] for e in everything["logs"]] == ["updated"] * 4 + ["created"]
    assert everything["logs"][0]["actor_id"] == ADMIN_ID + 4
    assert everything["logs"][0]["timestamp"] == "2024-05-01T12:00:40Z"
    assert len({e["log_id"] for e in everything["logs"]}) == 5

    page = acl.logs(session, alice.id, 2, 1)
    assert page["total"] == 5
    assert [e["permissions"] for e in page["logs"]] == [["p3"], ["p2"]]
    assert acl.logs(session, alice.id, 2, 10) == {"user_id": alice.id, "total": 5, "logs": []}


def test_logs_at_the_same_instant_are_newest_first_by_insertion(session, alice):
    acl.generate(session, alice.id, ["first"], ADMIN_ID, T0)
    acl.change(session, alice.id, ["second"], ADMIN_ID, T0)
    session.commit()
    assert [e["permissions"] for e in acl.logs(session, alice.id, 50, 0)["logs"]] == [
        ["second"], ["first"]]


def test_logs_are_per_user(session, alice):
    bob = accounts.create_user(session, "bob", "bob@example.com", "hash")
    acl.generate(session, alice.id, ["read"], ADMIN_ID, T0)
    session.commit()
    assert acl.logs(session, bob.id, 50, 0) == {"user_id": bob.id, "total": 0, "logs": []}


def test_logs_for_unknown_user_is_not_found(session):
    with pytest.raises(NotFound):
        acl.logs(session, 404, 50, 0)


# --- download and file -----------------------------------------------------------------------

def test_record_download_logs_the_current_permissions(session, alice):
    acl.generate(session, alice.id, ["read", "write"], ADMIN_ID, T0)
    acl.record_download(session, alice, alice.id, at(30))
    session.commit()
    newest = acl.logs(session, alice.id, 1, 0)["logs"][0]
    assert newest["action"] == "downloaded"
    assert newest["actor_id"] == alice.id
    assert newest["permissions"] == ["read", "write"]
    assert newest["timestamp"] == "2024-05-01T12:00:30Z"


def test_a_user_never_given_an_acl_downloads_an_empty_one(session, alice):
    acl.record_download(session, alice, alice.id, T0)
    newest = acl.logs(session, alice.id, 1, 0)["logs"][0]
    assert (newest["action"], newest["permissions"]) == ("downloaded", [])
    assert json.loads(acl.render_file(alice, acl.acl_of(session, alice), T0))["permissions"] == []
    assert session.get(acl.Acl, alice.id) is None  # not stored: generate still creates it


def test_render_file_is_json_with_the_permissions(session, alice):
    row = acl.generate(session, alice.id, ["read", "exec"], ADMIN_ID, T0)
    session.commit()
    text = acl.render_file(alice, row, at(60))
    document = json.loads(text)
    assert document["user_id"] == alice.id
    assert document["username"] == "alice"
    assert document["role"] == "distributor"
    assert document["permissions"] == ["read", "exec"]
    assert document["updated_at"] == "2024-05-01T12:00:00Z"
    assert document["generated_at"] == "2024-05-01T12:01:00Z"
