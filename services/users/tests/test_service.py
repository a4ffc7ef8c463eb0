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
    with pytest.raises(Conflict):
        register(rpc, "ALICE", email="other@example.com")
    with pytest.raises(Conflict):
        register(rpc, "alice2", email="Alice@Example.com")


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


def test_login_is_throttled_per_account_even_for_the_right_password(users, rpc):
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
