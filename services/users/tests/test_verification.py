"""E-mail verification tokens without a broker: random, hashed at rest, single use, expiring."""
import datetime as dt
import hashlib

import pytest
from sqlalchemy import select

from berth.errors import BadRequest
from services.users import accounts, verification
from services.users.models import User, VerificationToken

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
TTL = 3600


@pytest.fixture
def alice(session):
    user = accounts.create_user(session, "alice", "alice@example.com", "hash")
    session.commit()
    return user


def issue(session, user, now=T0, ttl=TTL):
    raw, row = verification.issue_token(session, user, now, ttl)
    session.commit()
    return raw, row


def test_token_is_random_and_only_its_sha256_is_stored(session, alice):
    raw1, row1 = issue(session, alice)
    raw2, _ = issue(session, alice)
    assert raw1 != raw2
    assert len(raw1) >= 43  # 32 random bytes, URL-safe base64
    stored = session.execute(select(VerificationToken.token_hash, VerificationToken.email,
                                    VerificationToken.user_id)).all()
    hashes = {h for h, _, _ in stored}
    assert hashes == {hashlib.sha256(raw1.encode()).hexdigest(),
                      hashlib.sha256(raw2.encode()).hexdigest()}
    assert raw1 not in hashes and raw2 not in hashes
    assert row1.email == "alice@example.com" and row1.user_id == alice.id
    assert row1.expires_at == T0 + dt.timedelta(seconds=TTL)


def test_redeeming_marks_the_address_verified(session, alice):
    raw, row = issue(session, alice)
    at = T0 + dt.timedelta(minutes=5)
    user = verification.redeem_token(session, raw, at)
    session.commit()
    assert user.id == alice.id
    assert session.get(User, alice.id).email_verified_at == at
    assert accounts.user_to_dict(session.get(User, alice.id))["email_verified"] is True
    assert row.used_at == at


def test_a_token_works_only_once(session, alice):
    raw, _ = issue(session, alice)
    verification.redeem_token(session, raw, T0 + dt.timedelta(seconds=1))
    session.commit()
    with pytest.raises(BadRequest, match="Invalid or expired verification link"):
        verification.redeem_token(session, raw, T0 + dt.timedelta(seconds=2))


def test_a_token_expires(session, alice):
    raw, _ = issue(session, alice)
    with pytest.raises(BadRequest, match="Invalid or expired verification link"):
        verification.redeem_token(session, raw, T0 + dt.timedelta(seconds=TTL))
    assert session.get(User, alice.id).email_verified_at is None
    # still good one second before the deadline
    verification.redeem_token(session, raw, T0 + dt.timedelta(seconds=TTL - 1))
    assert session.get(User, alice.id).email_verified_at is not None


def test_a_token_is_rejected_if_the_email_changed_since_it_was_issued(session, alice):
    raw, _ = issue(session, alice)
    alice.email = "alice.new@example.com"
    session.commit()
    with pytest.raises(BadRequest, match="Invalid or expired verification link"):
        verification.redeem_token(session, raw, T0 + dt.timedelta(seconds=1))
    assert session.get(User, alice.id).email_verified_at is None


@pytest.mark.parametrize("raw", ["", "nope", "x" * 129])
def test_unknown_empty_or_oversized_tokens_are_rejected(session, alice, raw):
    issue(session, alice)
    with pytest.raises(BadRequest, match="Invalid or expired verification link"):
        verification.redeem_token(session, raw, T0)


def test_a_token_of_one_user_verifies_only_that_user(session, alice):
    bob = accounts.create_user(session, "bob", "bob@example.com", "hash")
    session.commit()
    raw, _ = issue(session, bob)
    verification.redeem_token(session, raw, T0 + dt.timedelta(seconds=1))
    session.commit()
    assert session.get(User, bob.id).email_verified_at is not None
    assert session.get(User, alice.id).email_verified_at is None


def test_a_second_token_keeps_the_first_verification_time(session, alice):
    raw1, _ = issue(session, alice)
    raw2, _ = issue(session, alice)
    first = T0 + dt.timedelta(seconds=10)
    verification.redeem_token(session, raw1, first)
    verification.redeem_token(session, raw2, first + dt.timedelta(seconds=10))
    session.commit()
    assert session.get(User, alice.id).email_verified_at == first


def test_recently_sent_window(session, alice):
    resend = 60
    assert not verification.recently_sent(session, alice, T0, resend)
    issue(session, alice, now=T0)
    assert verification.recently_sent(session, alice, T0 + dt.timedelta(seconds=59), resend)
    assert not verification.recently_sent(session, alice, T0 + dt.timedelta(seconds=60), resend)
    # the latest token counts, not the first
    issue(session, alice, now=T0 + dt.timedelta(seconds=100))
    assert verification.recently_sent(session, alice, T0 + dt.timedelta(seconds=120), resend)


def test_recently_sent_is_per_user(session, alice):
    bob = accounts.create_user(session, "bob", "bob@example.com", "hash")
    session.commit()
    issue(session, alice, now=T0)
    assert not verification.recently_sent(session, bob, T0 + dt.timedelta(seconds=1), 60)
