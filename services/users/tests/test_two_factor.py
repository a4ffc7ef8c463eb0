"""Two-factor sign-in without a broker (services.users.two_factor): codes computed with pyotp
at chosen times, the clock injected."""
import datetime as dt

import pyotp
import pytest
from sqlalchemy import select

from berth.docker.sealing import is_sealed, unseal
from berth.errors import BadRequest, Conflict, Unauthorized
from services.users import accounts, two_factor
from services.users.models import RecoveryCode, TwoFactor

T0 = dt.datetime(2024, 5, 1, 12, 0, 5, tzinfo=dt.timezone.utc)  # 5 s into a 30 s step
STEP = dt.timedelta(seconds=30)


def code(secret: str, at: dt.datetime) -> str:
    return pyotp.TOTP(secret).at(at)


def enrolled(db, user) -> tuple[str, list[str]]:
    secret, _ = two_factor.enrol(db, user, T0)
    codes = two_factor.confirm(db, user, code(secret, T0), T0)
    db.commit()
    return secret, codes


def test_enrolment_gives_an_otpauth_uri_and_keeps_the_secret_sealed(db, alice):
    secret, uri = two_factor.enrol(db, alice, T0)
    db.commit()
    assert uri.startswith("otpauth://totp/Berth:alice?") and f"secret={secret}" in uri
    assert "issuer=Berth" in uri
    row = db.get(TwoFactor, alice.id)
    assert is_sealed(row.secret) and secret not in row.secret and unseal(row.secret) == secret
    assert row.confirmed_at is None
    assert not two_factor.is_on(db, alice.id)
    assert two_factor.status(db, alice.id) == {"enabled": False, "pending": True,
                                               "enabled_at": None, "recovery_codes_left": 0}


def test_enrolling_again_before_confirming_replaces_the_secret(db, alice):
    first, _ = two_factor.enrol(db, alice, T0)
    second, _ = two_factor.enrol(db, alice, T0)
    assert first != second
    with pytest.raises(BadRequest):
        two_factor.confirm(db, alice, code(first, T0), T0)
    assert len(two_factor.confirm(db, alice, code(second, T0), T0)) == 10


def test_confirming_turns_it_on_with_ten_hashed_recovery_codes(db, alice):
    secret, codes = enrolled(db, alice)
    assert two_factor.is_on(db, alice.id)
    assert len(set(codes)) == 10 and all(len(c) == 19 and c.count("-") == 3 for c in codes)
    stored = db.scalars(select(RecoveryCode.code_hash).where(
        RecoveryCode.user_id == alice.id)).all()
    assert sorted(stored) == sorted(two_factor.recovery_hash(c) for c in codes)
    assert not set(codes) & set(stored)
    with pytest.raises(Conflict):  # on already: enrolling again needs disabling first
        two_factor.enrol(db, alice, T0)


def test_confirming_needs_an_enrolment_and_a_right_code(db, alice):
    with pytest.raises(Conflict):
        two_factor.confirm(db, alice, "123456", T0)
    secret, _ = two_factor.enrol(db, alice, T0)
    wrong = "000000" if code(secret, T0) != "000000" else "111111"
    with pytest.raises(BadRequest):
        two_factor.confirm(db, alice, wrong, T0)
    assert not two_factor.is_on(db, alice.id)


def test_a_code_is_accepted_one_step_either_side_and_never_further(db, alice):
    secret, _ = enrolled(db, alice)  # spent T0's step
    later = T0 + 10 * STEP
    assert two_factor.verify(db, alice.id, code(secret, later - STEP), later) == "totp"
    assert two_factor.verify(db, alice.id, code(secret, later), later) == "totp"
    assert two_factor.verify(db, alice.id, code(secret, later + STEP), later) == "totp"
    much_later = later + 10 * STEP
    for far in (much_later - 2 * STEP, much_later + 2 * STEP):
        if code(secret, far) in {code(secret, much_later + k * STEP) for k in (-1, 0, 1)}:
            continue  # (a one-in-a-million collision of codes)
        with pytest.raises(Unauthorized):
            two_factor.verify(db, alice.id, code(secret, far), much_later)


def test_a_code_is_never_accepted_twice_nor_one_older_than_the_last(db, alice):
    secret, _ = enrolled(db, alice)
    with pytest.raises(Unauthorized):  # the confirmation spent it
        two_factor.verify(db, alice.id, code(secret, T0), T0 + dt.timedelta(seconds=3))
    later = T0 + 5 * STEP
    assert two_factor.verify(db, alice.id, code(secret, later + STEP), later) == "totp"
    for earlier in (later, later - STEP):  # steps before the one accepted: spent too
        with pytest.raises(Unauthorized):
            two_factor.verify(db, alice.id, code(secret, earlier), later)
    assert db.get(TwoFactor, alice.id).last_step == pyotp.TOTP(secret).timecode(later + STEP)


def test_a_recovery_code_works_once_in_any_case_and_spacing(db, alice):
    _, codes = enrolled(db, alice)
    typed = codes[0].upper().replace("-", " ")
    assert two_factor.verify(db, alice.id, typed, T0) == "recovery"
    with pytest.raises(Unauthorized):
        two_factor.verify(db, alice.id, codes[0], T0)
    assert two_factor.status(db, alice.id)["recovery_codes_left"] == 9


def test_one_users_recovery_code_is_not_anothers(db, alice):
    bob = accounts.create_user(db, "bob", "bob@example.com", "hash")
    enrolled(db, bob)
    _, codes = enrolled(db, alice)
    with pytest.raises(Unauthorized):
        two_factor.verify(db, bob.id, codes[0], T0)


def test_without_two_factor_no_code_passes(db, alice):
    secret, _ = two_factor.enrol(db, alice, T0)  # pending only
    with pytest.raises(Unauthorized):
        two_factor.verify(db, alice.id, code(secret, T0), T0)


def test_new_recovery_codes_replace_the_old_ones(db, alice):
    secret, old = enrolled(db, alice)
    new = two_factor.regenerate(db, alice, code(secret, T0 + STEP), T0 + STEP)
    assert not set(new) & set(old)
    with pytest.raises(Unauthorized):
        two_factor.verify(db, alice.id, old[1], T0)
    assert two_factor.verify(db, alice.id, new[1], T0) == "recovery"
    with pytest.raises(BadRequest):  # a wrong code: nothing changes
        two_factor.regenerate(db, alice, "not-a-code", T0)


def test_disabling_needs_a_code_and_removes_secret_and_recovery_codes(db, alice):
    secret, codes = enrolled(db, alice)
    with pytest.raises(BadRequest):
        two_factor.disable(db, alice, "12345", T0)
    assert two_factor.is_on(db, alice.id)
    two_factor.disable(db, alice, codes[3], T0)
    db.commit()
    assert db.get(TwoFactor, alice.id) is None
    assert db.scalars(select(RecoveryCode).where(RecoveryCode.user_id == alice.id)).all() == []
    with pytest.raises(Conflict):
        two_factor.disable(db, alice, code(secret, T0 + STEP), T0 + STEP)


def test_failed_codes_are_throttled_per_user_apart_from_logins(db, alice):
    policy = accounts.ThrottlePolicy(max_failures=3, window_seconds=900)
    for _ in range(3):
        two_factor.check_throttle(db, alice.id, T0, policy)
        two_factor.record_failure(db, alice.id, T0, policy)
    db.commit()
    from berth.errors import TooManyRequests
    with pytest.raises(TooManyRequests):
        two_factor.check_throttle(db, alice.id, T0, policy)
    # the login throttle of the same name is apart, and a new window starts afresh
    accounts.check_throttle(db, accounts.throttle_key("alice"), T0, policy)
    two_factor.check_throttle(db, alice.id, T0 + dt.timedelta(seconds=900), policy)
    assert len(two_factor.throttle_key(alice.id)) != 64


@pytest.mark.parametrize("code", ["١٢٣٤٥٦", "１２３４５６", "²²²²²²"])
def test_digits_of_other_scripts_are_no_code(code):
    """str.isdigit() is true for them; they are refused, not compared (which would raise)."""
    assert two_factor.matching_step(pyotp.random_base32(), code, T0) is None
