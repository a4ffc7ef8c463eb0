"""The gateway's own request handling: every case here is answered before any RPC."""
import pytest

from berth.settings import get_settings
from berth.tokens import LEEWAY_SECONDS
from gateway.app import MAX_BODY_BYTES, create_app
from tests.unit.live_sessions import TOKEN_STATE, access_token, live_state

ALICE_ID, BOB_ID = 2, 3


class NoRpc:
    """Stands in for the RPC pools and records any call, so a case that reached RPC fails fast
    instead of waiting for a broker timeout (the session check's ``token_state`` aside: it
    answers that the token's session is live)."""

    def __init__(self):
        self.calls = []

    def call(self, service, method, *args, **kwargs):
        if (service, method) == TOKEN_STATE:
            return live_state(*args)
        self.calls.append((service, method))
        raise AssertionError(f"unexpected RPC {service}.{method}")


@pytest.fixture(scope="module")
def app():
    return create_app()


@pytest.fixture
def client(app):
    guard = NoRpc()
    saved = app.extensions["rpc"], app.extensions["rpc_health"]
    app.extensions["rpc"] = app.extensions["rpc_health"] = guard
    yield app.test_client()
    app.extensions["rpc"], app.extensions["rpc_health"] = saved
    assert guard.calls == [], "these requests must be answered by the gateway alone"


def bearer(user_id, role, username, ttl=3600):
    token = access_token(get_settings().secret, user_id, role, username, ttl)
    return {"Authorization": f"Bearer {token}"}


ADMIN = bearer(1, "admin", "root")
ALICE = bearer(ALICE_ID, "user", "alice")
DISTRIBUTOR = bearer(BOB_ID, "distributor", "bob")


def assert_error(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert isinstance(body, dict)
    assert isinstance(body["error"], str) and body["error"]
    return body


# --- 401 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer   "},
    {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="},
    {"Authorization": "Bearer garbage"},
    {"Authorization": "Bearer a.b.c"},
], ids=["none", "empty", "bearer-only", "bearer-blank", "basic", "garbage", "three-parts"])
def test_missing_or_garbage_token_is_401(client, headers):
    assert_error(client.get("/api/users", headers=headers), 401)


def test_expired_token_is_401_and_says_so(client):
    body = assert_error(client.get("/api/users", headers=bearer(1, "admin", "root",
                                                          ttl=-(LEEWAY_SECONDS + 1))),
                        401)
    assert body["error"] == "Token has expired"


def test_token_signed_with_another_secret_is_401(client):
    forged = access_token("x" * 64, 1, "admin", "root", 3600)
    assert_error(client.get("/api/users", headers={"Authorization": f"Bearer {forged}"}), 401)


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/users"), ("PUT", "/api/users/1"), ("POST", "/api/acl/generate"),
    ("POST", "/api/acl/update"), ("GET", f"/api/security/user_acl_info/{ALICE_ID}"),
    ("GET", f"/api/acl/logs/{ALICE_ID}"), ("GET", "/api/acl/download/alice"),
    ("GET", "/api/user/download_acl"),
])
def test_signed_in_routes_without_a_token_are_401(client, method, path):
    assert_error(client.open(path, method=method, json={}), 401)


# --- 403 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("caller", [ALICE, DISTRIBUTOR], ids=["user", "distributor"])
@pytest.mark.parametrize("method, path, body", [
    ("GET", "/api/users", None),
    ("PUT", "/api/users/1", {"role": "admin"}),
    ("POST", "/api/acl/generate", {"user_id": ALICE_ID, "permissions": ["read"]}),
    ("POST", "/api/acl/update", {"user_id": ALICE_ID, "permissions": ["read"]}),
])
def test_admin_routes_refuse_other_roles(client, caller, method, path, body):
    body = assert_error(client.open(path, method=method, json=body, headers=caller), 403)
    assert "admin" in body["error"]


def test_role_is_checked_before_the_body_is_validated(client):
    # a non-admin learns nothing about the body a route wants
    assert_error(client.put("/api/users/1", data="{not json", headers=ALICE), 403)


@pytest.mark.parametrize("path", [
    f"/api/security/user_acl_info/{BOB_ID}",
    f"/api/acl/logs/{BOB_ID}",
    "/api/acl/download/bob",
    "/api/acl/download/root",
])
def test_a_plain_user_may_not_read_another_users_records(client, path):
    body = assert_error(client.get(path, headers=ALICE), 403)
    assert body["error"] == "You may only access your own records"


# --- 400 -------------------------------------------------------------------------------------

GOOD_USER = {"username": "alice", "password": "password-1", "email": "alice@example.com"}


@pytest.mark.parametrize("data, field", [
    ("{not json", "body"),
    ('{"username": "alice",', "body"),
    (b"\xff\xfe\x00", "body"),
    ("", "body"),
    ("   ", "body"),
    ("null", "body"),
    ('"a string"', "body"),
    ("[]", "body"),
    ('[{"username": "alice"}]', "body"),
], ids=["garbage", "truncated", "binary", "empty", "blank", "null", "string", "array",
        "array-of-object"])
def test_a_body_that_is_not_a_json_object_is_400(client, data, field):
    body = assert_error(client.post("/api/add_user", data=data,
                                    content_type="application/json"), 400)
    assert body["details"] and body["details"][0]["field"] == field


def test_a_missing_field_is_400_naming_it(client):
    incomplete = {k: v for k, v in GOOD_USER.items() if k != "email"}
    body = assert_error(client.post("/api/add_user", json=incomplete), 400)
    assert [d["field"] for d in body["details"]] == ["email"]


@pytest.mark.parametrize("field, value", [
    ("username", 5), ("username", None), ("username", ["alice"]), ("password", 12345678),
    ("email", True),
])
def test_a_wrongly_typed_field_is_400_naming_it(client, field, value):
    body = assert_error(client.post("/api/add_user", json={**GOOD_USER, field: value}), 400)
    assert field in [d["field"] for d in body["details"]]


def test_an_unknown_extra_field_is_400_naming_it(client):
    body = assert_error(client.post("/api/add_user", json={**GOOD_USER, "is_admin": True}), 400)
    assert [d["field"] for d in body["details"]] == ["is_admin"]


@pytest.mark.parametrize("override", [
    {"username": "a"}, {"username": "has space"}, {"password": "short"},
    {"email": "not-an-address"},
])
def test_invalid_values_are_400(client, override):
    assert_error(client.post("/api/add_user", json={**GOOD_USER, **override}), 400)


def test_a_number_string_is_not_an_int_in_a_body(client):
    body = assert_error(client.post("/api/acl/generate", headers=ADMIN,
                                    json={"user_id": "2", "permissions": ["read"]}), 400)
    assert body["error"] == "Invalid ACL data"
    assert [d["field"] for d in body["details"]] == ["user_id"]


@pytest.mark.parametrize("user_id", ["2.0", "2e0", "20E-1"])
def test_a_number_without_a_fraction_is_an_int_in_a_body(client, user_id):
    """JSON has one number type (and JSON Schema's integer includes 2.0): only permissions,
    left empty on purpose so that no RPC is made, is wrong here."""
    body = assert_error(client.post("/api/acl/generate", headers=ADMIN, data=(
        f'{{"user_id": {user_id}, "permissions": []}}'), content_type="application/json"), 400)
    assert [d["field"] for d in body["details"]] == ["permissions"]


def test_a_number_with_a_fraction_is_not_an_int_in_a_body(client):
    body = assert_error(client.post("/api/acl/generate", headers=ADMIN,
                                    json={"user_id": 2.5, "permissions": []}), 400)
    assert "user_id" in [d["field"] for d in body["details"]]


@pytest.mark.parametrize("user_id", [0, 2**31, 10**40])
def test_an_out_of_range_id_in_a_body_is_400(client, user_id):
    assert_error(client.post("/api/acl/generate", headers=ADMIN,
                             json={"user_id": user_id, "permissions": ["read"]}), 400)


@pytest.mark.parametrize("body", [
    {"role": "superuser"}, {"traffic_limit": -1}, {"disabled": "yes"}, {"traffic_limit": 1.5},
])
def test_bad_user_update_is_400_for_an_admin(client, body):
    reply = assert_error(client.put("/api/users/2", json=body, headers=ADMIN), 400)
    assert reply["error"] == "Invalid user data"


@pytest.mark.parametrize("query", ["limit=abc", "limit=0", "limit=201", "offset=-1",
                                   "colour=blue"])
def test_bad_paging_query_is_400(client, query):
    body = assert_error(client.get(f"/api/users?{query}", headers=ADMIN), 400)
    assert body["details"]


# --- 404 / 405 / 413 -------------------------------------------------------------------------

# (a path outside /api is the web console's: tests/unit/test_web_console.py)
@pytest.mark.parametrize("path", ["/api/nope", "/api/users/1/extra", "/api", "/api/"])
def test_unknown_path_is_a_json_404(client, path):
    assert_error(client.get(path), 404)


@pytest.mark.parametrize("method, path", [
    ("PUT", f"/api/users/{2**31}"),
    ("GET", f"/api/security/user_acl_info/{2**31}"),
    ("GET", f"/api/acl/logs/{10**30}"),
    # paths that two routes share (GET and PUT, PUT and DELETE): 404, not 405
    ("PUT", f"/api/plans/{2**31}"),
    ("GET", f"/api/plans/{2**31}"),
    ("DELETE", f"/api/images/{2**31}"),
    ("PUT", f"/api/images/{2**31 + 1}"),
    # routes whose non-integer ids answer 400 (bad_id=): an integer id is still a 404
    ("DELETE", f"/api/alerts/delete/{2**31}"),
    ("PUT", f"/api/logs/update/{10**11}"),
])
def test_an_id_beyond_the_database_range_is_404(client, method, path):
    assert_error(client.open(path, method=method, json={"role": "user"}, headers=ADMIN), 404)


def test_the_largest_valid_id_is_routed(client):
    # 2**31-1 still matches the route, so a plain user gets the ownership 403, not a 404
    assert_error(client.get(f"/api/security/user_acl_info/{2**31 - 1}", headers=ALICE), 403)


@pytest.mark.parametrize("path, length", [("/api/verify_email/", 129),
                                          ("/api/acl/file/", 1025)])
def test_an_absurdly_long_token_is_404_without_asking_the_service(client, path, length):
    assert_error(client.get(path + "a" * length), 404)


@pytest.mark.parametrize("method, path, allowed", [
    ("GET", "/api/login", {"POST"}),
    ("DELETE", "/api/users", {"GET"}),
    ("GET", "/api/users/1", {"PUT"}),
    ("GET", "/api/acl/generate", {"POST"}),
])
def test_wrong_method_is_a_json_405_with_allow(client, method, path, allowed):
    response = client.open(path, method=method)
    assert_error(response, 405)
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_a_body_over_one_mib_is_a_json_413(client):
    big = b'{"username": "' + b"a" * MAX_BODY_BYTES + b'"}'
    assert_error(client.post("/api/add_user", data=big, content_type="application/json"), 413)


def test_a_body_just_under_the_limit_is_read(client):
    almost = b'{"username": "' + b"a" * (MAX_BODY_BYTES - 100) + b'"}'
    # read and validated (too long a name), not refused for size
    assert_error(client.post("/api/add_user", data=almost,
                             content_type="application/json"), 400)


# --- the API description -------------------------------------------------------------------

@pytest.fixture(scope="module")
def openapi(app):
    response = app.test_client().get("/api/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def documented_rules(app):
    return [rule for rule in app.url_map.iter_rules()
            if hasattr(app.view_functions[rule.endpoint], "api_doc")]


def test_openapi_lists_every_documented_rule_with_brace_params(app, openapi):
    rules = documented_rules(app)
    assert len(rules) >= 10
    for rule in rules:
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<int:{argument}>", f"{{{argument}}}").replace(
                f"<{argument}>", f"{{{argument}}}")
        assert "<" not in path, path
        assert path in openapi["paths"], path
        operations = openapi["paths"][path]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = operations[method.lower()]
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert declared == set(rule.arguments), path


def test_openapi_operations_that_need_a_token_say_so(app, openapi):
    assert openapi["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    public = {("post", "/api/login"), ("post", "/api/add_user"), ("get", "/api/urls"),
              ("get", "/api/server/health_check")}
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            if path == "/api/stream":  # EventSource sends no header: a ticket in the query
                assert operation["security"] == [{"streamTicket": []}]
                assert "401" in operation["responses"]
            elif operation["security"]:
                assert operation["security"] == [{"bearerAuth": []}], (method, path)
                assert "401" in operation["responses"], (method, path)
                assert "403" in operation["responses"], (method, path)
            else:
                assert "public" in operation["description"], (method, path)
    for method, path in public:
        assert openapi["paths"][path][method]["security"] == []
    for method, path in [("get", "/api/users"), ("put", "/api/users/{user_id}"),
                         ("post", "/api/acl/generate"), ("get", "/api/acl/logs/{user_id}")]:
        assert openapi["paths"][path][method]["security"] == [{"bearerAuth": []}]


def test_openapi_refs_all_resolve(openapi):
    schemas = openapi["components"]["schemas"]
    seen = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    seen.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(openapi)
    assert seen
    prefix = "#/components/schemas/"
    for ref in seen:
        assert ref.startswith(prefix), ref
        assert ref[len(prefix):] in schemas, ref


def test_openapi_documents_request_bodies(openapi):
    body = openapi["paths"]["/api/add_user"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    schema = openapi["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"username", "password", "email"}
    assert schema.get("additionalProperties") is False


def test_openapi_documents_the_statuses_of_paths_and_queries(openapi):
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            names = {p["in"] for p in operation["parameters"]}
            if "path" in names:  # no such id or name, or out of range
                assert "404" in operation["responses"], (method, path)
            if names:  # gunicorn's limit on the request line
                assert "414" in operation["responses"], (method, path)


def test_openapi_maps_with_key_patterns_allow_no_other_keys(openapi):
    environment = openapi["components"]["schemas"]["CreateContainer"]["properties"][
        "environment"]["anyOf"][0]
    assert environment["patternProperties"]
    assert environment["additionalProperties"] is False


def test_urls_lists_every_api_route(app, client):
    response = client.get("/api/urls")
    assert response.status_code == 200
    rows = response.get_json()
    assert isinstance(rows, list) and rows
    for row in rows:
        assert set(row) == {"endpoint", "methods", "url"}
        assert all(isinstance(v, str) for v in row.values())
        assert row["url"].startswith("/api")
    by_url = {(r["url"], r["endpoint"]): r for r in rows}
    assert {url for url, _ in by_url} == {rule.rule for rule in app.url_map.iter_rules()
                                          if rule.rule.startswith("/api")}
    login = by_url[("/api/login", "user.login")]
    assert login["methods"] == "OPTIONS, POST"
    # named as the original API document's example names them
    assert ("/api/add_user", "user.add_user") in by_url
    assert ("/api/add_server", "server.add_server") in by_url
    assert ("/api/traffic/realtime", "traffic.realtime_traffic") in by_url
    assert ("/api/servers", "server.list_servers") in by_url or any(
        url == "/api/servers" and endpoint.startswith("server.") for url, endpoint in by_url)
    assert all(not endpoint.startswith("users.") for _, endpoint in by_url)


def test_docs_page_is_swagger_ui_5_served_by_berth_pointing_at_the_document(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'src="/api/docs/swagger-ui-bundle.js"' in page and "//" not in page.split("<body>")[1]
    init = client.get("/api/docs/init.js")
    assert init.status_code == 200 and '"/api/openapi.json"' in init.get_data(as_text=True)
    bundle = client.get("/api/docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    version = client.get("/api/docs/VERSION").get_data(as_text=True)
    assert int(version.strip().lstrip("v").split(".")[0]) >= 5  # OpenAPI 3.1 needs UI 5
    bundle.close()


def test_verification_link_answers_a_browser_with_a_page_and_a_program_with_json(client):
    too_long = "/api/verify_email/" + "x" * 200  # refused before any RPC
    as_program = client.get(too_long)
    as_browser = client.get(too_long, headers={
        "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert_error(as_program, 404)
    assert as_browser.status_code == 404 and as_browser.mimetype == "text/html"
    assert "This link does not work" in as_browser.get_data(as_text=True)


def test_an_error_subclass_declared_elsewhere_travels_as_its_registered_base():
    from berth.docker.engines import EngineUnavailable
    from berth.errors import BadRequest, ServiceUnavailable, portable

    exc = portable(EngineUnavailable("Docker host x is unreachable"))
    assert type(exc) is ServiceUnavailable and exc.message == "Docker host x is unreachable"
    same = BadRequest("Invalid data", [{"field": "a", "message": "b"}])
    assert portable(same) is same


# --- audit records ---------------------------------------------------------------------------

def test_an_audit_record_keeps_an_integer_serial_id_and_hides_a_token_in_the_path(app):
    from flask import jsonify

    from gateway.audit import audit_record

    with app.test_request_context("/api/rental/delete/9", method="DELETE"):
        record = audit_record(jsonify({"message": "Rental deleted successfully",
                                       "serial_id": 9, "rental_id": 4}))
    assert record["route"] == "/api/rental/delete/<int:serial_id>"
    assert record["path_params"] == {"serial_id": 9} and record["path"] == "/api/rental/delete/9"
    assert record["reply_ids"] == {"serial_id": 9, "rental_id": 4}
    with app.test_request_context("/api/verify_email/SECRET-TOKEN"):
        record = audit_record(jsonify({"message": "ok"}))
    assert record["path_params"] == {"token": "[redacted]"} and record["path"] is None


def test_the_id_pattern_stops_exactly_at_the_database_range():
    import random
    import re

    from gateway.app import MAX_ID, up_to
    pattern = re.compile(up_to(MAX_ID) + "$")
    edges = [0, 9, 10, MAX_ID - 1, MAX_ID, MAX_ID + 1, 2 * 10**9, 10**10, 2_147_483_639]
    rng = random.Random(7)
    numbers = edges + [rng.randrange(10**11) for _ in range(20000)]
    assert [n for n in numbers if bool(pattern.match(str(n))) != (n <= MAX_ID)] == []
    assert pattern.match("007")


# --- sessions ------------------------------------------------------------------------------

class SessionsOf:
    """Answers ``users.token_state`` as the test says (and nothing else)."""

    def __init__(self, **state):
        self.state = state

    def call(self, service, method, *args, **kwargs):
        assert (service, method) == TOKEN_STATE, (service, method)
        return {**live_state(*args), **self.state}


@pytest.mark.parametrize("state", [{"version": 1}, {"disabled": True}, {"exists": False},
                                   {"revoked_sessions": ["0123456789abcdef0123456789abcdef"]}],
                         ids=["version-moved", "disabled", "deleted", "logged-out"])
def test_a_token_whose_session_ended_is_401_saying_so(app, state):
    from berth.tokens import SESSION_ENDED

    saved = app.extensions["rpc"]
    app.extensions["rpc"] = SessionsOf(**state)
    user_id = 100 + len(str(state))  # a user this module's cache has not seen
    app.extensions["tokens"].forget(user_id)
    try:
        response = app.test_client().get("/api/user/download_acl",
                                          headers=bearer(user_id, "user", "someone"))
    finally:
        app.extensions["rpc"] = saved
        app.extensions["tokens"].forget(user_id)
    assert assert_error(response, 401)["error"] == SESSION_ENDED == "Session ended; sign in again"


def test_a_token_from_before_sessions_existed_is_401(client):
    import datetime as dt
    import uuid

    import jwt

    now = dt.datetime.now(dt.timezone.utc)
    old = jwt.encode({"sub": "1", "typ": "access", "jti": uuid.uuid4().hex, "iat": now,
                      "exp": now + dt.timedelta(minutes=5), "role": "admin",
                      "username": "root"}, get_settings().secret, algorithm="HS256")
    body = assert_error(client.get("/api/users", headers={"Authorization": f"Bearer {old}"}),
                        401)
    assert body["error"] == "Session ended; sign in again"


@pytest.mark.parametrize("path, body, field", [
    ("/api/password", {"current_password": "password-1", "new_password": "short"},
     "new_password"),
    ("/api/password", {"new_password": "password-2"}, "current_password"),
    ("/api/password/forgot", {"email": "not-an-address"}, "email"),
    ("/api/password/reset", {"token": "", "new_password": "password-2"}, "token"),
    ("/api/password/reset", {"token": "abc", "new_password": "x" * 129}, "new_password"),
    ("/api/user/email", {"email": "nope"}, "email"),
])
def test_bad_password_and_address_requests_are_400_naming_the_field(client, path, body, field):
    method = "PUT" if path == "/api/user/email" else "POST"
    answer = assert_error(client.open(path, method=method, json=body, headers=ALICE), 400)
    assert field in [detail["field"] for detail in answer["details"]], answer


@pytest.mark.parametrize("method, path", [("POST", "/api/logout"), ("POST", "/api/password"),
                                          ("PUT", "/api/user/email")])
def test_session_routes_want_a_token(client, method, path):
    assert_error(client.open(path, method=method, json={}), 401)


def test_a_reset_link_answers_a_browser_with_a_page_and_a_program_with_json(client):
    too_long = "/api/password/reset/" + "x" * 200  # refused before any RPC
    assert_error(client.get(too_long), 404)
    as_browser = client.get(too_long, headers={
        "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert as_browser.status_code == 404 and as_browser.mimetype == "text/html"
    assert "This link does not work" in as_browser.get_data(as_text=True)
