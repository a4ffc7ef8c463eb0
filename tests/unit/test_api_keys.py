"""API keys at the gateway: the checker (gateway.sessions.ApiKeyChecker, with its per-worker
cache) and the scope every declared route needs (gateway.api.scope_of), walked over the
whole route table so a route is covered the day it is added."""
from __future__ import annotations

import re
import secrets
import threading

import pytest

from berth import api_keys
from berth.api_keys import NO_KEYS, SCOPES, digest
from berth.errors import ServiceUnavailable, Unauthorized
from gateway.api import PUBLIC, SIGNED_IN, ApiBlueprint
from gateway.app import create_app
from gateway.sessions import INVALID_KEY, ApiKeyChecker
from tests.unit.live_sessions import TOKEN_STATE, live_state

SECRET = secrets.token_urlsafe(32)
KEY = f"berth_41_{SECRET}"
NOW = 1_700_000_000.0


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


class Users:
    """The users service's ``api_key_state``, as a table the test edits."""

    def __init__(self):
        self.usable, self.exists, self.role = True, True, "user"
        self.scopes = ["read", "containers"]
        self.expires_at = NOW + 86400
        self.asked: list[tuple[int, str]] = []
        self.down = False

    def api_key_state(self, key_id, presented):
        self.asked.append((key_id, presented))
        if self.down:
            raise ServiceUnavailable("The users service did not answer")
        if not self.exists:
            return {"key_id": key_id, "exists": False, "usable": False}
        return {"key_id": key_id, "exists": True, "usable": self.usable, "user_id": 7,
                "username": "alice", "role": self.role, "scopes": self.scopes,
                "secret_hash": digest(SECRET), "expires_at": self.expires_at}


@pytest.fixture
def users():
    return Users()


@pytest.fixture
def clock():
    return Clock(1000.0)


@pytest.fixture
def wall():
    return Clock(NOW)


@pytest.fixture
def checker(users, clock, wall):
    return ApiKeyChecker(users.api_key_state, 2.0, clock, wall)


def refused(checker, key):
    with pytest.raises(Unauthorized) as caught:
        checker.check(key)
    return str(caught.value)


# --- the checker ----------------------------------------------------------------------------

def test_a_live_key_names_its_owner_and_scopes_and_sends_only_the_secrets_digest(checker,
                                                                                   users):
    actor, scopes, key_id = checker.check(KEY)
    assert (actor.user_id, actor.role, actor.username, key_id) == (7, "user", "alice", 41)
    assert scopes == {"read", "containers"}
    assert users.asked == [(41, digest(SECRET))]


def test_a_wrong_secret_for_a_real_key_is_refused(checker):
    assert refused(checker, f"berth_41_{secrets.token_urlsafe(32)}") == INVALID_KEY
    assert refused(checker, KEY[:-1] + ("A" if KEY[-1] != "A" else "B")) == INVALID_KEY
    assert checker.check(KEY)


@pytest.mark.parametrize("key", ["berth_", "berth_abc_" + SECRET, "berth_41", "berth_41_x"])
def test_a_malformed_key_is_refused_before_any_question(checker, users, key):
    assert refused(checker, key) == INVALID_KEY
    assert users.asked == []


@pytest.mark.parametrize("change", ["revoked", "unknown"])
def test_a_revocation_is_refused_once_the_cache_is_older_than_max_age(checker, users, clock,
                                                                      change):
    checker.check(KEY)
    if change == "revoked":  # revoked, or its owner disabled, demoted, or deleted
        users.usable = False
    else:
        users.exists = False
    clock.now += 1.9
    checker.check(KEY)  # the state fetched 1.9 s ago
    clock.now += 0.1
    assert refused(checker, KEY) == INVALID_KEY


def test_one_question_per_key_per_max_age(checker, users, clock):
    for _ in range(50):
        checker.check(KEY)
    assert len(users.asked) == 1
    clock.now += 2.0
    checker.check(KEY)
    assert len(users.asked) == 2


def test_forget_asks_again_at_once(checker, users):
    checker.check(KEY)
    users.usable = False
    checker.forget(41)
    assert refused(checker, KEY) == INVALID_KEY


def test_a_key_stops_at_its_expiry_by_the_wall_clock_even_when_cached(checker, users, wall):
    checker.check(KEY)
    wall.now = users.expires_at - 0.001
    checker.check(KEY)
    wall.now = users.expires_at
    assert refused(checker, KEY) == INVALID_KEY
    assert len(users.asked) == 1


def test_scopes_beyond_the_owners_current_role_are_dropped(checker, users):
    users.scopes = ["read", "admin"]  # (the users service never makes such a key)
    assert checker.check(KEY)[1] == {"read"}


def test_when_users_cannot_answer_a_stale_state_is_not_trusted(checker, users, clock):
    checker.check(KEY)
    users.down = True
    checker.check(KEY)
    clock.now += 2.0
    with pytest.raises(ServiceUnavailable):
        checker.check(KEY)


def test_concurrent_requests_with_one_key_share_one_question(users, clock, wall):
    gate = threading.Event()

    def slow_state(key_id, presented):
        gate.wait(5)
        return users.api_key_state(key_id, presented)

    checker = ApiKeyChecker(slow_state, 2.0, clock, wall)
    results = []
    threads = [threading.Thread(target=lambda: results.append(checker.check(KEY)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(5)
    assert len(results) == 8 and len(users.asked) == 1


# --- every route's scope ------------------------------------------------------------------

APP = create_app()

# the routes that manage credentials: a session signed in with a password only
CREDENTIALS = {("POST", "/api/keys"), ("GET", "/api/keys"), ("DELETE", "/api/keys/<int:key_id>"),
               ("GET", "/api/users/<int:user_id>/keys"),
               ("DELETE", "/api/users/<int:user_id>/keys/<int:key_id>"),
               ("POST", "/api/logout"), ("POST", "/api/password"), ("PUT", "/api/user/email"),
               ("PUT", "/api/users/<int:user_id>"), ("GET", "/api/2fa"),
               ("POST", "/api/2fa/enrol"), ("POST", "/api/2fa/confirm"),
               ("POST", "/api/2fa/disable"), ("POST", "/api/2fa/recovery_codes")}


# what is bound to a signed-in session rather than a credential: no key either
SESSION_ONLY = {("POST", "/api/stream/ticket")}


def signed_in_routes():
    routes = []
    for rule in sorted(APP.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        view = APP.view_functions[rule.endpoint]
        doc = getattr(view, "api_doc", None)
        access = doc.access if doc is not None else getattr(view, "fallback_access", None)
        if not access:  # public, or not an API route
            continue
        scope = doc.scope if doc is not None else view.fallback_scope
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, rule.rule, access, scope))
    return routes


ROUTES = signed_in_routes()


def test_every_signed_in_route_maps_to_exactly_one_known_scope():
    assert len(ROUTES) > 70
    for method, rule, access, scope in ROUTES:
        assert scope in SCOPES or scope == NO_KEYS, (method, rule, scope)
        if (method, rule) in CREDENTIALS | SESSION_ONLY:
            assert scope == NO_KEYS, (method, rule)
        elif method == "GET" or rule == "/api/traffic/stats":
            assert scope == api_keys.READ, (method, rule)
        elif set(access) == {"admin"}:
            assert scope == api_keys.ADMIN, (method, rule)
        else:
            assert scope in (api_keys.CONTAINERS, api_keys.BILLING), (method, rule)
    assert {(m, r) for m, r, _, s in ROUTES if s == NO_KEYS} == CREDENTIALS | SESSION_ONLY
    assert {r for m, r, _, s in ROUTES if s == api_keys.CONTAINERS} >= {
        "/api/containers", "/api/containers/<container_name>/stop"}
    assert {r for m, r, _, s in ROUTES if s == api_keys.BILLING} == {
        "/api/serial/redeem", "/api/serial/generate", "/api/user/apply_distributor"}


def test_a_non_admin_write_without_a_scope_fails_at_import():
    bp = ApiBlueprint("nowhere", __name__)
    with pytest.raises(ValueError, match="scope"):
        bp.api("/things", ["POST"], summary="x", access=SIGNED_IN)
    bp.api("/things", ["GET"], summary="x", access=SIGNED_IN)  # a read: read
    bp.api("/open", ["POST"], summary="x", access=PUBLIC)  # no credential at all
    with pytest.raises(ValueError, match="scope"):
        bp.api("/things/2", ["POST"], summary="x", access=SIGNED_IN, scope="everything")


class KeyedRpc:
    """The RPC pools for requests carrying a key: ``api_key_state`` says the key is live with
    ``scopes`` for an owner with ``role``; every other call is recorded and answered 503 (the
    request got through the gateway)."""

    def __init__(self, role, scopes):
        self.role, self.scopes, self.calls = role, scopes, []

    def call(self, service, method, *args, **kwargs):
        if (service, method) == TOKEN_STATE:
            return live_state(*args)
        if (service, method) == ("users", "api_key_state"):
            key_id, _ = args
            return {"key_id": key_id, "exists": True, "usable": True, "user_id": 1,
                    "username": "root", "role": self.role, "scopes": self.scopes,
                    "secret_hash": digest(SECRET), "expires_at": 4e9}
        self.calls.append((service, method))
        raise ServiceUnavailable("stand-in: the request reached RPC")


_key_ids = iter(range(1000, 10**6))


def keyed_client(role, scopes):
    stand_in = KeyedRpc(role, scopes)
    APP.extensions["rpc"] = APP.extensions["rpc_health"] = stand_in
    key = f"berth_{next(_key_ids)}_{SECRET}"  # a new key id: nothing cached
    return APP.test_client(), stand_in, {"Authorization": f"Bearer {key}"}


@pytest.fixture(autouse=True)
def restore_rpc():
    saved = APP.extensions["rpc"], APP.extensions["rpc_health"]
    yield
    APP.extensions["rpc"], APP.extensions["rpc_health"] = saved


def url(rule):
    return re.sub(r"<(?:(\w+):)?(\w+)>",
                  lambda m: {"int": "1", "path": "abc"}.get(m.group(1), "x"), rule)


@pytest.mark.parametrize("method, rule, access, scope", ROUTES,
                         ids=[f"{m} {r}" for m, r, _, _ in ROUTES])
def test_an_admins_key_without_the_routes_scope_gets_403_naming_it(method, rule, access,
                                                                   scope):
    others = [s for s in SCOPES if s != scope]
    client, stand_in, headers = keyed_client("admin", others)
    response = client.open(url(rule), method=method, headers=headers)
    assert response.status_code == 403, response.get_data(as_text=True)
    expected = ("API keys cannot be used here: sign in with a password" if scope == NO_KEYS
                else f"This API key lacks the {scope} scope")
    assert response.get_json()["error"] == expected
    assert stand_in.calls == []


@pytest.mark.parametrize("method, rule, access, scope",
                         [r for r in ROUTES if r[3] != NO_KEYS and "bad_id" not in r[1]],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_an_admins_key_with_the_routes_scope_passes_the_gateways_checks(method, rule, access,
                                                                        scope):
    """The other half: the scope lets the request through to the role check (an admin has
    every role a route allows) and on; the request then fails only on its content (400) or
    at the stand-in service (503)."""
    client, stand_in, headers = keyed_client("admin", [scope])
    response = client.open(url(rule), method=method, headers=headers)
    assert response.status_code in (400, 503), (response.status_code,
                                                    response.get_data(as_text=True))


def test_a_key_acts_with_its_owners_role_a_users_key_gets_no_admin_route():
    client, stand_in, headers = keyed_client("user", ["read", "containers", "billing"])
    response = client.get("/api/users", headers=headers)
    assert response.status_code == 403
    assert response.get_json()["error"] == "This route requires the admin role"
    response = client.post("/api/serial/redeem", json={"serial_code": "ABCDE-FGHIJ"},
                           headers=headers)
    assert response.status_code == 503 and stand_in.calls == [("billing", "redeem_serial")]


def test_a_key_of_the_wrong_form_or_a_revoked_one_is_401():
    client, _, _ = keyed_client("user", ["read"])
    response = client.get("/api/user/rental_info",
                          headers={"Authorization": "Bearer berth_1_short"})
    assert response.status_code == 401 and response.get_json()["error"] == INVALID_KEY


def test_openapi_says_what_scope_a_key_needs():
    operations = APP.test_client().get("/api/openapi.json").get_json()["paths"]
    assert operations["/api/containers"]["post"]["description"].endswith(
        "API keys: need the containers scope.")
    assert operations["/api/keys"]["post"]["description"].endswith(
        "API keys: not accepted (a signed-in session only).")
    assert "API keys" not in operations["/api/login"]["post"]["description"]
