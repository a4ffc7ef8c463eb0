"""Two-factor sign-in through the users service on the real broker, against SQLite and
PostgreSQL: enrol, confirm, the login's two steps, recovery codes, disabling, the admins'
setting. Codes are computed with pyotp (the service's clock is the real one: a step the
service has spent is followed by the next step's code, which it accepts as drift)."""
import datetime as dt

import pyotp
import pytest

from berth import tokens
from berth.errors import BadRequest, Conflict, Forbidden, TooManyRequests, Unauthorized
from berth.settings import get_settings, reload_settings
from services.users.service import UsersService
from services.users.tests.test_service import actor_of, claims_of, register

PASSWORD = {"username": "alice", "password": "password-1"}


@pytest.fixture
def users(make_service):
    return make_service(UsersService)


def code_at(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(dt.datetime.now(dt.timezone.utc)
                                 + dt.timedelta(seconds=30 * steps_ahead))


def sign_in(rpc) -> str:
    return rpc.users.login(PASSWORD)["token"]


def turn_on(rpc, token, password="password-1") -> tuple[str, dict]:
    """Enrol and confirm: (secret, the confirmation's reply)."""
    enrolment = rpc.users.two_factor_enrol(actor_of(token), claims_of(token)["sid"], {"password": password})
    reply = rpc.users.two_factor_confirm(actor_of(token), claims_of(token)["sid"],
                                         {"code": code_at(enrolment["secret"])})
    return enrolment["secret"], reply


def test_enrolment_needs_the_password_and_gives_uri_qr_and_secret(users, rpc):
    register(rpc)
    token = sign_in(rpc)
    with pytest.raises(BadRequest) as wrong:
        rpc.users.two_factor_enrol(actor_of(token), claims_of(token)["sid"], {"password": "not-it"})
    assert wrong.value.details[0]["field"] == "password"
    reply = rpc.users.two_factor_enrol(actor_of(token), claims_of(token)["sid"], {"password": "password-1"})
    assert reply["otpauth_uri"] == pyotp.TOTP(reply["secret"]).provisioning_uri(
        name="alice", issuer_name="Berth")
    assert reply["qr_svg"].startswith("data:image/svg+xml")
    status = rpc.users.two_factor_status(actor_of(token))
    assert status == {"enabled": False, "pending": True, "enabled_at": None,
                      "recovery_codes_left": 0, "required": False}
    # pending only: the login is still one step
    assert rpc.users.login(PASSWORD)["message"] == "Login successful"


def test_confirming_turns_it_on_and_ends_the_other_sessions(users, rpc):
    user_id = register(rpc)
    token, other = sign_in(rpc), sign_in(rpc)
    secret, reply = turn_on(rpc, token)
    assert len(reply["recovery_codes"]) == 10
    fresh = claims_of(reply["token"])
    # every session is logged out, the caller's too: it goes on in a new one; the token
    # version stays (the user's API keys live on)
    state = rpc.users.token_state(user_id)
    assert state["revoked_sessions"] == sorted([claims_of(other)["sid"],
                                                claims_of(token)["sid"]])
    assert fresh["sid"] not in state["revoked_sessions"]
    assert state["version"] == fresh["ver"] == claims_of(other)["ver"] == 0
    status = rpc.users.two_factor_status(actor_of(reply["token"]))
    assert status["enabled"] and status["recovery_codes_left"] == 10
    with pytest.raises(Conflict):  # already on
        rpc.users.two_factor_enrol(actor_of(reply["token"]), fresh["sid"],
                                   {"password": "password-1"})
    with pytest.raises(Unauthorized):  # the session it was turned on in has given way
        rpc.users.two_factor_enrol(actor_of(token), claims_of(token)["sid"],
                                   {"password": "password-1"})


def test_a_login_then_needs_a_code_as_its_second_step(users, rpc):
    user_id = register(rpc)
    secret, _ = turn_on(rpc, sign_in(rpc))
    first = rpc.users.login(PASSWORD)
    assert first["two_factor_required"] is True and "token" not in first
    assert first["expires_in"] == tokens.CHALLENGE_TTL_SECONDS
    challenge = first["challenge"]
    with pytest.raises(Unauthorized):  # a challenge is no access token
        claims_of(challenge)
    with pytest.raises(Unauthorized) as wrong:
        rpc.users.login_second_factor({"challenge": challenge, "code": "000000"
                                       if code_at(secret, 1) != "000000" else "111111"})
    assert str(wrong.value) == "Invalid two-factor code"
    reply = rpc.users.login_second_factor({"challenge": challenge, "code": code_at(secret, 1)})
    assert reply["message"] == "Login successful"
    assert claims_of(reply["token"])["sub"] == str(user_id)
    with pytest.raises(Unauthorized):  # the same code again (its step is spent)
        rpc.users.login_second_factor({"challenge": challenge, "code": code_at(secret, 1)})


def test_a_recovery_code_signs_in_once(users, rpc):
    register(rpc)
    _, confirmed = turn_on(rpc, sign_in(rpc))
    recovery = confirmed["recovery_codes"][0]
    challenge = rpc.users.login(PASSWORD)["challenge"]
    assert rpc.users.login_second_factor({"challenge": challenge, "code": recovery})["token"]
    with pytest.raises(Unauthorized):
        rpc.users.login_second_factor({"challenge": challenge, "code": recovery})
    token = rpc.users.login_second_factor({"challenge": challenge,
                                           "code": confirmed["recovery_codes"][1]})["token"]
    assert rpc.users.two_factor_status(actor_of(token))["recovery_codes_left"] == 8


def test_a_challenge_is_bound_to_its_user_and_ends_with_a_password_change(users, rpc):
    register(rpc)
    register(rpc, "bob", "password-b")
    secret, confirmed = turn_on(rpc, sign_in(rpc))
    challenge = rpc.users.login(PASSWORD)["challenge"]
    bob = rpc.users.login({"username": "bob", "password": "password-b"})["token"]
    turn_on(rpc, bob, "password-b")
    bobs_challenge = rpc.users.login({"username": "bob", "password": "password-b"})["challenge"]
    with pytest.raises(Unauthorized):  # alice's recovery code on bob's challenge
        rpc.users.login_second_factor({"challenge": bobs_challenge,
                                       "code": confirmed["recovery_codes"][0]})
    token = rpc.users.login_second_factor({"challenge": challenge,
                                           "code": confirmed["recovery_codes"][0]})["token"]
    rpc.users.change_password(actor_of(token), claims_of(token)["sid"], {
        "current_password": "password-1", "new_password": "password-2"})
    with pytest.raises(Unauthorized) as ended:  # issued before the change
        rpc.users.login_second_factor({"challenge": challenge, "code": code_at(secret, 1)})
    assert "log in again" in str(ended.value)
    expired = tokens.issue(get_settings().secret, tokens.LOGIN_CHALLENGE, 1, -120, ver=0)
    with pytest.raises(Unauthorized):
        rpc.users.login_second_factor({"challenge": expired, "code": code_at(secret, 1)})
    with pytest.raises(BadRequest):
        rpc.users.login_second_factor({"challenge": challenge})


def test_disabling_needs_password_and_code_and_ends_the_other_sessions(users, rpc):
    user_id = register(rpc)
    secret, confirmed = turn_on(rpc, sign_in(rpc))
    token = confirmed["token"]
    sid = claims_of(token)["sid"]
    other = rpc.users.login_second_factor({
        "challenge": rpc.users.login(PASSWORD)["challenge"],
        "code": confirmed["recovery_codes"][0]})["token"]
    with pytest.raises(BadRequest) as wrong:
        rpc.users.two_factor_disable(actor_of(token), sid, {"password": "password-1",
                                                            "code": "12"})
    assert wrong.value.details[0]["field"] == "code"
    with pytest.raises(BadRequest):
        rpc.users.two_factor_disable(actor_of(token), sid, {"password": "nope",
                                                            "code": code_at(secret, 1)})
    reply = rpc.users.two_factor_disable(actor_of(token), sid, {
        "password": "password-1", "code": confirmed["recovery_codes"][5]})
    state = rpc.users.token_state(user_id)
    assert claims_of(reply["token"])["ver"] == state["version"] == 0  # API keys live on
    assert {claims_of(other)["sid"], sid} <= set(state["revoked_sessions"])  # both ended
    assert claims_of(reply["token"])["sid"] not in state["revoked_sessions"]
    assert rpc.users.login(PASSWORD)["message"] == "Login successful"
    assert not rpc.users.two_factor_status(actor_of(reply["token"]))["enabled"]


def test_new_recovery_codes_need_a_code_and_replace_the_old(users, rpc):
    register(rpc)
    secret, confirmed = turn_on(rpc, sign_in(rpc))
    actor, sid = actor_of(confirmed["token"]), claims_of(confirmed["token"])["sid"]
    with pytest.raises(BadRequest):
        rpc.users.two_factor_recovery_codes(actor, sid, {"code": "000000"
                                                         if code_at(secret, 1) != "000000"
                                                         else "111111"})
    new = rpc.users.two_factor_recovery_codes(actor, sid, {"code": code_at(secret, 1)})
    assert len(new["recovery_codes"]) == 10
    challenge = rpc.users.login(PASSWORD)["challenge"]
    with pytest.raises(Unauthorized):
        rpc.users.login_second_factor({"challenge": challenge,
                                       "code": confirmed["recovery_codes"][0]})
    assert rpc.users.login_second_factor({"challenge": challenge,
                                          "code": new["recovery_codes"][0]})["token"]


@pytest.fixture
def few_failures(monkeypatch):
    monkeypatch.setenv("BERTH_TOTP_MAX_FAILURES", "3")
    reload_settings()
    yield 3
    monkeypatch.undo()
    reload_settings()


def test_failed_codes_reach_the_databases_backstop(few_failures, users, rpc, databases):
    from sqlalchemy import create_engine, select

    from berth.db import normalise_url
    from services.users.models import OutboxEvent
    register(rpc)
    _, confirmed = turn_on(rpc, sign_in(rpc))
    challenge = rpc.users.login(PASSWORD)["challenge"]
    for _ in range(few_failures):
        with pytest.raises(Unauthorized):
            rpc.users.login_second_factor({"challenge": challenge, "code": "not-a-code"})
    with pytest.raises(TooManyRequests):  # even with a good code, until the window ends
        rpc.users.login_second_factor({"challenge": challenge,
                                       "code": confirmed["recovery_codes"][0]})
    # the password step is apart: it still answers with a challenge
    assert rpc.users.login(PASSWORD)["two_factor_required"] is True
    # the failure that reached the limit mails the owner (once)
    engine = create_engine(normalise_url(databases.url("users")))
    try:
        with engine.connect() as conn:
            locked = conn.execute(select(OutboxEvent.payload).where(
                OutboxEvent.event_type == "two_factor_locked")).scalars().all()
    finally:
        engine.dispose()
    assert len(locked) == 1 and '"failures":3' in locked[0].replace(" ", "")


@pytest.fixture
def admins_need_it(monkeypatch):
    monkeypatch.setenv("BERTH_REQUIRE_2FA_FOR_ADMINS", "true")
    reload_settings()
    yield
    monkeypatch.undo()
    reload_settings()


def test_an_admin_without_it_gets_an_enrol_only_token_until_confirming(admins_need_it, users,
                                                                       rpc):
    admin_id = register(rpc, "root", "root-password")
    rpc.users.update_user(admin_id, {"role": "admin"})
    register(rpc)
    assert "enrol_only" not in claims_of(sign_in(rpc))  # only admins
    first = rpc.users.login({"username": "root", "password": "root-password"})
    assert first["two_factor_enrolment_required"] is True
    assert claims_of(first["token"])["enrol_only"] is True
    assert rpc.users.two_factor_status(actor_of(first["token"]))["required"] is True
    enrolment = rpc.users.two_factor_enrol(actor_of(first["token"]),
                                           claims_of(first["token"])["sid"],
                                           {"password": "root-password"})
    confirmed = rpc.users.two_factor_confirm(actor_of(first["token"]),
                                             claims_of(first["token"])["sid"],
                                             {"code": code_at(enrolment["secret"])})
    assert "enrol_only" not in claims_of(confirmed["token"])
    with pytest.raises(Forbidden):  # required: it cannot be turned off
        rpc.users.two_factor_disable(actor_of(confirmed["token"]),
                                     claims_of(confirmed["token"])["sid"],
                                     {"password": "root-password",
                                      "code": confirmed["recovery_codes"][0]})
    assert rpc.users.login({"username": "root",
                            "password": "root-password"})["two_factor_required"] is True


def test_a_session_ended_by_a_password_change_cannot_turn_two_factor_on(users, rpc):
    """An attacker with the password and a session starts an enrolment; the owner changes
    the password. In the seconds a gateway still lets the attacker's old token through, the
    users service no longer knows that session: no confirmation, no recovery codes, and the
    owner's next login is one step."""
    register(rpc)
    attacker, owner = sign_in(rpc), sign_in(rpc)
    enrolment = rpc.users.two_factor_enrol(actor_of(attacker), claims_of(attacker)["sid"],
                                           {"password": "password-1"})
    rpc.users.change_password(actor_of(owner), claims_of(owner)["sid"], {
        "current_password": "password-1", "new_password": "password-2"})
    with pytest.raises(Unauthorized):
        rpc.users.two_factor_confirm(actor_of(attacker), claims_of(attacker)["sid"],
                                     {"code": code_at(enrolment["secret"])})
    with pytest.raises(Unauthorized):
        rpc.users.two_factor_enrol(actor_of(attacker), claims_of(attacker)["sid"],
                                   {"password": "password-2"})
    reply = rpc.users.login({"username": "alice", "password": "password-2"})
    assert reply["message"] == "Login successful" and reply["token"]


def test_an_admins_older_api_key_waits_for_the_enrolment_the_setting_requires(users, rpc,
                                                                              monkeypatch):
    from berth.api_keys import digest, parse as parse_key
    admin_id = register(rpc, "root", "root-password")
    rpc.users.update_user(admin_id, {"role": "admin"})
    token = rpc.users.login({"username": "root", "password": "root-password"})["token"]
    raw = rpc.users.create_api_key(actor_of(token), claims_of(token)["sid"], {
        "name": "ops bot", "scopes": ["read", "admin"], "expires_in_days": 30})["key"]
    key_id, secret = parse_key(raw)

    def usable():
        return rpc.users.api_key_state(key_id, digest(secret))["usable"]
    assert usable()
    monkeypatch.setenv("BERTH_REQUIRE_2FA_FOR_ADMINS", "true")
    reload_settings()
    try:
        assert not usable()  # the key is no way around the enrolment
        enrolment = rpc.users.two_factor_enrol(actor_of(token), claims_of(token)["sid"],
                                               {"password": "root-password"})
        rpc.users.two_factor_confirm(actor_of(token), claims_of(token)["sid"],
                                     {"code": code_at(enrolment["secret"])})
        assert usable()  # enrolled: the key works again (a two-factor change ends no key)
    finally:
        monkeypatch.undo()
        reload_settings()
