"""API keys without a broker (services.users.api_keys): creation within the role and the
limits, the stored hash, status, revocation, and the state the gateway checks a key against
(it ends with its owner's role, account or token version, and records last use)."""
import datetime as dt

import pytest
from sqlalchemy import select

from berth.api_keys import KEY_PREFIX, digest, parse
from berth.errors import BadRequest, Conflict, NotFound
from services.users import accounts, api_keys, sessions
from services.users.models import ApiKey

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
MAX_DAYS, MAX_KEYS = 365, 3


def new_key(db, user, scopes=("read",), days=30, now=T0, name="bot"):
    key, raw = api_keys.create(db, user, name, list(scopes), days, now, MAX_DAYS, MAX_KEYS)
    db.commit()
    return key, raw


def state(db, key, raw, now=T0):
    _, secret = parse(raw)
    result = api_keys.state(db, key.id, digest(secret), now)
    db.commit()
    return result


def test_a_key_is_prefix_id_and_a_256_bit_secret_of_which_only_the_hash_is_stored(db, alice):
    key, raw = new_key(db, alice, ["containers", "read"])
    key_id, secret = parse(raw)
    assert raw.startswith(f"{KEY_PREFIX}{key.id}_") and key_id == key.id
    assert len(secret) == 43  # 32 bytes, URL-safe base64 without padding
    stored = db.scalar(select(ApiKey).where(ApiKey.id == key.id))
    assert stored.secret_hash == digest(secret) and secret not in repr(vars(stored))
    assert stored.scopes == ["read", "containers"]  # in the catalogue's order
    assert (stored.role, stored.token_version) == ("user", 0)
    assert stored.expires_at == T0 + dt.timedelta(days=30)
    _, other = new_key(db, alice)
    assert parse(other)[1] != secret


@pytest.mark.parametrize("raw", ["", "berth_", "berth_x_" + "a" * 43, "berth_12" + "a" * 43,
                                 "berth__" + "a" * 43, "token_1_" + "a" * 43,
                                 "berth_1_short", "berth_12345678901_" + "a" * 43,
                                 "berth_\u0661_" + "a" * 43])
def test_anything_but_the_key_format_does_not_parse(raw):
    assert parse(raw) is None


def test_scopes_beyond_the_role_are_refused_and_nothing_is_stored(db, alice):
    with pytest.raises(BadRequest) as caught:
        new_key(db, alice, ["read", "admin"])
    assert caught.value.details == [{"field": "scopes",
                                     "message": "the user role cannot grant admin"}]
    db.rollback()
    assert db.scalars(select(ApiKey)).all() == []
    root = accounts.create_user(db, "root", "root@example.com", "hash", role="admin")
    key, _ = new_key(db, root, ["admin", "read"])
    assert key.scopes == ["read", "admin"]


def test_the_expiry_is_capped_by_the_setting(db, alice):
    with pytest.raises(BadRequest) as caught:
        new_key(db, alice, days=MAX_DAYS + 1)
    assert caught.value.details[0]["field"] == "expires_in_days"
    assert new_key(db, alice, days=MAX_DAYS)[0].expires_at == T0 + dt.timedelta(days=MAX_DAYS)


def test_at_most_max_active_keys_but_revoked_and_expired_ones_do_not_count(db, alice):
    first, _ = new_key(db, alice, days=1)
    new_key(db, alice)
    new_key(db, alice)
    with pytest.raises(Conflict, match="3 active API keys"):
        new_key(db, alice)
    api_keys.revoke(db, alice.id, first.id, T0)
    db.commit()
    new_key(db, alice, days=1)
    later = T0 + dt.timedelta(days=1)  # both one-day keys have expired
    new_key(db, alice, now=later)
    with pytest.raises(Conflict):
        new_key(db, alice, now=later)


def test_a_live_key_states_its_owner_scopes_and_hash_and_records_last_use(db, alice):
    key, raw = new_key(db, alice, ["read", "billing"])
    result = state(db, key, raw)
    assert result == {"key_id": key.id, "exists": True, "usable": True, "user_id": alice.id,
                      "username": "alice", "role": "user", "scopes": ["read", "billing"],
                      "secret_hash": key.secret_hash,
                      "expires_at": (T0 + dt.timedelta(days=30)).timestamp()}
    assert db.get(ApiKey, key.id).last_used_at == T0


def test_last_use_is_written_at_most_once_a_minute_and_never_for_a_wrong_secret(db, alice):
    key, raw = new_key(db, alice)
    api_keys.state(db, key.id, digest("not the secret"), T0)
    db.commit()
    assert db.get(ApiKey, key.id).last_used_at is None
    state(db, key, raw, T0)
    state(db, key, raw, T0 + dt.timedelta(seconds=59))
    assert db.get(ApiKey, key.id).last_used_at == T0
    state(db, key, raw, T0 + dt.timedelta(seconds=60))
    assert db.get(ApiKey, key.id).last_used_at == T0 + dt.timedelta(seconds=60)


def test_an_unknown_key_or_a_deleted_owner_is_not_usable(db, alice):
    key, raw = new_key(db, alice)
    assert api_keys.state(db, 999, digest("x"), T0) == {"key_id": 999, "exists": False,
                                                        "usable": False}
    db.delete(alice)
    db.commit()
    assert state(db, key, raw)["usable"] is False


@pytest.mark.parametrize("change", ["revoked", "disabled", "role", "promoted", "password"])
def test_a_key_ends_with_revocation_or_its_owners_account_role_or_version_for_good(
        db, alice, change):
    key, raw = new_key(db, alice)
    assert state(db, key, raw)["usable"]
    if change == "revoked":
        api_keys.revoke(db, alice.id, key.id, T0)
    elif change == "disabled":
        accounts.update_user(db, alice.id, {"disabled": True})
    elif change == "role":
        accounts.update_user(db, alice.id, {"role": "distributor"})
    elif change == "promoted":  # apply_distributor: no version change, but a new role
        accounts.grant_distributor(db, alice.id, 17, T0)
    else:
        sessions.end_every_session(db, alice)  # what a password change or reset does
    db.commit()
    assert state(db, key, raw)["usable"] is False
    expected = "revoked" if change == "revoked" else "ended"
    assert api_keys.to_dict(db.get(ApiKey, key.id), alice, T0)["status"] == expected
    # undoing the change does not revive the key
    accounts.update_user(db, alice.id, {"disabled": False, "role": "user"})
    db.commit()
    assert state(db, key, raw)["usable"] is False


def test_an_expired_key_is_still_usable_to_the_users_service_the_gateway_checks_expiry(
        db, alice):
    key, raw = new_key(db, alice, days=1)
    result = state(db, key, raw, T0 + dt.timedelta(days=2))
    assert result["usable"] and result["expires_at"] == (T0 + dt.timedelta(days=1)).timestamp()
    assert db.get(ApiKey, key.id).last_used_at is None  # an expired key is not used
    assert api_keys.to_dict(key, alice, T0 + dt.timedelta(days=2))["status"] == "expired"


def test_nobody_revokes_or_sees_another_users_key(db, alice):
    bob = accounts.create_user(db, "bob", "bob@example.com", "hash")
    key, raw = new_key(db, alice)
    with pytest.raises(NotFound):
        api_keys.revoke(db, bob.id, key.id, T0)
    with pytest.raises(NotFound):
        api_keys.revoke(db, bob.id, 999, T0)
    assert api_keys.list_keys(db, bob, T0, 50, 0)["keys"] == []
    assert state(db, key, raw)["usable"]


def test_revoking_twice_keeps_the_first_time(db, alice):
    key, _ = new_key(db, alice)
    api_keys.revoke(db, alice.id, key.id, T0)
    api_keys.revoke(db, alice.id, key.id, T0 + dt.timedelta(hours=1))
    assert db.get(ApiKey, key.id).revoked_at == T0


def test_the_listing_is_newest_first_with_status_and_never_a_secret(db, alice):
    old, _ = new_key(db, alice, name="old")
    new, raw = new_key(db, alice, ["read", "containers"], name="new")
    api_keys.revoke(db, alice.id, old.id, T0)
    db.commit()
    listing = api_keys.list_keys(db, alice, T0, 50, 0)
    assert listing["total"] == 2 and listing["user_id"] == alice.id
    assert [(k["name"], k["status"]) for k in listing["keys"]] == [("new", "active"),
                                                                  ("old", "revoked")]
    assert listing["keys"][0]["prefix"] == f"berth_{new.id}_"
    assert parse(raw)[1] not in repr(listing) and new.secret_hash not in repr(listing)
    assert api_keys.list_keys(db, alice, T0, 1, 1)["keys"][0]["name"] == "old"
