"""The console's two-factor sign-in and API key screens in a real headless Chromium: journeys
as in ``browser_journeys.py`` (same Tab and Console, a process of their own, arguments as JSON
on stdin, what the browser saw as JSON on stdout); the assertions are in
``test_console_security.py``. The TOTP codes are computed here with pyotp from the secret the
page shows, as an authenticator app would."""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pyotp

from tests.e2e.browser_journeys import HORIZONTAL_SCROLL, NARROW, WIDE, Console, Tab, main

WRONG_CODE_REFUSED = "status of 401"  # the browser logs the refused code; the page is asserted


def code(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(dt.datetime.now(dt.timezone.utc)
                                 + dt.timedelta(seconds=30 * steps_ahead))


def wrong(secret: str) -> str:
    right = {code(secret, k) for k in (-1, 0, 1, 2)}
    return next(c for c in ("000000", "111111", "222222") if c not in right)


def password_step(page, origin: str, username: str, password: str) -> None:
    page.goto(origin + "/login")
    page.get_by_label("Username").fill(username)
    page.locator("input[data-path=password]").fill(password)
    page.locator("input[data-path=password]").press("Enter")


def code_step(page, a_code: str, recovery: bool = False) -> None:
    form = page.get_by_test_id("code-form")
    form.wait_for()
    if recovery:
        form.get_by_label("I am typing a recovery code").check()
    form.locator("input[data-path=code]").fill(a_code)
    form.locator("input[data-path=code]").press("Enter")


def settled(page) -> None:
    """Until the page loaded what it started (a route's chunk): leaving earlier aborts it, which
    the browser reports as a failed request."""
    page.wait_for_load_state("networkidle")


def sign_out(page) -> None:
    page.get_by_test_id("sign-out").click()
    page.get_by_test_id("login-form").wait_for()


def forget_refusals(tab: Tab, before: int, status: str = WRONG_CODE_REFUSED) -> list[str]:
    """The browser's log lines for refusals since ``before`` (the page's message is asserted
    instead); any other problem stays."""
    logged = [p for p in tab.problems[before:] if status in p]
    tab.problems[before:] = [p for p in tab.problems[before:] if status not in p]
    return logged


def enrol(page, ui: Console, password: str, shot: str,
          seen: dict | None = None) -> tuple[str, list[str]]:
    """From a page with the enrolment form: the password, the QR code and secret, a code
    from the secret; the recovery codes shown."""
    page.get_by_test_id("enrol-form").get_by_label("Your password").fill(password)
    page.get_by_test_id("enrol").click()
    page.get_by_test_id("qr").wait_for()
    secret = page.get_by_test_id("secret").inner_text().replace(" ", "")
    if seen is not None:
        qr = page.get_by_test_id("qr")
        seen["qr"] = {"alt": qr.get_attribute("alt"), "src": qr.get_attribute("src")[:26],
                      "drawn": qr.evaluate("img => img.complete && img.naturalWidth > 0")}
    ui.shot(shot)
    page.get_by_test_id("confirm-form").get_by_label("Code from the app").fill(code(secret))
    page.get_by_test_id("confirm-code").click()
    page.get_by_test_id("recovery-codes").wait_for()
    codes = [c.strip() for c in page.get_by_test_id("recovery-code").all_inner_texts()]
    return secret, codes


def customer_enrols(tab: Tab, shots: str, username: str, password: str) -> dict:
    """A customer turns two-factor sign-in on from My account (QR code, secret, a code), sees
    the recovery codes once (copy, .txt), signs out and in with password + code (a wrong code
    refused first), signs in with a recovery code, which then no longer works; the code step
    and My account at 390 px."""
    page, seen = tab.page, {}
    ui = Console(tab, shots)
    tab.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=tab.origin)
    page.set_viewport_size(WIDE)
    password_step(page, tab.origin, username, password)
    page.get_by_test_id("who").wait_for()  # one step: not on yet
    settled(page)
    page.get_by_role("link", name="My account").click()
    card = page.get_by_test_id("two-factor")
    seen["status_before"] = card.get_by_test_id("two-factor-status").inner_text()
    seen["token_before"] = page.evaluate("sessionStorage.getItem('berth.token')")
    ui.shot("account-2fa-off")

    secret, codes = enrol(page, ui, password, "2fa-enrolment", seen)
    seen["secret"], seen["codes"] = secret, codes
    seen["token_after"] = page.evaluate("sessionStorage.getItem('berth.token')")
    seen["codes_warning"] = page.get_by_test_id("recovery-codes").inner_text()
    page.get_by_test_id("copy-codes").click()
    page.get_by_test_id("recovery-codes").get_by_text("Copied", exact=True).wait_for()
    seen["clipboard"] = page.evaluate("navigator.clipboard.readText()")
    with page.expect_download() as download:
        page.get_by_test_id("download-codes").click()
    path = Path(shots) / download.value.suggested_filename
    download.value.save_as(path)
    seen["txt_name"] = download.value.suggested_filename
    seen["txt"] = path.read_text(encoding="utf-8")
    ui.shot("recovery-codes")
    page.get_by_test_id("codes-saved").click()
    card.get_by_test_id("codes-left").wait_for()
    seen["codes_left"] = card.get_by_test_id("codes-left").inner_text()
    seen["status_after"] = card.get_by_test_id("two-factor-status").inner_text()
    seen["codes_after_saved"] = page.get_by_test_id("recovery-code").count()
    ui.shot("account-2fa-on")
    sign_out(page)

    # password, then a wrong code (refused, in the page), then a right one
    password_step(page, tab.origin, username, password)
    page.get_by_test_id("code-form").wait_for()
    field = page.get_by_test_id("code-form").locator("input[data-path=code]")
    seen["code_input"] = {"autocomplete": field.get_attribute("autocomplete"),
                          "inputmode": field.get_attribute("inputmode")}
    seen["code_step"] = page.get_by_test_id("code-form").inner_text()
    ui.shot("login-code-step")
    before = len(tab.problems)
    code_step(page, wrong(secret))
    seen["wrong_code"] = page.get_by_test_id("form-error").inner_text()
    seen["wrong_logged"] = forget_refusals(tab, before)
    ui.shot("login-wrong-code")
    code_step(page, code(secret, 1))  # the next step: the one confirming was spent
    page.get_by_test_id("who").wait_for()
    seen["signed_in_with_code"] = page.get_by_test_id("who").inner_text()
    settled(page)
    sign_out(page)

    # a recovery code signs in once
    password_step(page, tab.origin, username, password)
    code_step(page, codes[0], recovery=True)
    page.get_by_test_id("who").wait_for()
    settled(page)
    page.get_by_role("link", name="My account").click()
    page.get_by_test_id("codes-left").wait_for()
    seen["codes_left_after_use"] = page.get_by_test_id("codes-left").inner_text()
    sign_out(page)
    password_step(page, tab.origin, username, password)
    before = len(tab.problems)
    code_step(page, codes[0], recovery=True)
    seen["recovery_again"] = page.get_by_test_id("form-error").inner_text()
    seen["recovery_again_logged"] = forget_refusals(tab, before)

    page.set_viewport_size(NARROW)
    page.wait_for_timeout(300)
    seen["overflow_code_390"] = page.evaluate(HORIZONTAL_SCROLL)
    ui.shot("login-code-step-390px")
    code_step(page, codes[1], recovery=True)
    page.get_by_test_id("who").wait_for(state="attached")
    settled(page)
    page.goto(tab.origin + "/account")
    page.get_by_test_id("codes-left").wait_for()
    page.wait_for_timeout(300)
    seen["overflow_account_390"] = page.evaluate(HORIZONTAL_SCROLL)
    ui.shot("account-390px")
    page.get_by_text("中文").click()
    page.get_by_role("heading", name="两步验证登录").wait_for()
    ui.shot("account-390px-zh")
    page.get_by_text("English").click()
    seen["screenshots"] = ui.taken
    seen["unlabelled"] = ui.unlabelled
    return seen


def signed_in_with_recovery(page, origin: str, username: str, password: str,
                            recovery: str) -> None:
    password_step(page, origin, username, password)
    code_step(page, recovery, recovery=True)
    page.get_by_test_id("who").wait_for(state="attached")
    settled(page)


def create_key(tab: Tab, shots: str, username: str, password: str, recovery: str,
               key_name: str) -> dict:
    """A customer creates a read-only API key on My account (a form without a scope refused
    before it is sent), copies the key shown once, and sees it listed; 390 px."""
    page, seen, name = tab.page, {}, key_name
    ui = Console(tab, shots)
    tab.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=tab.origin)
    page.set_viewport_size(WIDE)
    signed_in_with_recovery(page, tab.origin, username, password, recovery)
    page.goto(tab.origin + "/account")
    form = page.get_by_test_id("key-form")
    form.wait_for()
    seen["scopes_offered"] = [form.get_by_test_id(f"scope-{s}").count()
                              for s in ("read", "containers", "billing", "admin")]
    sent: list[str] = []
    page.on("request", lambda r: r.url.endswith("/api/keys") and r.method == "POST"
            and sent.append(r.url))
    form.get_by_label("Read", exact=True).uncheck()
    form.get_by_test_id("create-key").click()
    form.get_by_text("Choose at least one scope").wait_for()
    seen["refused"] = form.locator(".mantine-InputWrapper-error").all_inner_texts()
    seen["sent_invalid"] = list(sent)
    ui.shot("key-refused")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Read", exact=True).check()
    form.get_by_label("Expires after (days)").fill("30")
    form.get_by_test_id("create-key").click()
    page.get_by_test_id("new-key").wait_for()
    seen["key"] = page.get_by_test_id("new-key-value").inner_text().strip()
    seen["new_key"] = page.get_by_test_id("new-key").inner_text()
    page.get_by_test_id("copy-key").click()
    page.get_by_test_id("new-key").get_by_text("Copied", exact=True).wait_for()
    seen["clipboard"] = page.evaluate("navigator.clipboard.readText()")
    row = page.get_by_test_id(f"key-{name}")
    row.wait_for()
    seen["row"] = row.inner_text()
    ui.shot("key-created")
    page.get_by_test_id("key-saved").click()
    page.get_by_test_id("key-form").wait_for()
    seen["key_still_shown"] = seen["key"] in page.inner_text("body")
    page.set_viewport_size(NARROW)
    page.wait_for_timeout(300)
    page.get_by_test_id("key-list").scroll_into_view_if_needed()
    seen["overflow_390"] = page.evaluate(HORIZONTAL_SCROLL)
    ui.shot("keys-390px")
    seen["screenshots"] = ui.taken
    seen["unlabelled"] = ui.unlabelled
    return seen


def revoke_key(tab: Tab, shots: str, username: str, password: str, recovery: str,
               key_name: str) -> dict:
    """The customer revokes the key in the page (asked first; cancelled once); the time the
    gateway answered the revocation, for the test to measure from."""
    page, seen, name = tab.page, {}, key_name
    ui = Console(tab, shots)
    page.set_viewport_size(WIDE)
    signed_in_with_recovery(page, tab.origin, username, password, recovery)
    page.goto(tab.origin + "/account")
    row = page.get_by_test_id(f"key-{name}")
    row.wait_for()
    sent: list[str] = []
    page.on("request", lambda r: "/api/keys/" in r.url and r.method == "DELETE"
            and sent.append(r.url))
    row.get_by_role("button", name=f"Revoke the key {name}").click()
    seen["confirm"] = page.get_by_role("dialog").inner_text()
    ui.shot("revoke-confirm")
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_timeout(300)
    seen["sent_after_cancel"] = list(sent)
    row.get_by_role("button", name=f"Revoke the key {name}").click()
    with page.expect_response(lambda r: "/api/keys/" in r.url
                              and r.request.method == "DELETE") as answer:
        page.get_by_test_id("confirm").click()
    seen["revoked_at"] = time.time()
    seen["revoke_status"] = answer.value.status
    row.get_by_test_id("key-status").get_by_text("revoked").wait_for()
    seen["row"] = row.inner_text()
    ui.shot("key-revoked")
    seen["screenshots"] = ui.taken
    seen["unlabelled"] = ui.unlabelled
    return seen


def admin_enrols(tab: Tab, shots: str, username: str, password: str) -> dict:
    """An admin while BERTH_REQUIRE_2FA_FOR_ADMINS is on: signed in, the console is only the
    enrolment page (also at 390 px) until they confirm; then the recovery codes, then the
    whole console."""
    page, seen = tab.page, {}
    ui = Console(tab, shots)
    page.set_viewport_size(WIDE)
    password_step(page, tab.origin, username, password)
    page.get_by_test_id("enrol-first").wait_for()
    settled(page)
    seen["enrol_page"] = page.get_by_test_id("enrol-first").inner_text()
    seen["nav_while_enrolling"] = page.locator("nav a").count()
    ui.shot("admin-enrol-first")
    page.goto(tab.origin + "/operator/users")  # any console address: still only enrolment
    page.get_by_test_id("enrol-first").wait_for()
    seen["url_while_enrolling"] = page.url
    page.set_viewport_size(NARROW)
    page.wait_for_timeout(300)
    seen["overflow_390"] = page.evaluate(HORIZONTAL_SCROLL)
    ui.shot("admin-enrol-first-390px")
    page.set_viewport_size(WIDE)
    secret, codes = enrol(page, ui, password, "admin-enrolment")
    seen["secret"], seen["codes"] = secret, codes
    ui.shot("admin-recovery-codes")
    page.get_by_test_id("codes-saved").click()
    page.get_by_role("heading", name="Users", exact=True).wait_for()
    seen["nav"] = page.locator("nav a").all_inner_texts()
    seen["token"] = page.evaluate("sessionStorage.getItem('berth.token')")
    ui.shot("admin-console")
    seen["screenshots"] = ui.taken
    seen["unlabelled"] = ui.unlabelled
    return seen


JOURNEYS = {"customer_enrols": customer_enrols, "create_key": create_key,
            "revoke_key": revoke_key, "admin_enrols": admin_enrols}


if __name__ == "__main__":
    main(JOURNEYS)
