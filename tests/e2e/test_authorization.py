"""Who may call what, the ACL life cycle, and role changes reaching the next token."""
from __future__ import annotations

import json

import pytest

from tests.e2e.helpers import jwt_claims, path_of
from tests.support import poll

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin_token()


@pytest.fixture(scope="module")
def alice(platform):
    user_id, token = platform.new_user("alice")
    return {"id": user_id, "token": token, "username": "alice"}


@pytest.fixture(scope="module")
def bob(platform):
    user_id, token = platform.new_user("bob")
    return {"id": user_id, "token": token, "username": "bob"}


def tamper(token: str) -> str:
    """Change one character in the middle of the signature."""
    head, payload, signature = token.split(".")
    i = len(signature) // 2
    signature = signature[:i] + ("A" if signature[i] != "A" else "B") + signature[i + 1:]
    return ".".join((head, payload, signature))


# --- role checks -----------------------------------------------------------------------

def admin_routes(user_id):
    return [
        ("GET", "/api/users", None),
        ("PUT", f"/api/users/{user_id}", {"role": "admin"}),
        ("POST", "/api/acl/generate", {"user_id": user_id, "permissions": ["net.read"]}),
        ("POST", "/api/acl/update", {"user_id": user_id, "permissions": ["net.read"]}),
    ]


def test_a_plain_user_gets_403_on_every_admin_route(platform, alice, admin):
    for method, path, body in admin_routes(alice["id"]):
        status, reply = platform.request(method, path, body, token=alice["token"])
        assert status == 403, (method, path, reply)
        assert reply["error"], reply
    # and nothing changed: alice is still a user without an ACL
    status, info = platform.request("GET", f"/api/security/user_acl_info/{alice['id']}",
                                    token=admin)
    assert status == 200, info
    assert info["acl_info"] == {"permissions": [], "role": "user"}


def test_no_token_or_a_bad_token_is_a_401(platform, alice, admin):
    bad_tokens = [None, "garbage", tamper(alice["token"]), tamper(admin)]
    paths = [("GET", "/api/users"), ("GET", f"/api/security/user_acl_info/{alice['id']}"),
             ("GET", "/api/user/download_acl"), ("GET", f"/api/acl/logs/{alice['id']}")]
    for token in bad_tokens:
        for method, path in paths:
            status, reply = platform.request(method, path, token=token)
            assert status == 401, (token, path, reply)
            assert reply["error"], reply
    status, headers, raw = platform.fetch("GET", "/api/users",
                                 headers={"Authorization": f"Basic {admin}"})
    assert status == 401, raw


def test_an_expired_or_foreign_token_is_a_401(platform, alice):
    """Tokens signed with the platform's own secret but expired, unsigned, or signed with
    another secret are all refused."""
    import datetime as dt
    import os

    import jwt

    now = dt.datetime.now(dt.timezone.utc)
    session = {k: jwt_claims(alice["token"])[k] for k in ("sid", "ver")}  # a live session
    claims = {"sub": str(alice["id"]), "typ": "access", "jti": "e2e", "role": "admin",
              "username": "alice", **session}
    secret = os.environ["BERTH_JWT_SECRET"]  # the Platform runs with this secret
    expired = jwt.encode({**claims, "iat": now - dt.timedelta(hours=2),
                          "exp": now - dt.timedelta(hours=1)}, secret, algorithm="HS256")
    foreign = jwt.encode({**claims, "iat": now, "exp": now + dt.timedelta(hours=1)},
                         "some-other-secret-of-sufficient-length-123", algorithm="HS256")
    unsigned = jwt.encode({**claims, "iat": now, "exp": now + dt.timedelta(hours=1)},
                          None, algorithm="none")
    valid = jwt.encode({**claims, "iat": now, "exp": now + dt.timedelta(hours=1)},
                       secret, algorithm="HS256")
    for token in (expired, foreign, unsigned):
        status, reply = platform.request("GET", "/api/users", token=token)
        assert status == 401, reply
        assert reply["error"]
    status, reply = platform.request("GET", "/api/users", token=valid)
    assert status == 200, reply  # the control: the same claims, properly signed and fresh


def test_a_user_cannot_read_another_users_acl_records(platform, alice, bob):
    for path in [f"/api/security/user_acl_info/{bob['id']}", f"/api/acl/logs/{bob['id']}",
                 f"/api/acl/download/{bob['username']}",
                 f"/api/acl/download/{bob['username'].upper()}"]:
        status, reply = platform.request("GET", path, token=alice["token"])
        assert status == 403, (path, reply)
        assert reply["error"], reply


def test_a_user_reads_their_own_acl_records(platform, bob):
    status, info = platform.request("GET", f"/api/security/user_acl_info/{bob['id']}",
                                    token=bob["token"])
    assert status == 200, info
    assert info == {"user_id": bob["id"], "acl_info": {"permissions": [], "role": "user"}}
    status, logs = platform.request("GET", f"/api/acl/logs/{bob['id']}", token=bob["token"])
    assert status == 200, logs
    assert logs["logs"] == [] and logs["total"] == 0
    # no ACL generated yet: a new user's ACL is empty, and downloading it works from day one
    for path in (f"/api/acl/download/{bob['username']}", "/api/user/download_acl"):
        status, link = platform.request("GET", path, token=bob["token"])
        assert status == 200, (path, link)
        status, _, raw = platform.fetch("GET", path_of(platform, link["acl_file"]))
        assert status == 200, raw
        assert json.loads(raw)["permissions"] == [] and json.loads(raw)["user_id"] == bob["id"]


def test_admin_reads_anyones_acl_records(platform, admin, bob):
    status, info = platform.request("GET", f"/api/security/user_acl_info/{bob['id']}",
                                    token=admin)
    assert status == 200, info
    assert info["acl_info"]["role"] == "user"
    status, logs = platform.request("GET", f"/api/acl/logs/{bob['id']}", token=admin)
    assert status == 200, logs
    status, reply = platform.request("GET", f"/api/acl/download/{bob['username']}", token=admin)
    assert status == 200, reply  # bob's ACL is the empty one; admin is allowed to ask
    status, reply = platform.request("GET", "/api/security/user_acl_info/999999", token=admin)
    assert status == 404, reply


# --- the ACL life cycle ----------------------------------------------------------------

def test_acl_generate_update_inspect_and_download(platform, admin):
    carol_id, carol = platform.new_user("carol")
    status, reply = platform.request("POST", "/api/acl/generate", {
        "user_id": carol_id, "permissions": ["containers.read", "traffic.read"]}, token=admin)
    assert status == 200, reply
    assert reply["permissions"] == ["containers.read", "traffic.read"]

    status, reply = platform.request("POST", "/api/acl/generate", {
        "user_id": carol_id, "permissions": ["x.y"]}, token=admin)
    assert status == 409, reply  # one ACL per user

    status, reply = platform.request("POST", "/api/acl/update", {
        "user_id": carol_id, "permissions": ["containers.read", "containers.write"]},
        token=admin)
    assert status == 200, reply
    new_permissions = ["containers.read", "containers.write"]

    status, info = platform.request("GET", f"/api/security/user_acl_info/{carol_id}",
                                    token=carol)
    assert status == 200, info
    assert info == {"user_id": carol_id,
                    "acl_info": {"permissions": new_permissions, "role": "user"}}

    status, link = platform.request("GET", "/api/user/download_acl", token=carol)
    assert status == 200, link
    assert set(link) >= {"acl_file"}
    acl_path = path_of(platform, link["acl_file"])

    status, headers, raw = platform.fetch("GET", acl_path)  # public: no token
    assert status == 200, raw
    assert "attachment" in headers.get("Content-Disposition", "")
    assert headers.get("Content-Type", "").startswith("application/json")
    document = json.loads(raw)
    assert document["permissions"] == new_permissions
    assert document["username"] == "carol" and document["user_id"] == carol_id

    status, logs = platform.request("GET", f"/api/acl/logs/{carol_id}", token=carol)
    assert status == 200, logs
    actions = [entry["action"] for entry in logs["logs"]]
    assert sorted(actions) == ["created", "downloaded", "updated"], logs
    assert logs["total"] == 3
    by_action = {entry["action"]: entry for entry in logs["logs"]}
    assert by_action["created"]["permissions"] == ["containers.read", "traffic.read"]
    assert by_action["updated"]["permissions"] == new_permissions

    # the admin's download link names the user
    status, link2 = platform.request("GET", "/api/acl/download/carol", token=admin)
    assert status == 200, link2
    status, _, raw = platform.fetch("GET", path_of(platform, link2["acl_file"]))
    assert status == 200 and json.loads(raw)["username"] == "carol"
    # ... and so does the user's own
    status, link3 = platform.request("GET", "/api/acl/download/carol", token=carol)
    assert status == 200, link3


def test_a_tampered_acl_file_link_is_a_401(platform, admin):
    dave_id, dave = platform.new_user("dave")
    status, reply = platform.request("POST", "/api/acl/generate", {
        "user_id": dave_id, "permissions": ["containers.read"]}, token=admin)
    assert status == 200, reply
    status, link = platform.request("GET", "/api/user/download_acl", token=dave)
    assert status == 200, link
    prefix, token = path_of(platform, link["acl_file"]).rsplit("/", 1)
    status, headers, raw = platform.fetch("GET", f"{prefix}/{tamper(token)}")
    assert status == 401, raw
    assert json.loads(raw)["error"]
    assert "attachment" not in headers.get("Content-Disposition", "")
    # an access token is not an ACL file link either
    status, _, raw = platform.fetch("GET", f"{prefix}/{dave}")
    assert status == 401, raw


def test_acl_routes_validate_their_input(platform, admin, alice):
    for body in [{"user_id": alice["id"]}, {"user_id": alice["id"], "permissions": []},
                 {"user_id": "1", "permissions": ["a"]},
                 {"user_id": alice["id"], "permissions": ["Not Valid!"]},
                 {"user_id": alice["id"], "permissions": ["a"], "extra": True}]:
        status, reply = platform.request("POST", "/api/acl/generate", body, token=admin)
        assert status == 400, (body, reply)
        assert reply["error"]
    status, reply = platform.request("POST", "/api/acl/generate",
                                     {"user_id": 999999, "permissions": ["a"]}, token=admin)
    assert status == 404, reply
    status, reply = platform.request("POST", "/api/acl/update",
                                     {"user_id": alice["id"], "permissions": ["a"]}, token=admin)
    assert status == 404, reply  # alice has no ACL to update


# --- role changes ----------------------------------------------------------------------

def test_a_role_change_ends_the_old_token_and_the_next_login_carries_it(platform, admin):
    erin_id, before = platform.new_user("erin")
    assert jwt_claims(before)["role"] == "user"
    assert jwt_claims(before)["sub"] == str(erin_id)

    status, reply = platform.request("PUT", f"/api/users/{erin_id}", {"role": "distributor"},
                                     token=admin)
    assert status == 200, reply
    assert reply["user"]["role"] == "distributor"

    # the token already issued carries the old role: it stops working (every gateway worker
    # within BERTH_TOKEN_CHECK_SECONDS; tests/e2e/test_sessions.py measures it)
    assert jwt_claims(before)["role"] == "user"
    poll(lambda: platform.request("GET", f"/api/security/user_acl_info/{erin_id}",
                                  token=before),
         until=lambda answer: answer == (401, {"error": "Session ended; sign in again"}),
         timeout=5, interval=0.1, what="the token with the old role refused")

    after = platform.login("erin", "user-password-1")
    status, info = platform.request("GET", f"/api/security/user_acl_info/{erin_id}",
                                    token=after)
    assert status == 200, info
    assert info["acl_info"]["role"] == "distributor"
    claims = jwt_claims(after)
    assert claims["role"] == "distributor"
    assert claims["sub"] == str(erin_id)
    assert {"exp", "iat", "jti"} <= set(claims)


def test_update_user_rejects_bad_input_and_unknown_ids(platform, admin, alice):
    for body in [{"role": "emperor"}, {"traffic_limit": -1}, {"disabled": "yes"},
                 {"nickname": "x"}]:
        status, reply = platform.request("PUT", f"/api/users/{alice['id']}", body, token=admin)
        assert status == 400, (body, reply)
        assert reply["error"]
    status, reply = platform.request("PUT", "/api/users/999999", {"role": "user"}, token=admin)
    assert status == 404, reply


def test_a_disabled_user_cannot_log_in(platform, admin):
    frank_id, _ = platform.new_user("frank")
    status, reply = platform.request("PUT", f"/api/users/{frank_id}", {"disabled": True},
                                     token=admin)
    assert status == 200, reply
    status, reply = platform.request("POST", "/api/login",
                                     {"username": "frank", "password": "user-password-1"})
    assert status == 403, reply
    assert reply["error"]
