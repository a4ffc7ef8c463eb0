"""Users service on the real broker, against SQLite and PostgreSQL."""
import pytest

from berth import tokens
from berth.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized
from berth.settings import get_settings
from services.users.service import UsersService


@pytest.fixture
def users(make_service):
    return make_service(UsersService)


def register(rpc, name="alice", password="password-1", email=None):
    return rpc.users.add_user({"username": name, "password": password,
                               "email": email or f"{name}@example.com"})["user_id"]


def test_add_user_then_login_gives_a_complete_token(users, rpc):
    user_id = register(rpc)
    reply = rpc.users.login({"username": "alice", "password": "password-1"})
    assert reply["message"] == "Login successful"
    claims = tokens.decode(get_settings().secret, reply["token"], tokens.ACCESS)
    assert claims["sub"] == str(user_id) and claims["role"] == "user"
    assert {"exp", "iat", "jti"} <= set(claims)


def test_duplicate_username_or_email_is_a_conflict_in_any_case(users, rpc):
    register(rpc)
    with pytest.raises(Conflict) as name_taken:
        register(rpc, "ALICE", email="other@example.com")
    with pytest.raises(Conflict) as address_taken:
        register(rpc, "alice2", email="Alice@Example.com")
    # one answer for both: sign-up does not tell whether an address has an account
    assert str(name_taken.value) == str(address_taken.value) == \
        "That username or e-mail address cannot be used"


def test_invalid_registration_is_rejected_and_creates_nothing(users, rpc):
    with pytest.raises(BadRequest):
        rpc.users.add_user({"username": "a", "password": "short", "email": "nope"})
    assert rpc.users.list_users({})["total"] == 0


def test_wrong_password_and_unknown_user_get_the_same_error(users, rpc):
    register(rpc)
    with pytest.raises(Unauthorized) as wrong:
        rpc.users.login({"username": "alice", "password": "not-it-at-all"})
    with pytest.raises(Unauthorized) as unknown:
        rpc.users.login({"username": "nobody", "password": "not-it-at-all"})
    assert str(wrong.value) == str(unknown.value) == "Invalid username or password"


@pytest.fixture
def few_failures(monkeypatch):
    """The users database's backstop at 5 failures (its default, 100, is slow to reach)."""
    from berth.settings import reload_settings
    monkeypatch.setenv("BERTH_LOGIN_MAX_FAILURES", "5")
    reload_settings()
    yield 5
    monkeypatch.undo()
    reload_settings()


def test_sixteen_concurrent_correct_logins_are_never_throttled(few_failures, users, rpc):
    register(rpc)
    correct = {"username": "alice", "password": "password-1"}
    for attempt in range(2):  # with no failures before, then one failure short of the limit
        if attempt:
            for _ in range(few_failures - 1):
                with pytest.raises(Unauthorized):
                    rpc.users.login({"username": "alice", "password": "wrong-password"})
        replies = [rpc.users.login.call_async(correct) for _ in range(16)]
        assert [r.result()["message"] for r in replies] == ["Login successful"] * 16
    # only failures count: five now (after the successes cleared the earlier ones) refuse
    for _ in range(few_failures):
        with pytest.raises(Unauthorized):
            rpc.users.login({"username": "alice", "password": "wrong-password"})
    with pytest.raises(TooManyRequests):
        rpc.users.login(correct)


def test_login_is_throttled_per_account_even_for_the_right_password(few_failures, users, rpc):
    register(rpc)
    limit = get_settings().login_max_failures
    for _ in range(limit):
        with pytest.raises(Unauthorized):
            rpc.users.login({"username": "alice", "password": "wrong-password"})
    with pytest.raises(TooManyRequests):
        rpc.users.login({"username": "alice", "password": "password-1"})
    for _ in range(limit):  # an unknown account is throttled the same way
        with pytest.raises(Unauthorized):
            rpc.users.login({"username": "ghost", "password": "wrong-password"})
    with pytest.raises(TooManyRequests):
        rpc.users.login({"username": "ghost", "password": "wrong-password"})


def test_disabled_user_cannot_log_in(users, rpc):
    user_id = register(rpc)
    rpc.users.update_user(user_id, {"disabled": True})
    with pytest.raises(Forbidden):
        rpc.users.login({"username": "alice", "password": "password-1"})


def test_update_user_changes_only_given_fields_and_null_limit_restores_default(users, rpc):
    user_id = register(rpc)
    reply = rpc.users.update_user(user_id, {"traffic_limit": 5_000_000, "role": "distributor"})
    assert reply["user"]["traffic_limit"] == 5_000_000
    assert reply["user"]["role"] == "distributor"
    reply = rpc.users.update_user(user_id, {"traffic_limit": None})
    assert reply["user"]["traffic_limit"] is None
    assert reply["user"]["role"] == "distributor"
    with pytest.raises(NotFound):
        rpc.users.update_user(999_999, {"disabled": True})
    with pytest.raises(BadRequest):
        rpc.users.update_user(user_id, {})


def test_traffic_limits_give_each_override_or_none(users, rpc):
    limited = register(rpc, "limited")
    default = register(rpc, "default")
    rpc.users.update_user(limited, {"traffic_limit": 7_000_000_000})
    assert rpc.users.traffic_limits([limited, default, 999_999]) == {
        str(limited): 7_000_000_000, str(default): None}


def test_usernames_name_each_known_user_and_nothing_else(users, rpc):
    ann, ben = register(rpc, "ann"), register(rpc, "ben")
    reply = rpc.users.usernames([ben, ann, ann, 999_999])
    assert reply == {"usernames": {str(ann): "ann", str(ben): "ben"}}  # no address, no role
    assert rpc.users.usernames([]) == {"usernames": {}}


def test_acl_generate_update_logs_info(users, rpc):
    user_id = register(rpc)
    admin = {"user_id": 1, "role": "admin", "username": "root"}
    rpc.users.generate_acl(admin, {"user_id": user_id, "permissions": ["read", "read", "write"]})
    with pytest.raises(Conflict):
        rpc.users.generate_acl(admin, {"user_id": user_id, "permissions": ["read"]})
    rpc.users.update_acl(admin, {"user_id": user_id, "permissions": ["read", "execute"]})
    info = rpc.users.user_acl_info(user_id)
    assert info == {"user_id": user_id,
                    "acl_info": {"permissions": ["read", "execute"], "role": "user"}}
    logs = rpc.users.acl_logs(user_id, {})
    assert [entry["action"] for entry in logs["logs"]] == ["updated", "created"]
    with pytest.raises(NotFound):
        rpc.users.update_acl(admin, {"user_id": 424242, "permissions": ["read"]})


def test_acl_file_link_serves_the_file_and_rejects_other_tokens(users, rpc):
    user_id = register(rpc)
    admin = {"user_id": 1, "role": "admin", "username": "root"}
    rpc.users.generate_acl(admin, {"user_id": user_id, "permissions": ["read"]})
    link = rpc.users.acl_download_link({"user_id": user_id, "role": "user", "username": "alice"})
    token = link["acl_file"].rsplit("/", 1)[1]
    served = rpc.users.acl_file(token)
    assert '"permissions": [\n    "read"\n  ]' in served["content"]
    access = rpc.users.login({"username": "alice", "password": "password-1"})["token"]
    with pytest.raises(Unauthorized):
        rpc.users.acl_file(access)  # a login token is not a file link


def test_an_unreachable_database_is_service_unavailable_not_an_internal_error(
        container_factory, amqp_uri, rpc):
    from berth.errors import ServiceUnavailable
    from tests.fixtures import service_config

    # nothing listens on port 9 of 127.0.0.1: every connection is refused at once
    config = service_config(amqp_uri, "postgresql://postgres@127.0.0.1:9/berth_nowhere")
    container_factory(UsersService, config).start()
    with pytest.raises(ServiceUnavailable, match="users database is unavailable"):
        rpc.users.list_users({})
    with pytest.raises(ServiceUnavailable):
        rpc.users.health()


def test_the_verification_link_does_not_stay_in_the_outbox_once_published(
        make_service, rpc, databases):
    import json

    from sqlalchemy import create_engine, select

    from berth.db import normalise_url
    from services.alerts.service import AlertsService
    from services.users.models import OutboxEvent
    from tests.support import poll

    make_service(UsersService)
    make_service(AlertsService)  # binds the event's queue, so it can be published
    register(rpc, "secretive")
    engine = create_engine(normalise_url(databases.url("users")))
    try:
        def outbox_row():
            with engine.connect() as conn:
                return conn.execute(select(OutboxEvent.published_at, OutboxEvent.payload)
                                    .where(OutboxEvent.event_type ==
                                           "verification_email_requested")).one()
        row = poll(outbox_row, until=lambda r: r.published_at is not None, timeout=15,
                   interval=0.2, what="the event published")
    finally:
        engine.dispose()
    assert "verify_email" not in row.payload
    assert set(json.loads(row.payload)) == {"event_id", "occurred_at", "version"}


# --- sessions and passwords ------------------------------------------------------------------

def claims_of(token):
    return tokens.decode(get_settings().secret, token, tokens.ACCESS)


def actor_of(token):
    claims = claims_of(token)
    return {"user_id": int(claims["sub"]), "role": claims["role"], "username": claims["username"]}


def test_each_login_opens_its_own_session_at_the_current_version(users, rpc):
    user_id = register(rpc)
    first = claims_of(rpc.users.login({"username": "alice", "password": "password-1"})["token"])
    second = claims_of(rpc.users.login({"username": "alice", "password": "password-1"})["token"])
    assert first["sid"] != second["sid"] and first["ver"] == second["ver"] == 0
    state = rpc.users.token_state(user_id)
    assert state == {"user_id": user_id, "exists": True, "version": 0, "disabled": False,
                     "role": "user", "revoked_sessions": []}


def test_logout_revokes_only_the_callers_session(users, rpc):
    user_id = register(rpc)
    token = rpc.users.login({"username": "alice", "password": "password-1"})["token"]
    other = rpc.users.login({"username": "alice", "password": "password-1"})["token"]
    assert rpc.users.logout(actor_of(token), claims_of(token)["sid"]) == {"message": "Signed out"}
    assert rpc.users.token_state(user_id)["revoked_sessions"] == [claims_of(token)["sid"]]
    assert claims_of(other)["sid"] not in rpc.users.token_state(user_id)["revoked_sessions"]


def test_an_admin_role_change_or_disabling_moves_the_version(users, rpc):
    user_id = register(rpc)
    rpc.users.update_user(user_id, {"traffic_limit": 10})
    assert rpc.users.token_state(user_id)["version"] == 0
    rpc.users.update_user(user_id, {"role": "distributor"})
    assert rpc.users.token_state(user_id)["version"] == 1
    rpc.users.update_user(user_id, {"disabled": True})
    state = rpc.users.token_state(user_id)
    assert state["version"] == 2 and state["disabled"] is True
    assert rpc.users.token_state(999_999)["exists"] is False


def test_a_password_change_needs_the_current_one_and_ends_the_other_sessions(users, rpc):
    user_id = register(rpc)
    token = rpc.users.login({"username": "alice", "password": "password-1"})["token"]
    sid = claims_of(token)["sid"]
    with pytest.raises(BadRequest) as wrong:
        rpc.users.change_password(actor_of(token), sid, {"current_password": "not-it",
                                                         "new_password": "password-2"})
    assert wrong.value.details[0]["field"] == "current_password"
    with pytest.raises(BadRequest):  # the password policy of registration
        rpc.users.change_password(actor_of(token), sid, {"current_password": "password-1",
                                                         "new_password": "short"})
    reply = rpc.users.change_password(actor_of(token), sid, {"current_password": "password-1",
                                                             "new_password": "password-2"})
    fresh = claims_of(reply["token"])
    assert fresh["sid"] == sid and fresh["ver"] == 1  # this session goes on, the rest end
    assert rpc.users.token_state(user_id)["version"] == 1
    with pytest.raises(Unauthorized):
        rpc.users.login({"username": "alice", "password": "password-1"})
    assert rpc.users.login({"username": "alice", "password": "password-2"})["token"]


def test_a_password_change_from_a_revoked_session_is_refused(users, rpc):
    register(rpc)
    token = rpc.users.login({"username": "alice", "password": "password-1"})["token"]
    rpc.users.logout(actor_of(token), claims_of(token)["sid"])
    with pytest.raises(Unauthorized):
        rpc.users.change_password(actor_of(token), claims_of(token)["sid"], {
            "current_password": "password-1", "new_password": "password-2"})


def test_wrong_current_passwords_count_toward_the_login_throttle(users, rpc):
    register(rpc)
    token = rpc.users.login({"username": "alice", "password": "password-1"})["token"]
    for _ in range(get_settings().login_max_failures):
        with pytest.raises(BadRequest):
            rpc.users.change_password(actor_of(token), claims_of(token)["sid"], {
                "current_password": "guess-guess", "new_password": "password-2"})
    with pytest.raises(TooManyRequests):
        rpc.users.change_password(actor_of(token), claims_of(token)["sid"], {
            "current_password": "password-1", "new_password": "password-2"})


def reset_rows(databases):
    from sqlalchemy import create_engine, select

    from berth.db import normalise_url
    from services.users.models import PasswordResetToken
    engine = create_engine(normalise_url(databases.url("users")))
    try:
        with engine.connect() as conn:
            return conn.execute(select(PasswordResetToken.user_id, PasswordResetToken.email,
                                       PasswordResetToken.used_at)).all()
    finally:
        engine.dispose()


def test_forgot_password_answers_the_same_and_issues_a_link_only_for_an_account(
        users, rpc, databases):
    user_id = register(rpc)
    known = rpc.users.forgot_password({"email": "ALICE@example.com"})
    unknown = rpc.users.forgot_password({"email": "nobody@example.com"})
    again = rpc.users.forgot_password({"email": "alice@example.com"})  # within the pause
    assert known == unknown == again
    assert [(r.user_id, r.email) for r in reset_rows(databases)] == [
        (user_id, "alice@example.com")]


def test_a_reset_sets_the_password_ends_every_session_and_spends_the_link(
        users, rpc, databases):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from berth.db import normalise_url, utcnow
    from services.users import resets
    from services.users.models import User

    user_id = register(rpc)
    rpc.users.login({"username": "alice", "password": "password-1"})
    engine = create_engine(normalise_url(databases.url("users")))
    try:
        with Session(engine) as session:  # what forgot_password does, keeping the raw token
            _, event = resets.request(session, session.get(User, user_id), utcnow(), 3600,
                                      "http://berth.test")
            session.commit()
    finally:
        engine.dispose()
    raw = event.reset_url.rsplit("/", 1)[1]
    assert rpc.users.check_reset_token(raw)["username"] == "alice"
    with pytest.raises(BadRequest):
        rpc.users.reset_password({"token": raw, "new_password": "short"})
    reply = rpc.users.reset_password({"token": raw, "new_password": "password-9"})
    assert reply["message"].startswith("Password reset")
    assert rpc.users.token_state(user_id)["version"] == 1
    assert rpc.users.login({"username": "alice", "password": "password-9"})
    with pytest.raises(BadRequest, match="Invalid or expired password reset link"):
        rpc.users.reset_password({"token": raw, "new_password": "password-10"})
    with pytest.raises(BadRequest):
        rpc.users.check_reset_token(raw)


def test_an_address_change_is_unverified_and_checks_the_password(users, rpc, databases):
    from sqlalchemy import create_engine, select

    from berth.db import normalise_url
    from services.users.models import VerificationToken

    user_id = register(rpc)
    register(rpc, "bob")
    me = {"user_id": user_id, "role": "user", "username": "alice"}
    sid = claims_of(rpc.users.login({"username": "alice", "password": "password-1"})["token"])["sid"]
    with pytest.raises(BadRequest) as wrong:
        rpc.users.change_own_email(me, sid, {"email": "new@example.com",
                                             "password": "nope-nope"})
    assert wrong.value.details[0]["field"] == "password"
    with pytest.raises(Conflict):
        rpc.users.change_own_email(me, sid, {"email": "bob@example.com",
                                             "password": "password-1"})
    reply = rpc.users.change_own_email(me, sid, {"email": "New@Example.com",
                                                 "password": "password-1"})
    assert reply["user"]["email"] == "new@example.com"
    assert reply["user"]["email_verified"] is False
    reply = rpc.users.update_user(user_id, {"email": "admin-set@example.com"})
    assert reply["user"]["email"] == "admin-set@example.com"
    engine = create_engine(normalise_url(databases.url("users")))
    try:
        with engine.connect() as conn:  # registration, then one per change
            addresses = conn.execute(select(VerificationToken.email).where(
                VerificationToken.user_id == user_id).order_by(VerificationToken.id)).scalars()
            assert list(addresses) == ["alice@example.com", "new@example.com",
                                       "admin-set@example.com"]
    finally:
        engine.dispose()
    assert rpc.users.contact(user_id)["email_verified"] is False


def test_grant_distributor_grants_once_per_serial(users, rpc):
    user_id = register(rpc)
    assert rpc.users.grant_distributor(user_id, 11) == {"user_id": user_id,
                                                        "role": "distributor"}
    claims = claims_of(rpc.users.login({"username": "alice", "password": "password-1"})["token"])
    assert claims["role"] == "distributor"
    rpc.users.update_user(user_id, {"role": "user"})
    assert rpc.users.grant_distributor(user_id, 11)["role"] == "user"
    with pytest.raises(NotFound):
        rpc.users.grant_distributor(999_999, 12)
