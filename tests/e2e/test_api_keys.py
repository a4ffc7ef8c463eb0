"""API keys end to end, every process real (two gunicorn workers): a key is created and shown
once, works as a bearer credential within its scopes (a read-only key gets 403 on a write),
shows its last use, cannot manage credentials (no key makes a key); revoking it, and disabling
or demoting its owner, stop it on every worker within 5 s (measured, in the figures); the
audit log has its creation and revocation but never the key, and names the key a call was
made with."""
from __future__ import annotations

import json
import time

import pytest

from tests.e2e.test_sessions import PASSWORD, measure, new_user, ok
from tests.support import poll, report, rmtree, running_platform

pytestmark = pytest.mark.e2e

INVALID_KEY = "Invalid, expired or revoked API key"


@pytest.fixture(scope="module")
def platform(tmp_path_factory, amqp_uri):
    folder = tmp_path_factory.mktemp("platform")
    with running_platform(folder, amqp_uri) as stack:
        assert stack.env["BERTH_GATEWAY_WORKERS"] == "2"
        yield stack
    rmtree(folder)


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin_token()


@pytest.fixture(scope="module")
def figures():
    lines: list[str] = []
    yield lines
    if lines:
        report("API key revocation on 2 gateway workers (the 200 of the change -> key "
               "refused; BERTH_TOKEN_CHECK_SECONDS=2):", *lines)


def create_key(platform, token, scopes, name="bot", days=30):
    return ok(platform.request("POST", "/api/keys", {"name": name, "scopes": scopes,
                                                    "expires_in_days": days}, token=token))


def read_path(who):
    return f"/api/security/user_acl_info/{who['id']}"


def refused(platform, method, path, key, body=None):
    status, reply = platform.request(method, path, body, token=key)
    assert status == 403, (method, path, status, reply)
    return reply["error"]


def test_a_key_is_shown_once_works_within_its_scopes_and_shows_its_last_use(platform, admin):
    who = new_user(platform, "keyholder")
    created = create_key(platform, who["token"], ["read"], name="status script")
    key = created["key"]
    assert key.startswith(f"berth_{created['key_id']}_") and created["status"] == "active"
    assert created["last_used_at"] is None

    ok(platform.request("GET", read_path(who), token=key))
    ok(platform.request("GET", "/api/user/rental_info", token=key))
    listing = ok(platform.request("GET", "/api/keys", token=who["token"]))
    [entry] = listing["keys"]
    assert entry["key_id"] == created["key_id"] and entry["last_used_at"] is not None
    assert key not in json.dumps(listing) and key.split("_", 2)[2] not in json.dumps(listing)

    # a read-only key writes nothing
    assert refused(platform, "POST", "/api/containers", key, {
        "container_name": "box", "image": "berth-test:1"}) == \
        "This API key lacks the containers scope"
    assert refused(platform, "POST", "/api/serial/redeem", key, {
        "serial_code": "ABCDE-FGHIJ"}) == "This API key lacks the billing scope"
    # and its owner's role still applies: no admin route for a user's key
    status, reply = platform.request("GET", "/api/users", token=key)
    assert (status, reply["error"]) == (403, "This route requires the admin role")

    # a key with the billing scope redeems a serial: writes work within the scopes
    billing = create_key(platform, who["token"], ["read", "billing"], name="shop bot")["key"]
    code = ok(platform.request("POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": "2099-01-01"}, token=admin))["serial_code"]
    assert ok(platform.request("POST", "/api/serial/redeem", {"serial_code": code},
                               token=billing))["rental_status"]


def test_no_key_manages_credentials_so_a_leaked_one_cannot_escalate(platform, admin):
    who = new_user(platform, "careful")
    key = create_key(platform, who["token"], ["read", "containers", "billing"])["key"]
    no_keys = "API keys cannot be used here: sign in with a password"
    assert refused(platform, "POST", "/api/keys", key, {
        "name": "another", "scopes": ["read"], "expires_in_days": 1}) == no_keys
    assert refused(platform, "GET", "/api/keys", key) == no_keys
    assert refused(platform, "POST", "/api/password", key, {
        "current_password": PASSWORD, "new_password": "stolen-password-1"}) == no_keys
    assert refused(platform, "PUT", "/api/user/email", key, {
        "email": "thief@example.com", "password": PASSWORD}) == no_keys
    assert refused(platform, "POST", "/api/logout", key) == no_keys
    root_key = create_key(platform, admin, ["read", "containers", "billing", "admin"])["key"]
    assert refused(platform, "PUT", f"/api/users/{who['id']}", root_key,
                   {"role": "admin"}) == no_keys
    assert refused(platform, "GET", f"/api/users/{who['id']}/keys", root_key) == no_keys
    # nothing changed: one key, the password and role as they were
    assert ok(platform.request("GET", "/api/keys", token=who["token"]))["total"] == 1
    assert platform.login(who["username"], PASSWORD)
    status, reply = platform.request("POST", "/api/keys", {
        "name": "too much", "scopes": ["admin"], "expires_in_days": 1}, token=who["token"])
    assert status == 400 and reply["details"][0]["field"] == "scopes", reply
    status, reply = platform.request("POST", "/api/keys", {
        "name": "forever", "scopes": ["read"], "expires_in_days": 366}, token=who["token"])
    assert status == 400 and reply["details"][0]["field"] == "expires_in_days", reply


def test_revoking_a_key_stops_it_on_every_worker_within_5_s(platform, figures):
    who = new_user(platform, "revoker")
    created = create_key(platform, who["token"], ["read"])
    measure(platform, figures, "key revoked by its owner", who, created["key"],
            lambda: platform.request("DELETE", f"/api/keys/{created['key_id']}",
                                     token=who["token"]), refusal=INVALID_KEY)
    listing = ok(platform.request("GET", "/api/keys", token=who["token"]))
    assert listing["keys"][0]["status"] == "revoked"
    status, _ = platform.request("DELETE", f"/api/keys/{created['key_id']}",
                                 token=new_user(platform, "stranger")["token"])
    assert status == 404


def test_an_admin_lists_and_revokes_a_users_key(platform, admin, figures):
    who = new_user(platform, "operated")
    created = create_key(platform, who["token"], ["read"])
    listing = ok(platform.request("GET", f"/api/users/{who['id']}/keys", token=admin))
    assert [k["key_id"] for k in listing["keys"]] == [created["key_id"]]
    status, _ = platform.request("GET", f"/api/users/{who['id']}/keys", token=who["token"])
    assert status == 403
    measure(platform, figures, "key revoked by an admin", who, created["key"],
            lambda: platform.request(
                "DELETE", f"/api/users/{who['id']}/keys/{created['key_id']}", token=admin),
            refusal=INVALID_KEY)


def test_disabling_the_owner_stops_the_key_for_good(platform, admin, figures):
    who = new_user(platform, "disabled")
    key = create_key(platform, who["token"], ["read"])["key"]
    measure(platform, figures, "owner disabled", who, key, lambda: platform.request(
        "PUT", f"/api/users/{who['id']}", {"disabled": True}, token=admin),
        refusal=INVALID_KEY)
    ok(platform.request("PUT", f"/api/users/{who['id']}", {"disabled": False}, token=admin))
    time.sleep(2.5)  # past every worker's cache: the key stays dead
    status, reply = platform.request("GET", read_path(who), token=key)
    assert (status, reply["error"]) == (401, INVALID_KEY)


def test_demoting_the_owner_stops_the_key(platform, admin, figures):
    who = new_user(platform, "demoted")
    ok(platform.request("PUT", f"/api/users/{who['id']}", {"role": "admin"}, token=admin))
    token = platform.login(who["username"], PASSWORD)  # the role is in the very next login
    key = create_key(platform, token, ["read", "admin"])["key"]
    ok(platform.request("GET", "/api/users", token=key))  # an admin read
    measure(platform, figures, "owner demoted from admin", who, key, lambda: platform.request(
        "PUT", f"/api/users/{who['id']}", {"role": "user"}, token=admin), refusal=INVALID_KEY)
    listing = ok(platform.request("GET", f"/api/users/{who['id']}/keys", token=admin))
    assert listing["keys"][0]["status"] == "ended"


def test_creation_and_revocation_are_audited_without_the_key(platform, admin):
    who = new_user(platform, "audited")
    created = create_key(platform, who["token"], ["read"], name="audited bot")
    ok(platform.request("DELETE", f"/api/keys/{created['key_id']}", token=who["token"]))
    secret = created["key"].split("_", 2)[2]

    def rows():
        status, body = platform.request("GET", "/api/logs/system?limit=200", token=admin)
        assert status == 200, body
        mine = [r for r in body["logs"] if (r.get("actor") or {}).get("user_id") == who["id"]
                and "/api/keys" in r["action"]]
        return mine if len(mine) >= 2 else None
    entries = poll(rows, what="the audit rows of the key")
    assert {r["action"] for r in entries} == {"POST /api/keys",
                                              "DELETE /api/keys/<int:key_id>"}
    assert secret not in json.dumps(entries) and "audited bot" in json.dumps(entries)

    # a call made with a key says which key
    robot = create_key(platform, admin, ["billing"], name="serial robot")
    serial_id = ok(platform.request("POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": "2099-01-01"}, token=robot["key"]))["serial_id"]

    def generated():
        status, body = platform.request(
            "GET", "/api/logs/system?limit=200&action=/api/serial/generate", token=admin)
        return [r for r in body["logs"] if r["subject"] == {"type": "serial",
                                                            "id": str(serial_id)}]
    [entry] = poll(generated, what="the audit row of the serial made with a key")
    assert entry["details"]["api_key_id"] == robot["key_id"]
    assert f"with API key {robot['key_id']}" in entry["message"]
    assert robot["key"].split("_", 2)[2] not in json.dumps(entry)
