"""Accounts end to end: registration, the verification mail and its link, login, bad input."""
from __future__ import annotations

import json

import pytest

from tests.e2e.helpers import (find_user, links_in, mails_to, path_of, settle,
                               to_address, user_total)
from tests.support import rmtree, running_platform

pytestmark = pytest.mark.e2e

SENT = {"message": "Verification email sent successfully"}
INVALID_LOGIN = {"error": "Invalid username or password"}
RESEND_SECONDS = 2  # the resend pause, short so a resend for an unverified address is testable
QUIET = 3.0  # how long to wait before concluding that no mail is coming


@pytest.fixture(scope="module")
def platform(tmp_path_factory, amqp_uri, module_smtp):
    """The standard SQLite platform with SMTP, with a short verification-resend pause."""
    folder = tmp_path_factory.mktemp("platform")
    with running_platform(folder, amqp_uri, smtp_port=module_smtp.port, extra_env={
            "BERTH_VERIFICATION_RESEND_SECONDS": str(RESEND_SECONDS),
            # the default login limits per account and address (tests/e2e/test_rate_limits.py
            # has the others, from several addresses); this module's other failures from its
            # one address stay under the per-address one
            "BERTH_RATE_LIMIT_LOGIN_ACCOUNT": "5/15 minutes",
            "BERTH_RATE_LIMIT_LOGIN": "50/15 minutes"}) as stack:
        yield stack
    rmtree(folder)


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin_token()


def register(platform, username, password="user-password-1", email=None):
    return platform.request("POST", "/api/add_user", {
        "username": username, "password": password,
        "email": email or f"{username}@example.com"})


def verification_mail(smtp, address):
    mails = smtp.wait_for(lambda m: to_address(m) == address)
    assert mails, f"no verification mail reached {address}"
    return mails


def verification_link(platform, message) -> str:
    links = [u for u in links_in(message) if "/verify_email/" in u]
    assert len(links) == 1, links_in(message)
    return path_of(platform, links[0])


# --- registration and e-mail verification ----------------------------------------------

def test_registration_mails_a_single_use_verification_link(platform, module_smtp, admin):
    status, body = register(platform, "verify-me")
    assert status == 200, body
    assert body["message"] == "User created successfully"
    user_id = body["user_id"]
    assert isinstance(user_id, int)
    assert find_user(platform, admin, user_id)["email_verified"] is False

    mails = verification_mail(module_smtp, "verify-me@example.com")
    assert len(mails) == 1
    assert "verify" in mails[0]["Subject"].lower()
    link = verification_link(platform, mails[0])

    status, body = platform.request("GET", link)
    assert status == 200, body
    assert body.get("user_id") == user_id
    assert find_user(platform, admin, user_id)["email_verified"] is True

    status, body = platform.request("GET", link)
    assert status == 400, body
    assert body["error"]
    assert find_user(platform, admin, user_id)["email_verified"] is True


def test_a_made_up_verification_link_is_rejected(platform):
    status, body = platform.request("GET", "/api/verify_email/not-a-real-token-at-all")
    assert status == 400, body
    assert body["error"]


def test_resend_mails_an_unverified_address_again(platform, module_smtp):
    """The control for the next test: a resend that should mail does arrive."""
    status, body = register(platform, "resend-me")
    assert status == 200, body
    verification_mail(module_smtp, "resend-me@example.com")
    settle(RESEND_SECONDS + 0.5)
    status, body = platform.request("POST", "/api/send_verification_email",
                                    {"email": "resend-me@example.com"})
    assert (status, body) == (200, SENT)
    mails = module_smtp.wait_for(lambda m: to_address(m) == "resend-me@example.com"
                                 and len(mails_to(module_smtp, "resend-me@example.com")) >= 2)
    assert len(mails) == 2


def test_resend_to_verified_or_unknown_address_answers_the_same_and_mails_nothing(
        platform, module_smtp):
    status, body = register(platform, "already-verified")
    assert status == 200, body
    [mail] = verification_mail(module_smtp, "already-verified@example.com")
    status, _ = platform.request("GET", verification_link(platform, mail))
    assert status == 200
    settle(RESEND_SECONDS + 0.5)  # past the resend pause: only "verified" can stop a mail now
    before = len(module_smtp.messages())

    status, body = platform.request("POST", "/api/send_verification_email",
                                    {"email": "already-verified@example.com"})
    assert (status, body) == (200, SENT)
    status, body = platform.request("POST", "/api/send_verification_email",
                                    {"email": "nobody-registered-this@example.com"})
    assert (status, body) == (200, SENT)

    settle(QUIET)
    assert len(mails_to(module_smtp, "already-verified@example.com")) == 1
    assert mails_to(module_smtp, "nobody-registered-this@example.com") == []
    assert len(module_smtp.messages()) == before


@pytest.mark.parametrize("email", ["not-an-address", "", "a@", "@example.com"])
def test_resend_to_an_invalid_address_is_a_400(platform, email):
    status, body = platform.request("POST", "/api/send_verification_email", {"email": email})
    assert status == 400, body
    assert body["error"] == "Invalid email address"


# --- login -----------------------------------------------------------------------------

def test_login_success_gives_a_token(platform):
    status, body = register(platform, "login-ok")
    assert status == 200, body
    status, body = platform.request("POST", "/api/login",
                                    {"username": "login-ok", "password": "user-password-1"})
    assert status == 200, body
    assert body["message"] == "Login successful"
    assert isinstance(body["token"], str) and body["token"].count(".") == 2
    status, _ = platform.request("GET", "/api/security/user_acl_info/0",
                                 token=body["token"])
    assert status == 403  # the token is accepted (a bad one would be 401)


def test_wrong_password_and_unknown_user_get_the_same_401(platform):
    status, body = register(platform, "login-wrong")
    assert status == 200, body
    status, wrong = platform.request("POST", "/api/login",
                                     {"username": "login-wrong", "password": "not-the-password"})
    assert status == 401, wrong
    assert wrong["error"] == INVALID_LOGIN["error"]
    status, unknown = platform.request("POST", "/api/login",
                                       {"username": "no-such-user-here", "password": "whatever-1"})
    assert status == 401, unknown
    assert unknown == wrong  # nothing tells an attacker which usernames exist


def test_errors_from_a_service_answer_exactly_the_documented_shape(platform):
    """No stray fields (an earlier build sent {"error": ..., "details": "None"})."""
    status, body = platform.request("POST", "/api/login",
                                    {"username": "no-such-user-at-all", "password": "whatever-1"})
    assert (status, body) == (401, INVALID_LOGIN)
    status, body = register(platform, "shape-check")
    assert status == 200, body
    status, body = register(platform, "shape-check", email="shape-check-2@example.com")
    assert status == 409 and list(body) == ["error"], body
    status, body = platform.request("GET", "/api/verify_email/made-up-token")
    assert status == 400 and list(body) == ["error"], body


def test_repeated_failures_are_throttled_with_retry_after(platform):
    status, body = register(platform, "login-throttled")
    assert status == 200, body
    statuses = []
    for _ in range(12):
        status, headers, raw = platform.fetch("POST", "/api/login", {
            "username": "login-throttled", "password": "guessing-wrong"})
        statuses.append(status)
        if status == 429:
            break
    assert statuses[0] == 401
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) == {401}
    retry_after = headers.get("Retry-After")
    assert retry_after and retry_after.isdigit(), dict(headers)
    assert len(statuses) == 6  # five failures, then refused
    assert 0 < int(retry_after) <= 15 * 60 + 1  # within the 15-minute throttle window
    assert json.loads(raw)["error"]
    # the right password does not get through while throttled
    status, body = platform.request("POST", "/api/login", {
        "username": "login-throttled", "password": "user-password-1"})
    assert status == 429, body
    # other accounts are unaffected
    assert platform.admin_token()


# --- conflicts and invalid input -------------------------------------------------------

def test_duplicate_username_or_email_is_a_409(platform, admin):
    status, body = register(platform, "taken-name")
    assert status == 200, body
    total = user_total(platform, admin)
    name_taken = register(platform, "taken-name", email="someone-else@example.com")
    assert name_taken == (409, {"error": "That username or e-mail address cannot be used"})
    assert register(platform, "TAKEN-NAME", email="someone-else2@example.com") == name_taken
    # the same answer for a taken address: sign-up does not tell whether it has an account
    assert register(platform, "another-name", email="Taken-Name@Example.com") == name_taken
    assert user_total(platform, admin) == total


def test_concurrent_registrations_of_one_name_create_exactly_one_account(platform, admin):
    from concurrent.futures import ThreadPoolExecutor

    total = user_total(platform, admin)

    def attempt(i):
        return register(platform, "race-name", email=f"race-{i}@example.com")[0]

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(attempt, range(8)))
    assert statuses == [200] + [409] * 7, statuses
    assert user_total(platform, admin) == total + 1


GOOD = {"username": "valid-name", "password": "user-password-1", "email": "valid@example.com"}

BAD_BODIES = {
    "missing username": json.dumps({k: v for k, v in GOOD.items() if k != "username"}),
    "missing password": json.dumps({k: v for k, v in GOOD.items() if k != "password"}),
    "missing email": json.dumps({k: v for k, v in GOOD.items() if k != "email"}),
    "username a number": json.dumps({**GOOD, "username": 12345}),
    "password a number": json.dumps({**GOOD, "password": 123456789}),
    "email a list": json.dumps({**GOOD, "email": ["valid@example.com"]}),
    "bad email": json.dumps({**GOOD, "email": "not-an-address"}),
    "short password": json.dumps({**GOOD, "password": "short"}),
    "username too short": json.dumps({**GOOD, "username": "ab"}),
    "unknown field": json.dumps({**GOOD, "role": "admin"}),
    "not JSON": '{"username": "valid-name", "password": ',
    "JSON array": json.dumps([GOOD]),
    "JSON string": json.dumps("valid-name"),
    "empty body": "",
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_invalid_registration_is_a_400_and_creates_nothing(platform, admin, case):
    total = user_total(platform, admin)
    status, body = platform.request("POST", "/api/add_user", raw=BAD_BODIES[case].encode())
    assert status == 400, body
    assert body["error"] == "Invalid data"
    assert isinstance(body["details"], list) and body["details"], body
    for detail in body["details"]:
        assert detail.get("field") and detail.get("message"), detail
    assert user_total(platform, admin) == total


def test_after_the_rejected_attempts_the_name_and_address_are_still_free(platform, admin):
    total = user_total(platform, admin)
    status, body = platform.request("POST", "/api/add_user", GOOD)
    assert status == 200, body
    assert user_total(platform, admin) == total + 1


@pytest.mark.parametrize("raw", [
    '{"username": "x"}', '{"username": 1, "password": "p"}', "{{{",
    json.dumps({"username": "a", "password": "b", "extra": 1})])
def test_invalid_login_body_is_a_400(platform, raw):
    status, body = platform.request("POST", "/api/login", raw=raw.encode())
    assert status == 400, body
    assert body["error"] and isinstance(body.get("details"), list)
