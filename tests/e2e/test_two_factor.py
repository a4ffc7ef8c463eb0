"""Two-factor sign-in end to end, every process real (two gunicorn workers, Redis limits):
enrol, confirm, log out, the login's two steps with codes computed here (pyotp), a recovery
code once, the TOTP step refused with 429 from an attacker's address while the owner signs in
from another, failures in the audit log with the address, and BERTH_REQUIRE_2FA_FOR_ADMINS."""
from __future__ import annotations

import datetime as dt
import itertools
import json
import time
import urllib.parse

import pyotp
import pytest

from tests.e2e.test_rate_limits import assert_limited, call
from tests.support import poll, report, rmtree, running_platform

pytestmark = pytest.mark.e2e

TOTP_ACCOUNT = 3  # failed codes per user and address
PASSWORD = "user-password-1"
ENROL_FIRST = "two-factor sign-in is required for admins; enrol at /api/2fa/enrol"
_names = itertools.count(1)


@pytest.fixture(scope="module")
def platform(tmp_path_factory, amqp_uri):
    folder = tmp_path_factory.mktemp("platform")
    with running_platform(folder, amqp_uri, extra_env={
            "BERTH_REQUIRE_2FA_FOR_ADMINS": "true",
            "BERTH_RATE_LIMIT_TOTP": "20/15 minutes",
            "BERTH_RATE_LIMIT_TOTP_ACCOUNT": f"{TOTP_ACCOUNT}/15 minutes",
            "BERTH_RATE_LIMIT_TOTP_ACCOUNT_TOTAL": "30/15 minutes"}) as stack:
        yield stack
    rmtree(folder)


def code(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(dt.datetime.now(dt.timezone.utc)
                                 + dt.timedelta(seconds=30 * steps_ahead))


def wrong(secret: str) -> str:
    right = {code(secret, k) for k in (-1, 0, 1, 2)}
    return next(c for c in ("000000", "111111", "222222") if c not in right)


def ok(answer):
    status, _, body = answer
    assert status == 200, body
    return body


def login(platform, source, username, password=PASSWORD):
    return call(platform, source, "POST", "/api/login",
                {"username": username, "password": password})


def second_step(platform, source, challenge, a_code):
    return call(platform, source, "POST", "/api/login/2fa",
                {"challenge": challenge, "code": a_code})


def turn_on(platform, source, token, password=PASSWORD) -> tuple[str, dict]:
    enrolment = ok(call(platform, source, "POST", "/api/2fa/enrol", {"password": password},
                        token))
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/Berth:")
    assert enrolment["qr_svg"].startswith("data:image/svg+xml")
    confirmed = ok(call(platform, source, "POST", "/api/2fa/confirm",
                        {"code": code(enrolment["secret"])}, token))
    return enrolment["secret"], confirmed


def signed_up(platform, source="127.0.0.1") -> str:
    name = f"second{next(_names)}"
    ok(call(platform, source, "POST", "/api/add_user", {
        "username": name, "password": PASSWORD, "email": f"{name}@example.com"}))
    return name


def ended(platform, source, token) -> None:
    """``token`` is refused on both gateway workers (within BERTH_TOKEN_CHECK_SECONDS)."""
    poll(lambda: [call(platform, source, "GET", "/api/2fa", token=token)[0]
                  for _ in range(4)], until=lambda statuses: set(statuses) == {401},
         timeout=10, what="the old token refused")


@pytest.fixture(scope="module")
def admin(platform):
    """The admin's full token: BERTH_REQUIRE_2FA_FOR_ADMINS makes their first login reach
    only the enrolment routes, until they confirm."""
    source, who = "127.0.0.1", platform.admin
    first = ok(login(platform, source, who["username"], who["password"]))
    assert first["two_factor_enrolment_required"] is True and first["token"]
    limited = first["token"]
    status, _, body = call(platform, source, "GET", "/api/users", token=limited)
    assert status == 403 and body["error"] == ENROL_FIRST, body
    assert ok(call(platform, source, "GET", "/api/2fa", token=limited))["required"] is True
    secret, confirmed = turn_on(platform, source, limited, who["password"])
    # the session goes on with a full token; the enrol-only one has ended
    assert ok(call(platform, source, "GET", "/api/users", token=confirmed["token"]))["total"]
    ended(platform, source, limited)
    return {"token": confirmed["token"], "secret": secret}


def test_an_admin_must_enrol_and_then_signs_in_with_a_code(platform, admin):
    who = platform.admin
    first = ok(login(platform, "127.0.0.1", who["username"], who["password"]))
    assert first["two_factor_required"] is True and "token" not in first
    token = ok(second_step(platform, "127.0.0.1", first["challenge"],
                           code(admin["secret"], 1)))["token"]
    assert ok(call(platform, "127.0.0.1", "GET", "/api/users", token=token))["total"] >= 1
    status, _, body = call(platform, "127.0.0.1", "POST", "/api/2fa/disable",
                           {"password": who["password"], "code": code(admin["secret"], 1)},
                           token)
    assert status == 403, body  # required for admins: it stays on


def test_the_whole_journey_enrol_confirm_logout_and_two_step_logins(platform):
    source = "127.0.0.1"
    name = signed_up(platform)
    first = ok(login(platform, source, name))
    assert first["message"] == "Login successful" and first["token"]  # one step until on
    secret, confirmed = turn_on(platform, source, first["token"])
    assert len(confirmed["recovery_codes"]) == 10
    token = confirmed["token"]
    assert ok(call(platform, source, "GET", "/api/2fa", token=token))["enabled"] is True
    ok(call(platform, source, "POST", "/api/logout", token=token))
    ended(platform, source, token)

    started = time.monotonic()
    step = ok(login(platform, source, name))
    assert step["two_factor_required"] is True and "token" not in step
    assert step["expires_in"] == 300
    status, _, body = second_step(platform, source, step["challenge"], wrong(secret))
    assert status == 401 and body["error"] == "Invalid two-factor code", body
    # a challenge is no access token
    assert call(platform, source, "GET", "/api/2fa", token=step["challenge"])[0] == 401
    signed_in = ok(second_step(platform, source, step["challenge"], code(secret, 1)))
    elapsed = time.monotonic() - started
    assert ok(call(platform, source, "GET", "/api/2fa",
                   token=signed_in["token"]))["recovery_codes_left"] == 10
    # the same code again is refused (its step is spent)
    assert second_step(platform, source, step["challenge"], code(secret, 1))[0] == 401

    recovery = confirmed["recovery_codes"][0]
    challenge = ok(login(platform, source, name))["challenge"]
    assert ok(second_step(platform, source, challenge, recovery))["token"]
    assert second_step(platform, source, challenge, recovery)[0] == 401
    report(f"two-factor: password + code login in {elapsed * 1000:.0f} ms (with one wrong "
           f"code); a recovery code worked once")


def test_the_code_step_is_refused_from_the_attackers_address_not_the_owners(platform, admin):
    owner, attacker = "127.0.0.3", "127.0.0.2"
    name = signed_up(platform, owner)
    secret, _ = turn_on(platform, owner, ok(login(platform, owner, name))["token"])
    # the attacker has the password: each try may bring a fresh challenge
    for _ in range(TOTP_ACCOUNT):
        challenge = ok(login(platform, attacker, name))["challenge"]
        status, _, body = second_step(platform, attacker, challenge, wrong(secret))
        assert status == 401, body
    challenge = ok(login(platform, attacker, name))["challenge"]
    status, headers, body = second_step(platform, attacker, challenge, wrong(secret))
    assert_limited(status, headers, body, 15 * 60)
    assert body["error"] == "Too many failed codes; try again later"
    # even a right code from there is refused...
    assert second_step(platform, attacker, challenge, code(secret, 1))[0] == 429
    # ...while the owner, from their own address, signs in
    challenge = ok(login(platform, owner, name))["challenge"]
    assert ok(second_step(platform, owner, challenge, code(secret, 1)))["token"]
    report(f"two-factor: attacker 127.0.0.2 refused after {TOTP_ACCOUNT} wrong codes "
           f"(Retry-After {headers['Retry-After']} s); owner from 127.0.0.3 signed in")

    query = urllib.parse.urlencode({"action": "POST /api/login/2fa", "limit": 200})

    def failed_rows():
        status, body = platform.request("GET", f"/api/logs/system?{query}",
                                        token=admin["token"])
        assert status == 200, body
        return [r for r in body["logs"] if r["status_code"] == 401
                and r["details"].get("remote_addr") == attacker]
    rows = poll(failed_rows, until=lambda found: len(found) >= TOTP_ACCOUNT,
                what="the audit rows of the failed codes")
    assert challenge not in json.dumps(rows)
    assert {r["details"]["body"]["code"] for r in rows} == {"[redacted]"}
    assert {r["details"]["body"]["challenge"] for r in rows} == {"[redacted]"}
