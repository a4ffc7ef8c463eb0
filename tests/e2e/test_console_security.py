"""The console's two-factor sign-in and API key screens (issue 17 item 3 on issue 16's routes)
in a real headless Chromium against the running platform, with BERTH_REQUIRE_2FA_FOR_ADMINS
on: a customer turns two-factor sign-in on from My account (codes computed with pyotp from the
secret the page shows), sees the recovery codes once, signs out and back in with password and
code (a wrong code refused first), uses a recovery code once; creates a read-only API key that
then reads but cannot write over HTTP, and revokes it in the page (refused within 5 s); an
admin sees only the enrolment page until enrolled, then the whole console. 390 px wide
nothing scrolls sideways; no console error, nothing from outside, every control labelled. The
journeys are in ``console_security_journeys.py``; the screenshots go to folders this test
reports."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_console_operator import built_console  # noqa: F401 - builds web/dist
from tests.support import poll, report, rmtree, running_platform

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "secure password 1"
KEY_NAME = "shop bot"
WRONG_CODE = "Invalid two-factor code"


@pytest.fixture(scope="module")
def platform(tmp_path_factory, amqp_uri):
    folder = tmp_path_factory.mktemp("platform")
    with running_platform(folder, amqp_uri,
                          extra_env={"BERTH_REQUIRE_2FA_FOR_ADMINS": "true"}) as stack:
        yield stack
    rmtree(folder)


def journey(platform, name: str, **arguments) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "tests.e2e.console_security_journeys", name], cwd=ROOT,
        input=json.dumps({"origin": platform.url, **arguments}), capture_output=True,
        text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["problems"] == [], seen["problems"]
    assert seen["foreign"] == [], seen["foreign"]
    assert seen["unlabelled"] == {}, seen["unlabelled"]
    assert all(Path(p).stat().st_size > 1000 for p in seen["screenshots"])
    return seen


def test_a_customer_turns_on_two_factor_sign_in_and_uses_an_api_key(platform, tmp_path_factory):
    platform.new_user("secure-cust", PASSWORD)
    shots = tmp_path_factory.mktemp("console-security-screenshots")
    report(f"console security journey screenshots: {shots}")

    for part in ("1-two-factor", "2-create-key", "3-revoke-key"):
        (shots / part).mkdir()
    seen = journey(platform, "customer_enrols", shots=str(shots / "1-two-factor"),
                   username="secure-cust",
                   password=PASSWORD)
    assert (seen["status_before"].lower(), seen["status_after"].lower()) == ("off", "on")
    assert seen["qr"]["alt"].startswith("QR code for an authenticator app")
    assert seen["qr"]["src"].startswith("data:image/svg+xml") and seen["qr"]["drawn"]
    codes = seen["codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "Shown only now" in seen["codes_warning"]
    assert seen["clipboard"].split("\n") == codes
    assert seen["txt_name"] == "berth-recovery-codes-secure-cust.txt"
    assert [line for line in seen["txt"].splitlines() if line in codes] == codes
    assert seen["codes_after_saved"] == 0  # shown once
    assert seen["codes_left"] == "10 unused recovery codes left."
    # the confirmation gave the tab a fresh token and ended the old one
    assert seen["token_before"] != seen["token_after"]
    status, reply = platform.request("GET", "/api/2fa", token=seen["token_before"])
    assert status == 401, reply
    # the login's second step
    assert seen["code_input"] == {"autocomplete": "one-time-code", "inputmode": "numeric"}
    assert "recovery codes" in seen["code_step"]
    assert seen["wrong_code"].endswith(WRONG_CODE)
    assert len(seen["wrong_logged"]) == 1
    assert seen["signed_in_with_code"] == "Signed in as secure-cust (customer)"
    assert seen["codes_left_after_use"] == "9 unused recovery codes left."
    assert seen["recovery_again"].endswith(WRONG_CODE)  # a recovery code works once
    assert seen["overflow_code_390"] <= 0 and seen["overflow_account_390"] <= 0
    # what the API says now
    step = platform.request("POST", "/api/login", {"username": "secure-cust",
                                                    "password": PASSWORD})[1]
    assert step["two_factor_required"] is True and "token" not in step
    token = platform.request("POST", "/api/login/2fa", {"challenge": step["challenge"],
                                                        "code": codes[2]})[1]["token"]
    status, state = platform.request("GET", "/api/2fa", token=token)
    assert status == 200 and state["enabled"] and state["recovery_codes_left"] == 7, state

    created = journey(platform, "create_key", shots=str(shots / "2-create-key"),
                   username="secure-cust",
                      password=PASSWORD, recovery=codes[3], key_name=KEY_NAME)
    assert created["scopes_offered"] == [1, 1, 1, 0]  # a customer's role: no admin scope
    assert created["sent_invalid"] == [] and "Choose at least one scope" in created["refused"]
    key = created["key"]
    assert key.startswith("berth_") and created["clipboard"] == key
    assert "Shown only now" in created["new_key"]
    assert "read" in created["row"].lower() and "active" in created["row"].lower()
    assert not created["key_still_shown"]
    assert created["overflow_390"] <= 0
    [listed] = platform.request("GET", "/api/keys", token=token)[1]["keys"]
    assert (listed["name"], listed["scopes"], listed["status"]) == (KEY_NAME, ["read"], "active")
    # the key reads, and writes nothing
    status, reply = platform.request("GET", "/api/user/rental_info", token=key)
    assert status == 200, reply
    status, reply = platform.request("POST", "/api/containers", {
        "container_name": "box", "image": "berth-test:1"}, token=key)
    assert (status, reply["error"]) == (403, "This API key lacks the containers scope")

    revoked = journey(platform, "revoke_key", shots=str(shots / "3-revoke-key"),
                   username="secure-cust",
                      password=PASSWORD, recovery=codes[4], key_name=KEY_NAME)
    assert f"Revoke the key “{KEY_NAME}”?" in revoked["confirm"]
    assert revoked["sent_after_cancel"] == []
    assert revoked["revoke_status"] == 200 and "revoked" in revoked["row"].lower()
    # every gateway worker refuses it within 5 s of the page's revocation
    statuses = poll(lambda: [platform.request("GET", "/api/user/rental_info", token=key)[0]
                             for _ in range(4)], until=lambda s: set(s) == {401},
                    timeout=10, interval=0.1, what="the revoked key refused")
    took = time.time() - revoked["revoked_at"]
    report(f"API key revoked in the console: refused by both gateway workers "
           f"{took:.2f} s after the page's DELETE answered")
    assert statuses and took <= 5


def test_an_admin_who_must_enrol_sees_only_enrolment_until_enrolled(platform,
                                                                     tmp_path_factory):
    shots = tmp_path_factory.mktemp("console-security-admin-screenshots")
    report(f"console security admin journey screenshots: {shots}")
    seen = journey(platform, "admin_enrols", shots=str(shots),
                   username=platform.admin["username"], password=platform.admin["password"])
    assert "Operators must use two-factor sign-in" in seen["enrol_page"]
    assert seen["nav_while_enrolling"] == 0
    assert seen["url_while_enrolling"].endswith("/operator/users")
    assert seen["overflow_390"] <= 0
    assert len(seen["codes"]) == 10
    assert seen["nav"][5:7] == ["Dashboard", "Servers"]  # the whole console now
    status, reply = platform.request("GET", "/api/users", token=seen["token"])
    assert status == 200 and reply["total"] >= 1, reply
    status, state = platform.request("GET", "/api/2fa", token=seen["token"])
    assert state["enabled"] and state["required"], state
