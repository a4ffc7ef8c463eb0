"""The console's account screens in a real headless Chromium against the running platform:
"Forgot your password?" mails a link through real SMTP; the link's page in the console
(/reset/<token>) sets the password; My account changes the password (this tab stays signed
in, the old token ends) and the e-mail address (a verification link goes to the new one);
signing out ends the session at the gateway, not only in the tab. No console error, nothing
loaded from outside, every control labelled (``browser_journeys.console_forgot`` and
``console_account``).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.helpers import links_in, to_address
from tests.e2e.test_browser import journey
from tests.e2e.test_console import built_console  # noqa: F401 - builds web/dist
from tests.support import poll, report

pytestmark = pytest.mark.e2e

SESSION_ENDED = "Session ended; sign in again"


def ended(platform, user_id: int, token: str) -> None:
    """``token`` is refused on every gateway worker (each keeps a user's token state for up
    to BERTH_TOKEN_CHECK_SECONDS, 2 s)."""
    poll(lambda: [platform.request("GET", f"/api/security/user_acl_info/{user_id}",
                                   token=token) for _ in range(4)],
         until=lambda replies: all((status, reply.get("error")) == (401, SESSION_ENDED)
                                   for status, reply in replies),
         timeout=5, interval=0.25, what="the token refused on every worker")


def mails_with_link(smtp, address: str, part: str) -> list[str]:
    found = smtp.wait_for(lambda m: to_address(m) == address
                          and any(part in u for u in links_in(m)))
    return [u for mail in found for u in links_in(mail) if part in u]


def test_a_customer_resets_and_changes_the_password_and_the_address(platform, module_smtp,
                                                                     tmp_path_factory):
    user_id, _ = platform.new_user("console-acct", "first password 1",
                                   email_address="console-acct@example.com")
    seen = journey(platform, "console_forgot", email="console-acct@example.com")
    assert seen["refused"] == ["Not an e-mail address"]
    assert seen["sent"].startswith("If that address belongs to an account")

    [link] = mails_with_link(module_smtp, "console-acct@example.com", "/api/password/reset/")
    token = link.rsplit("/", 1)[1]
    shots = tmp_path_factory.mktemp("console-account-screenshots")
    seen = journey(platform, "console_account", shots=str(shots), token=token,
                   username="console-acct", new_password="second password 2",
                   newer_password="third password 3", new_email="acct-new@example.com")
    report(f"console account journey screenshots: {shots}")

    assert seen["reset_for"].startswith("For the account console-acct.")
    assert seen["mismatch"] == ["The passwords differ"]
    assert seen["reset_done"] == "Your password is set. Sign in with it."
    assert "My account" in seen["nav"]
    status, refused = platform.request("POST", "/api/password", {
        "current_password": "not the password", "new_password": "x" * 12},
        token=platform.login("console-acct", "third password 3"))
    assert status == 400, refused
    assert seen["wrong_current"].endswith(refused["error"])  # the API's sentence, on the form
    assert len(seen["refusal_logged"]) == 1 and "status of 400" in seen["refusal_logged"][0]
    # the password change ended the token the tab held before; the new one works ...
    before, after = seen["token_before"], seen["token_after"]
    assert before and after and before != after
    ended(platform, user_id, before)
    # ... until signing out, which ended it at the gateway (logout), not only in the tab
    ended(platform, user_id, after)
    assert seen["after_sign_out_url"].endswith("/login")
    assert seen["email_changed"].startswith("Address changed to acct-new@example.com")
    assert mails_with_link(module_smtp, "acct-new@example.com", "/verify_email/")
    assert seen["overflow_390"] <= 0
    assert seen["unlabelled"] == {}
    assert all(Path(p).stat().st_size > 1000 for p in seen["screenshots"])
    status, reply = platform.request("POST", "/api/login", {
        "username": "console-acct", "password": "third password 3"})
    assert status == 200, reply
