"""Every access rule the route table declares is enforced by the declaration itself.

The routes are walked from the app's url_map, so a route is covered the day it is added: a
role a route does not allow gets 403, a non-admin naming another user where a route declares
``owner=`` gets 403, and neither reaches RPC (``NoRpc`` fails any call). A lint makes every
route a non-admin may call, whose request can name a user, either declare the owner field or
say here why that field names no owner.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import pytest

from berth.actor import NOT_YOURS, Actor
from berth.errors import ServiceUnavailable
from berth.settings import get_settings
from gateway.api import (OWNER_FIELDS, PUBLIC, SIGNED_IN, ApiBlueprint, RouteDoc,
                         path_parameters, request_fields)
from gateway.app import create_app
from tests.unit.live_sessions import TOKEN_STATE, access_token, live_state

ROOT = Actor(1, "admin", "root")
ALICE = Actor(2, "user", "alice")
BOB = Actor(3, "user", "bob")  # the other user every refused request names
DIANA = Actor(4, "distributor", "diana")
NON_ADMINS = (ALICE, DIANA)

APP = create_app()  # the route table, needed to parametrise

# Rules that are not declared with ``api()`` on purpose: the API's own documentation, public.
UNDECLARED = {"/api/openapi.json", "/api/docs", "/api/docs/init.js", "/api/docs/<path:filename>",
              # the live event stream: authenticated by its ticket, not a bearer token
              # (tests/unit/test_live.py)
              "/api/stream"}

# A valid request to a route whose owner field is in its body or query, but for that field,
# which the test fills in (another user's id or name, or the caller's own). A route that
# declares an owner in its body or query and has no entry here fails the test.
SAMPLES = {
    ("GET", "/api/logs/user_by_time"): {"query": {"start": "2024-01-01", "end": "2024-01-31"}},
    ("POST", "/api/user/apply_distributor"): {"body": {"distributor_code": "ABCDE-FGHIJ"}},
    ("POST", "/api/containers"): {"body": {"container_name": "box", "image": "nginx:1.27"}},
}

# Routes a non-admin may call whose request has a ``user_id`` or ``username`` that does not
# say whose records the route serves, so they declare no owner (and why):
NOT_AN_OWNER = {
    # the name the new account will have; nobody is signed in yet
    ("POST", "/api/add_user"): "username",
    # whom to sign in as; the password proves it, nobody is signed in yet
    ("POST", "/api/login"): "username",
    # a filter only an admin's listing honours: the containers service lists a non-admin's
    # own containers whatever it says (services.containers.lifecycle.listing)
    ("GET", "/api/containers"): "user_id",
    # the customer a rental serial is issued to: an admin names anyone, a distributor only a
    # user who redeemed one of their serials (else 404, as for no such user: billing's
    # generate_serial; services/billing/tests/test_distributor_privacy.py)
    ("POST", "/api/serial/generate"): "user_id",
}


@dataclass(frozen=True)
class Route:
    method: str
    rule: str
    access: tuple
    doc: RouteDoc | None  # None: a bad-id fallback (``api(..., bad_id=)``)

    def __str__(self):
        return f"{self.method} {self.rule}"

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.rule


def route_table() -> list[Route]:
    """Every method of every rule ``api()`` declared, and of the bad-id fallbacks it added."""
    routes = []
    for rule in sorted(APP.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        view = APP.view_functions[rule.endpoint]
        doc = getattr(view, "api_doc", None)
        access = doc.access if doc is not None else getattr(view, "fallback_access", None)
        if access is None:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append(Route(method, rule.rule, access, doc))
    return routes


ROUTES = route_table()
DECLARED = [r for r in ROUTES if r.doc is not None]
OWNED = [r for r in DECLARED if r.doc.owner is not None]
REFUSED = [(route, actor) for route in ROUTES for actor in NON_ADMINS
           if route.access != PUBLIC and actor.role not in route.access]
# a non-admin the route lets in by role, naming a user: the owner check's cases (a role the
# route refuses is REFUSED's case)
OWNED_CASES = [(route, actor) for route in OWNED for actor in NON_ADMINS
               if actor.role in route.access]


def ids(case) -> str:
    if isinstance(case, Route):
        return str(case)
    if isinstance(case, Actor):
        return case.role
    return None


def url(route: Route, **values) -> str:
    """The route's path with each parameter filled: ``values`` first, else a placeholder of
    the parameter's type (a bad-id fallback's ``<path:bad_id>`` gets text, as it must)."""
    def fill(match):
        converter, name = match.groups()
        if name in values:
            return str(values[name])
        return {"int": "1", "path": "abc"}.get(converter, "x")
    return re.sub(r"<(?:(\w+):)?(\w+)>", fill, route.rule)


def bearer(actor: Actor) -> dict:
    token = access_token(get_settings().secret, actor.user_id, actor.role, actor.username)
    return {"Authorization": f"Bearer {token}"}


class NoRpc:
    """Stands in for the RPC pools and records any call, so a case that reached RPC fails."""

    def __init__(self):
        self.calls = []

    def call(self, service, method, *args, **kwargs):
        if (service, method) == TOKEN_STATE:  # the session check: the token is live
            return live_state(*args)
        self.calls.append((service, method))
        raise AssertionError(f"unexpected RPC {service}.{method}")


class ServiceReached:
    """Stands in for the RPC pools for requests that must get through: records the call and
    answers 503, so the test sees the gateway let it through without any service."""

    def __init__(self):
        self.calls = []

    def call(self, service, method, *args, **kwargs):
        if (service, method) == TOKEN_STATE:  # the session check: the token is live
            return live_state(*args)
        self.calls.append((service, method, args))
        raise ServiceUnavailable("stand-in: the request reached RPC")


def _with_rpc(stand_in):
    saved = APP.extensions["rpc"], APP.extensions["rpc_health"]
    APP.extensions["rpc"] = APP.extensions["rpc_health"] = stand_in
    return saved


@pytest.fixture
def client():
    guard = NoRpc()
    saved = _with_rpc(guard)
    yield APP.test_client()
    APP.extensions["rpc"], APP.extensions["rpc_health"] = saved
    assert guard.calls == [], "these requests must be answered by the gateway alone"


@pytest.fixture
def reaching():
    stand_in = ServiceReached()
    saved = _with_rpc(stand_in)
    yield APP.test_client(), stand_in
    APP.extensions["rpc"], APP.extensions["rpc_health"] = saved


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body
    return body["error"]


# --- the walk sees every route -----------------------------------------------------------

def test_every_api_route_is_declared_so_the_walk_sees_it():
    undeclared = sorted(rule.rule for rule in APP.url_map.iter_rules()
                        if rule.rule.startswith("/api") and rule.rule not in UNDECLARED
                        and not hasattr(APP.view_functions[rule.endpoint], "api_doc")
                        and not hasattr(APP.view_functions[rule.endpoint], "fallback_access"))
    assert undeclared == [], "declare these with bp.api(...) (access, owner)"
    assert len(DECLARED) > 60 and len(OWNED) >= 8 and len(REFUSED) > 80  # the walk walks


# --- roles --------------------------------------------------------------------------------

@pytest.mark.parametrize("route", [r for r in ROUTES if r.access != PUBLIC], ids=ids)
def test_every_signed_in_route_wants_a_token(client, route):
    assert error_of(client.open(url(route), method=route.method), 401)


@pytest.mark.parametrize("route, actor", REFUSED, ids=ids)
def test_a_role_a_route_does_not_allow_gets_403_without_any_rpc(client, route, actor):
    """A plain user on every route that excludes users (admin and distributor routes), a
    distributor on every admin-only route; no body is needed: the role comes first."""
    message = error_of(client.open(url(route), method=route.method, headers=bearer(actor)),
                       403)
    assert message.startswith("This route requires the"), message


# --- self or admin ------------------------------------------------------------------------

def owner_location(route: Route) -> str:
    owner = route.doc.owner
    if owner in path_parameters(route.rule):
        return "path"
    if route.doc.body is not None and owner in route.doc.body.model_fields:
        return "body"
    return "query"


def naming(route: Route, who: Actor) -> dict:
    """``client.open`` arguments for a valid request to ``route`` whose owner field names
    ``who``, where the declaration looks for it."""
    owner = route.doc.owner
    value = who.user_id if owner == "user_id" else who.username
    where = owner_location(route)
    sample = SAMPLES.get(route.key)
    if sample is None and where != "path":
        pytest.fail(f"{route} declares owner={owner!r} in its {where}: add a valid request "
                    f"to SAMPLES so that this test can check it")
    sample = copy.deepcopy(sample or {})
    if where != "path":
        sample.setdefault(where, {})[owner] = value
    request = {"path": url(route, **({owner: value} if where == "path" else {})),
               "method": route.method}
    if "body" in sample:
        request["json"] = sample["body"]
    if "query" in sample:
        request["query_string"] = sample["query"]
    return request


@pytest.mark.parametrize("route, actor", OWNED_CASES, ids=ids)
def test_a_non_admin_naming_another_user_gets_403_without_any_rpc(client, route, actor):
    response = client.open(**naming(route, BOB), headers=bearer(actor))
    assert error_of(response, 403) == NOT_YOURS


@pytest.mark.parametrize("route, actor", OWNED_CASES, ids=ids)
def test_a_non_admin_naming_themselves_gets_through(reaching, route, actor):
    """The other half: the same request naming the caller reaches the service, so the 403
    above is the owner check's, not a bad sample's."""
    client, stand_in = reaching
    assert error_of(client.open(**naming(route, actor), headers=bearer(actor)), 503)
    assert len(stand_in.calls) == 1


@pytest.mark.parametrize("route", OWNED, ids=ids)
def test_an_admin_naming_any_user_gets_through(reaching, route):
    client, stand_in = reaching
    assert error_of(client.open(**naming(route, BOB), headers=bearer(ROOT)), 503)
    assert len(stand_in.calls) == 1


def test_a_username_is_its_owner_whatever_its_case(reaching):
    client, stand_in = reaching
    error_of(client.get("/api/acl/download/ALICE", headers=bearer(ALICE)), 503)
    assert stand_in.calls


def test_a_name_longer_than_any_accounts_is_404_before_the_owner_check(client):
    error_of(client.get("/api/acl/download/" + "b" * 65, headers=bearer(ALICE)), 404)


def test_every_route_a_non_admin_may_call_naming_a_user_declares_its_owner_or_says_why():
    undeclared, stale = [], set(NOT_AN_OWNER)
    for route in DECLARED:
        doc = route.doc
        if route.access != PUBLIC and set(route.access) <= {"admin"}:
            continue  # admins may name anyone
        named = request_fields(route.rule, doc.body, doc.query) & set(OWNER_FIELDS)
        if not named or doc.owner is not None:
            continue
        if NOT_AN_OWNER.get(route.key) in named:
            stale.discard(route.key)
        else:
            undeclared.append(f"{route} ({', '.join(sorted(named))})")
    assert undeclared == [], "declare owner= on these routes, or add them to NOT_AN_OWNER " \
                             "saying why the field names no owner"
    assert stale == set(), "NOT_AN_OWNER entries that no longer match a route"


def test_openapi_says_which_routes_are_self_or_admin():
    operations = APP.test_client().get("/api/openapi.json").get_json()["paths"]
    for route in DECLARED:
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route.rule)
        description = operations[path][route.method.lower()]["description"]
        assert ("(a non-admin only for their own records)" in description) \
            == (route.doc.owner is not None), route


# --- the declaration refuses what it cannot enforce ------------------------------------------

@pytest.mark.parametrize("rule, owner, access", [
    ("/things/<int:user_id>", "userid", SIGNED_IN),      # a typo
    ("/things/<int:thing_id>", "user_id", SIGNED_IN),    # no such field in path/body/query
    ("/things/<int:id>", "id", SIGNED_IN),               # not a field that names a user
    ("/things/<int:user_id>", "user_id", PUBLIC),        # nobody to compare with
])
def test_an_owner_the_route_cannot_check_fails_at_import(rule, owner, access):
    bp = ApiBlueprint("typo", __name__)
    with pytest.raises(ValueError, match="owner="):
        bp.api(rule, ["GET"], summary="x", access=access, owner=owner)


def test_an_owner_in_the_query_is_accepted_at_import():
    from services.alerts.schemas import UserLogQuery
    bp = ApiBlueprint("fine", __name__)
    bp.api("/things", ["GET"], summary="x", query=UserLogQuery, access=SIGNED_IN,
           owner="user_id")


# --- ids that are not integers ---------------------------------------------------------------

@pytest.mark.parametrize("method, path, message", [
    ("DELETE", "/api/alerts/delete/abc", "Invalid alert ID"),
    ("PUT", "/api/logs/update/1.5", "Invalid log ID"),
    ("DELETE", "/api/logs/delete/x/y", "Invalid log ID"),
])
def test_a_non_integer_id_is_the_routes_400_for_an_admin(client, method, path, message):
    assert error_of(client.open(path, method=method, json={"message": "m"},
                                headers=bearer(ROOT)), 400) == message
