"""Rate limits end to end, from several client addresses (loopback aliases 127.0.0.x bound as
the client socket's source): an attacker is refused with 429 and Retry-After while the owner
signs in from elsewhere; sixteen concurrent correct logins all succeed; a sign-up flood from
one address is cut at the limit although two gunicorn workers served it (the count is in
Redis, not in a worker); the whole API per address; failed logins in the audit log with the
address and the name tried, never the password."""
from __future__ import annotations

import concurrent.futures
import http.client
import json
import time
import urllib.parse

import pytest

from tests.support import poll, report, rmtree, running_platform

pytestmark = pytest.mark.e2e

LOGIN_ACCOUNT = 5  # failed logins per account and address
API_PER_MINUTE = 150
SIGNUPS = 3


@pytest.fixture(scope="module")
def platform(tmp_path_factory, amqp_uri):
    folder = tmp_path_factory.mktemp("platform")
    with running_platform(folder, amqp_uri, extra_env={
            "BERTH_GATEWAY_WORKERS": "2",
            "BERTH_RATE_LIMIT_API": f"{API_PER_MINUTE}/minute",
            "BERTH_RATE_LIMIT_LOGIN": "10/15 minutes",
            "BERTH_RATE_LIMIT_LOGIN_ACCOUNT": f"{LOGIN_ACCOUNT}/15 minutes",
            "BERTH_RATE_LIMIT_LOGIN_ACCOUNT_TOTAL": "30/15 minutes",
            "BERTH_RATE_LIMIT_SIGNUP": f"{SIGNUPS}/hour",
            # which worker answered each request (%(p)s: its pid), to show both took part
            "BERTH_GATEWAY_ACCESS_LOG": str(folder / "access.log"),
            "GUNICORN_CMD_ARGS": "--access-logformat='%(p)s %(h)s %(r)s %(s)s'"}) as stack:
        yield stack
    rmtree(folder)


def call(platform, source: str, method: str, path: str, body=None, token=None):
    """One request on a fresh connection from client address ``source``: (status, headers,
    body decoded from JSON)."""
    connection = http.client.HTTPConnection("127.0.0.1", platform.port, timeout=30,
                                            source_address=(source, 0))
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None,
                           headers=headers)
        response = connection.getresponse()
        raw = response.read()
        return response.status, response.headers, json.loads(raw) if raw else None
    finally:
        connection.close()


def login(platform, source, username, password):
    return call(platform, source, "POST", "/api/login",
                {"username": username, "password": password})


def signup(platform, source, username, password="user-password-1"):
    return call(platform, source, "POST", "/api/add_user", {
        "username": username, "password": password, "email": f"{username}@example.com"})


def assert_limited(status, headers, body, most_seconds):
    assert status == 429, body
    assert body["error"] and body["details"][0]["field"] == "retry_after", body
    assert 1 <= int(headers["Retry-After"]) <= most_seconds, headers["Retry-After"]


def test_an_attacker_is_refused_while_the_owner_signs_in_from_elsewhere(platform):
    owner, attacker = "127.0.0.1", "127.0.0.2"
    assert signup(platform, owner, "owner")[0] == 200
    for _ in range(LOGIN_ACCOUNT):
        status, _, body = login(platform, attacker, "owner", "wrong-password")
        assert status == 401, body
    status, headers, body = login(platform, attacker, "owner", "wrong-password")
    assert_limited(status, headers, body, 15 * 60)
    # the attacker's address is refused even with the right password...
    assert login(platform, attacker, "owner", "user-password-1")[0] == 429
    # ...the owner, from their own address, is not
    started = time.monotonic()
    status, _, body = login(platform, owner, "owner", "user-password-1")
    assert status == 200 and body["token"], body
    report(f"rate limits: attacker 127.0.0.2 refused after {LOGIN_ACCOUNT} failures "
           f"(Retry-After {headers['Retry-After']} s); owner from 127.0.0.1 signed in in "
           f"{(time.monotonic() - started) * 1000:.0f} ms")


def test_failed_logins_are_in_the_audit_log_with_the_address_never_the_password(platform):
    attacker = "127.0.0.3"
    assert login(platform, attacker, "no-such-victim", "the-guessed-secret")[0] == 401
    admin = platform.admin_token()
    query = urllib.parse.urlencode({"action": "POST /api/login", "limit": 200})

    def failed_rows():
        status, body = platform.request("GET", f"/api/logs/system?{query}", token=admin)
        assert status == 200, body
        return [r for r in body["logs"] if r["status_code"] == 401
                and r["details"].get("remote_addr") == attacker]
    [row] = poll(failed_rows, what="the audit row of the failed login")
    assert row["details"]["body"]["username"] == "no-such-victim"
    assert row["actor"]["type"] == "anonymous"
    assert "the-guessed-secret" not in json.dumps(row)
    # the failures of the test before are there too, from the attacker's address
    status, body = platform.request("GET", f"/api/logs/system?{query}", token=admin)
    assert len([r for r in body["logs"] if r["status_code"] == 401
                and r["details"].get("remote_addr") == "127.0.0.2"]) >= LOGIN_ACCOUNT


def test_sixteen_concurrent_correct_logins_all_succeed(platform):
    source = "127.0.0.4"
    assert signup(platform, source, "busy-owner")[0] == 200
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(
            lambda _: login(platform, source, "busy-owner", "user-password-1")[0], range(16)))
    assert statuses == [200] * 16


def workers_that_answered(platform, source: str, path: str) -> set[str]:
    log = platform.folder / "access.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return {line.split()[0] for line in lines if f" {source} " in f" {line} " and path in line}


def test_a_signup_flood_is_cut_at_the_limit_across_both_gunicorn_workers(platform):
    flood, other = "127.0.0.5", "127.0.0.6"
    names = [f"flood-{i}" for i in range(24)]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda name: signup(platform, flood, name), names))
    statuses = [a[0] for a in answers]
    assert statuses.count(200) == SIGNUPS, statuses
    assert statuses.count(429) == len(names) - SIGNUPS, statuses
    for status, headers, body in answers:
        if status == 429:
            assert_limited(status, headers, body, 3600)
    pids = poll(lambda: workers_that_answered(platform, flood, "/api/add_user"),
                until=lambda found: len(found) >= 2, timeout=10,
                what="both gunicorn workers in the access log")
    report(f"rate limits: {len(names)} sign-ups from 127.0.0.5 on 2 workers "
           f"({len(pids)} pids): {SIGNUPS} accepted, {statuses.count(429)} refused")
    assert signup(platform, other, "not-flooding")[0] == 200


def test_the_whole_api_is_limited_per_address(platform):
    source, other = "127.0.0.7", "127.0.0.8"
    statuses = [call(platform, source, "GET", "/api/no-such-route-at-all")[0]
                for _ in range(API_PER_MINUTE)]
    assert set(statuses) == {404}, set(statuses)
    status, headers, body = call(platform, source, "GET", "/api/openapi.json")
    assert_limited(status, headers, body, 60)
    assert call(platform, other, "GET", "/api/openapi.json")[0] == 200
