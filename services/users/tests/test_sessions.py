"""Sessions, token versions, password reset links, address changes and distributor grants,
without a broker (services.users.sessions, resets, accounts)."""
import datetime as dt

import pytest
from sqlalchemy import func, select

from berth.errors import BadRequest, Conflict, Unauthorized
from berth.tokens import LEEWAY_SECONDS
from services.users import accounts, resets, sessions
from services.users.models import LoginSession, PasswordResetToken, User
from services.users.verification import token_hash

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
HOUR = 3600


# --- sessions and versions -----------------------------------------------------------------

def test_a_new_user_has_version_zero_and_no_revoked_session(db, alice):
    state = sessions.token_state(db, alice.id, T0)
    assert state == {"user_id": alice.id, "exists": True, "version": 0, "disabled": False,
                     "role": "user", "revoked_sessions": []}


def test_logout_revokes_that_session_only(db, alice):
    first = sessions.open_session(db, alice, T0, HOUR)
    second = sessions.open_session(db, alice, T0, HOUR)
    db.commit()
    assert first.id != second.id and len(first.id) == 32
    assert sessions.revoke(db, alice.id, first.id, T0)
    assert not sessions.revoke(db, alice.id, first.id, T0)  # already revoked
    db.commit()
    assert sessions.token_state(db, alice.id, T0)["revoked_sessions"] == [first.id]


def test_nobody_revokes_another_users_session(db, alice):
    bob = accounts.create_user(db, "bob", "bob@example.com", "hash")
    hers = sessions.open_session(db, alice, T0, HOUR)
    db.commit()
    assert not sessions.revoke(db, bob.id, hers.id, T0)
    assert sessions.token_state(db, alice.id, T0)["revoked_sessions"] == []


def test_a_revoked_session_leaves_the_state_once_its_tokens_have_expired(db, alice):
    row = sessions.open_session(db, alice, T0, HOUR)
    sessions.revoke(db, alice.id, row.id, T0)
    db.commit()
    still = T0 + dt.timedelta(seconds=HOUR + LEEWAY_SECONDS - 1)
    over = T0 + dt.timedelta(seconds=HOUR + LEEWAY_SECONDS)
    assert sessions.token_state(db, alice.id, still)["revoked_sessions"] == [row.id]
    assert sessions.token_state(db, alice.id, over)["revoked_sessions"] == []


def test_a_login_deletes_the_users_sessions_that_are_over(db, alice):
    old = sessions.open_session(db, alice, T0, HOUR)
    db.commit()
    later = T0 + dt.timedelta(seconds=HOUR + LEEWAY_SECONDS + 1)
    sessions.open_session(db, alice, later, HOUR)
    db.commit()
    assert db.get(LoginSession, old.id) is None
    assert db.scalar(select(func.count()).select_from(LoginSession)) == 1


def test_live_session_refuses_a_revoked_expired_or_foreign_session(db, alice):
    row = sessions.open_session(db, alice, T0, HOUR)
    db.commit()
    assert sessions.live_session(db, alice.id, row.id, T0) is row
    with pytest.raises(Unauthorized):
        sessions.live_session(db, alice.id + 1, row.id, T0)
    with pytest.raises(Unauthorized):
        sessions.live_session(db, alice.id, row.id, T0 + dt.timedelta(hours=2))
    with pytest.raises(Unauthorized):
        sessions.live_session(db, alice.id, "no-such-session", T0)
    sessions.revoke(db, alice.id, row.id, T0)
    with pytest.raises(Unauthorized):
        sessions.live_session(db, alice.id, row.id, T0)


@pytest.mark.parametrize("changes, ends", [
    ({"role": "admin"}, True), ({"role": "user"}, False), ({"disabled": True}, True),
    ({"disabled": False}, False), ({"traffic_limit": 5}, False),
    ({"email": "new@example.com"}, False),
])
def test_a_role_change_or_disabling_ends_every_session_and_nothing_else_does(db, alice,
                                                                              changes, ends):
    accounts.update_user(db, alice.id, changes)
    db.commit()
    assert sessions.token_state(db, alice.id, T0)["version"] == (1 if ends else 0)


def test_the_state_of_a_user_that_does_not_exist_allows_no_token(db):
    state = sessions.token_state(db, 4242, T0)
    assert state["exists"] is False and state["disabled"] is True


# --- e-mail address changes ----------------------------------------------------------------

def test_a_new_address_is_unverified_and_a_taken_one_a_conflict(db, alice):
    alice.email_verified_at = T0
    accounts.create_user(db, "bob", "bob@example.com", "hash")
    db.commit()
    assert not accounts.change_email(db, alice, "ALICE@example.com")  # the same address
    assert alice.email_verified_at == T0
    with pytest.raises(Conflict):
        accounts.change_email(db, alice, "Bob@Example.com")
    assert accounts.change_email(db, alice, "Alice.New@Example.com")
    assert (alice.email, alice.email_verified_at) == ("alice.new@example.com", None)


# --- password reset links ------------------------------------------------------------------

def reset_link(db, user, now=T0, ttl=HOUR):
    row, event = resets.request(db, user, now, ttl, "http://berth.test/")
    db.commit()
    assert event.reset_url.startswith("http://berth.test/api/password/reset/")
    return row, event.reset_url.rsplit("/", 1)[1]


def test_a_reset_link_is_stored_hashed_and_works_once(db, alice):
    row, raw = reset_link(db, alice)
    assert row.token_hash == token_hash(raw) and raw not in row.token_hash
    assert resets.redeem(db, raw, T0 + dt.timedelta(minutes=5)) is alice
    assert alice.email_verified_at is not None  # the link proved the address
    db.commit()
    with pytest.raises(BadRequest, match="Invalid or expired"):
        resets.redeem(db, raw, T0 + dt.timedelta(minutes=6))


def test_a_reset_link_expires(db, alice):
    _, raw = reset_link(db, alice, ttl=HOUR)
    with pytest.raises(BadRequest):
        resets.redeem(db, raw, T0 + dt.timedelta(seconds=HOUR))


def test_using_one_link_spends_every_other_link_of_the_user(db, alice):
    _, older = reset_link(db, alice)
    _, newer = reset_link(db, alice, now=T0 + dt.timedelta(minutes=2))
    resets.redeem(db, newer, T0 + dt.timedelta(minutes=3))
    db.commit()
    with pytest.raises(BadRequest):
        resets.redeem(db, older, T0 + dt.timedelta(minutes=4))
    assert db.scalar(select(func.count()).select_from(PasswordResetToken)
                     .where(PasswordResetToken.used_at.is_(None))) == 0


@pytest.mark.parametrize("change", ["address", "disabled"])
def test_a_link_for_an_old_address_or_a_disabled_account_does_not_work(db, alice, change):
    _, raw = reset_link(db, alice)
    if change == "address":
        accounts.change_email(db, alice, "elsewhere@example.com")
    else:
        alice.disabled = True
    db.commit()
    with pytest.raises(BadRequest):
        resets.redeem(db, raw, T0)


@pytest.mark.parametrize("raw", ["", "x" * 129, "not-a-token"])
def test_an_unknown_or_malformed_link_is_refused(db, alice, raw):
    with pytest.raises(BadRequest):
        resets.find_usable(db, raw, T0)


def test_recently_sent_holds_back_a_second_mail(db, alice):
    reset_link(db, alice)
    assert resets.recently_sent(db, alice, T0 + dt.timedelta(seconds=59), 60)
    assert not resets.recently_sent(db, alice, T0 + dt.timedelta(seconds=60), 60)


# --- distributor grants --------------------------------------------------------------------

def test_a_serial_grants_the_role_once_and_never_after_a_demotion(db, alice):
    assert accounts.grant_distributor(db, alice.id, 7, T0).role == "distributor"
    db.commit()
    accounts.update_user(db, alice.id, {"role": "user"})  # an admin takes it back
    db.commit()
    assert accounts.grant_distributor(db, alice.id, 7, T0).role == "user"  # late event
    assert accounts.grant_distributor(db, alice.id, 8, T0).role == "distributor"  # new serial


def test_a_grant_never_demotes(db):
    root = accounts.create_user(db, "root", "root@example.com", "hash", role="admin")
    db.commit()
    assert accounts.grant_distributor(db, root.id, 9, T0).role == "admin"
    assert db.get(User, root.id).role == "admin"
