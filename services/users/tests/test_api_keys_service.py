"""API keys through the users service on the real broker, against SQLite and PostgreSQL."""
import pytest

from berth.api_keys import digest, parse
from berth.errors import BadRequest, Conflict, NotFound, Unauthorized
from berth.settings import reload_settings
from services.users.service import UsersService
from services.users.tests.test_service import claims_of


@pytest.fixture
def two_keys_each(monkeypatch):
    monkeypatch.setenv("BERTH_API_KEY_MAX_PER_USER", "2")
    monkeypatch.setenv("BERTH_API_KEY_MAX_DAYS", "90")
    reload_settings()
    yield
    monkeypatch.undo()
    reload_settings()


@pytest.fixture
def users(two_keys_each, make_service):
    return make_service(UsersService)


def register(rpc, name):
    user_id = rpc.users.add_user({"username": name, "password": "password-1",
                                  "email": f"{name}@example.com"})["user_id"]
    return {"user_id": user_id, "role": "user", "username": name}


def session_of(rpc, actor) -> str:
    """A live session of ``actor`` (keys are made from one): the sid of a fresh login."""
    token = rpc.users.login({"username": actor["username"], "password": "password-1"})["token"]
    return claims_of(token)["sid"]


def create(rpc, actor, scopes=("read",), days=30, name="shop bot", session_id=None):
    return rpc.users.create_api_key(actor, session_id or session_of(rpc, actor),
                                    {"name": name, "scopes": list(scopes),
                                     "expires_in_days": days})


def key_state(rpc, raw):
    key_id, secret = parse(raw)
    return rpc.users.api_key_state(key_id, digest(secret))


def test_create_use_list_and_revoke(users, rpc):
    alice = register(rpc, "alice")
    reply = create(rpc, alice, ["read", "containers"])
    assert reply["message"] == "API key created; this is the only time it is shown"
    assert reply["key"].startswith(f"berth_{reply['key_id']}_")
    assert (reply["status"], reply["scopes"], reply["last_used_at"]) == (
        "active", ["read", "containers"], None)
    state = key_state(rpc, reply["key"])
    assert (state["usable"], state["user_id"], state["role"]) == (True, alice["user_id"], "user")
    listing = rpc.users.list_api_keys(alice["user_id"], {})
    assert listing["total"] == 1 and listing["keys"][0]["last_used_at"] is not None
    assert reply["key"] not in repr(listing)
    revoked = rpc.users.revoke_api_key(alice["user_id"], reply["key_id"])
    assert revoked["key"]["status"] == "revoked"
    assert key_state(rpc, reply["key"])["usable"] is False


def test_limits_and_bad_input_change_nothing(users, rpc):
    alice = register(rpc, "alice")
    with pytest.raises(BadRequest):
        create(rpc, alice, days=91)
    with pytest.raises(BadRequest):
        create(rpc, alice, ["admin"])
    with pytest.raises(BadRequest):
        create(rpc, alice, ["everything"])
    with pytest.raises(BadRequest):
        create(rpc, alice, name="bell\x07")
    assert rpc.users.list_api_keys(alice["user_id"], {})["total"] == 0
    create(rpc, alice)
    create(rpc, alice)
    with pytest.raises(Conflict):
        create(rpc, alice)
    assert rpc.users.list_api_keys(alice["user_id"], {})["total"] == 2


def test_a_role_change_or_disabling_ends_every_key(users, rpc):
    alice = register(rpc, "alice")
    raw = create(rpc, alice)["key"]
    rpc.users.update_user(alice["user_id"], {"role": "distributor"})
    assert key_state(rpc, raw)["usable"] is False
    assert rpc.users.list_api_keys(alice["user_id"], {})["keys"][0]["status"] == "ended"
    bob = register(rpc, "bob")
    bobs_session = session_of(rpc, bob)
    raw = create(rpc, bob, session_id=bobs_session)["key"]
    rpc.users.update_user(bob["user_id"], {"disabled": True})
    assert key_state(rpc, raw)["usable"] is False
    with pytest.raises(Unauthorized):  # a disabled account makes no keys
        create(rpc, bob, session_id=bobs_session)


def test_a_session_ended_by_a_password_change_makes_no_key(users, rpc):
    """For a moment after a password change a gateway may still let an old token through
    (its cached state is up to BERTH_TOKEN_CHECK_SECONDS old): that session is gone in the
    users service, so the stolen token mints no key that would outlive the change."""
    alice = register(rpc, "alice")
    stolen, own = session_of(rpc, alice), session_of(rpc, alice)
    rpc.users.change_password(alice, own, {"current_password": "password-1",
                                           "new_password": "password-2"})
    with pytest.raises(Unauthorized):
        create(rpc, alice, session_id=stolen)
    assert rpc.users.list_api_keys(alice["user_id"], {})["keys"] == []


def test_nobody_revokes_another_users_key(users, rpc):
    alice, bob = register(rpc, "alice"), register(rpc, "bob")
    reply = create(rpc, alice)
    with pytest.raises(NotFound):
        rpc.users.revoke_api_key(bob["user_id"], reply["key_id"])
    assert key_state(rpc, reply["key"])["usable"] is True
