"""Journeys through the platform in a real headless Chromium (Debian's ``chromium``, driven by
Playwright). Each journey does what a person would do and returns what the browser saw; the
assertions are in ``test_browser.py``.

They run in a process of their own (``python -m tests.e2e.browser_journeys NAME`` with the
arguments as JSON on stdin, the observations as JSON on stdout): the test process is
eventlet-patched, and Playwright's driver does not shut down under eventlet.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.request
from urllib.parse import urlsplit

from playwright.sync_api import sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


class Tab:
    """A page whose console errors, page errors, failed and foreign requests are recorded."""

    def __init__(self, browser, origin: str):
        self.context = browser.new_context(accept_downloads=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.origin = origin
        self.problems: list[str] = []
        self.foreign: list[str] = []
        self.aborted: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(
            f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", self._failed)
        self.page.on("request", self._check_origin)

    def _failed(self, request) -> None:
        # a read the page itself gave up is not a failure: the live stream (GET /api/stream,
        # held open) is cut when the page is left or reloaded, and a query still loading when
        # its screen is left (a refetch a traffic sweep started, say) is cancelled by TanStack
        # Query; so is a screen's code chunk still loading when the journey navigates away
        # (a lazy route's /assets/*.js: one that is missing fails otherwise, and the route
        # then shows an error); a write cut short would be one, and is kept. Opening the live
        # stream starts with POST /api/stream/ticket (a 30 s ticket, nothing else kept): cut
        # when the page is left, like the stream itself (the only failure of the run of
        # afb077d: 1 failed, 2019 passed)
        if request.failure == "net::ERR_ABORTED":
            live_stream = "/api/stream?" in request.url if request.method == "GET" else \
                request.method == "POST" and request.url.endswith("/api/stream/ticket")
            if live_stream:
                return
            if request.method == "GET" and ("/api/" in request.url or "/assets/" in request.url):
                self.aborted.append(request.url)  # counted: a refetch loop would show here
                return
        self.problems.append(f"request failed: {request.url} {request.failure}")

    def _check_origin(self, request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https") and \
                f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(request.url)

    def visit(self, url: str) -> dict:
        """Open ``url``; what a person sees of the answer."""
        response = self.page.goto(url)
        return {"status": response.status,
                "content_type": response.headers.get("content-type", ""),
                "h1": self.page.inner_text("h1") if self.page.query_selector("h1") else None,
                "text": self.page.inner_text("body")}

    def seen(self) -> dict:
        # copies: what closing the browser afterwards aborts (a refetch a live event started
        # as the journey ended) happened after the journey, not to the person
        return {"problems": list(self.problems), "foreign": list(self.foreign),
                "aborted": list(self.aborted)}


def docs(tab: Tab, base_url: str, token: str) -> dict:
    """Open the API docs, list the operations shown, then Authorize with the token and
    "Try it out" on GET /api/users."""
    page = tab.page
    response = page.goto(base_url + "/api/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    shown = []
    for block in page.query_selector_all(".opblock"):
        method = block.query_selector(".opblock-summary-method").inner_text().strip()
        path = block.query_selector(".opblock-summary-path").get_attribute("data-path")
        shown.append([method.upper(), path])
    result = {"status": response.status, "shown": shown,
              "unable_to_render": "Unable to render" in page.content()}

    page.click(".btn.authorize")
    page.fill("#auth-bearer-value", token)
    page.click(".auth-btn-wrapper button.authorize")
    page.click(".auth-btn-wrapper button.btn-done")
    operation = page.locator("#operations-users-users_list_users")  # operationId users.list_users
    if operation.locator(".opblock-body").count() == 0:
        operation.locator(".opblock-summary").click()
    try_it = operation.locator("button.try-out__btn")
    if try_it.count() and try_it.inner_text().strip().lower() == "try it out":
        try_it.click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for()
    result["try_status"] = status.inner_text().strip()
    result["try_body"] = operation.locator(".live-responses-table .microlight").first.inner_text()
    return result


def links(tab: Tab, urls: list[str]) -> dict:
    """Open each link in turn (a mailed link, the same link again, a made-up one...). The
    browser logs an error for every page answered 4xx; the statuses are asserted instead."""
    visits = [tab.visit(url) for url in urls]
    tab.problems[:] = [p for p in tab.problems if not p.startswith(
        "console: Failed to load resource: the server responded with a status of 4")]
    return {"visits": visits}


def download(tab: Tab, url: str) -> dict:
    """Follow a link that downloads a file, as a click would; the file's name and text."""
    tab.page.goto(tab.origin + "/api/docs")  # any page of Berth to click from
    with tab.page.expect_download() as info:
        tab.page.evaluate("url => { const a = document.createElement('a'); a.href = url; "
                          "document.body.appendChild(a); a.click(); }", url)
    done = info.value
    # a navigation that turns into a download is reported as aborted: that is the download
    tab.problems[:] = [p for p in tab.problems if p != f"request failed: {url} net::ERR_ABORTED"]
    with open(done.path(), encoding="utf-8") as saved:
        return {"filename": done.suggested_filename, "content": saved.read()}


# --- the web console (tests/e2e/test_console.py) -------------------------------------------

WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}

# every form control a person can reach has a name a screen reader can say
UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button, [role=button], a[href]')]
  .filter(e => e.offsetParent !== null && e.getAttribute('aria-hidden') !== 'true')
  .filter(e => !((e.labels && e.labels.length) || e.getAttribute('aria-label')
                 || e.getAttribute('aria-labelledby') || (e.innerText || '').trim()))
  .map(e => e.outerHTML.slice(0, 120))"""

HORIZONTAL_SCROLL = "() => document.documentElement.scrollWidth - window.innerWidth"


class Console:
    """The console in one tab, with a screenshot of every step in ``shots``."""

    def __init__(self, tab: Tab, shots: str):
        self.tab, self.page, self.shots = tab, tab.page, shots
        self.taken: list[str] = []
        self.unlabelled: dict[str, list[str]] = {}

    def shot(self, name: str) -> None:
        path = f"{self.shots}/{len(self.taken) + 1:02d}-{name}.png"
        self.page.screenshot(path=path, full_page=True)
        self.taken.append(path)
        missing = self.page.evaluate(UNLABELLED)
        if missing:
            self.unlabelled[name] = missing

    def text(self, test_id: str) -> str:
        return self.page.get_by_test_id(test_id).inner_text().strip()


def console(tab: Tab, shots: str, username: str, password: str, email: str,
            serial: str) -> dict:
    """A customer's first visit: sign up (a refused empty form first), sign in with the
    keyboard (a wrong password first), no rental, a serial redeemed, the rental and the plan;
    a 503 shown as "retrying" and recovered from; 390 px wide; 中文, kept across a reload;
    the containers page; sign out."""
    page, seen = tab.page, {}
    ui = Console(tab, shots)
    page.set_viewport_size(WIDE)

    page.goto(tab.origin + "/")
    page.wait_for_url("**/login")
    seen["start_url"] = page.url
    page.get_by_role("link", name="Create one").click()
    # (the sign-in form stays until the sign-up page's code has loaded: a transition)
    page.get_by_role("heading", name="Create a Berth account").wait_for()
    page.get_by_label("Username").fill("ab")
    page.get_by_label("E-mail address").fill("not-an-address")
    page.locator("input[data-path=password]").fill("short")
    sent: list[str] = []

    def note(request):
        if "/api/" in request.url:
            sent.append(request.url)
    page.on("request", note)
    page.get_by_role("button", name="Create the account").click()
    page.get_by_text("From 3 to 32 characters").wait_for()  # refused before sending
    page.wait_for_timeout(500)
    page.remove_listener("request", note)
    seen["sent_invalid_form"] = sent
    seen["empty_form_errors"] = page.locator(".mantine-InputWrapper-error").all_inner_texts()
    ui.shot("signup-refused")
    seen["signed_up"] = _sign_up(page, username, email, password)
    ui.shot("signed-up")

    page.get_by_role("link", name="Sign in").click()
    page.get_by_role("heading", name="Sign in to Berth").wait_for()
    # the keyboard alone: Tab to the username field, type, Tab, type, Enter
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.autocomplete") \
                == "username":
            break
    seen["tab_reached_username"] = page.evaluate(
        "document.activeElement.autocomplete") == "username"
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(password + "-wrong")
    page.keyboard.press("Enter")
    seen["login_refused"] = page.get_by_test_id("form-error").inner_text()
    ui.shot("login-refused")
    tab.problems[:] = [p for p in tab.problems if "status of 401" not in p]
    page.locator("input[data-path=password]").fill(password)
    page.locator("input[data-path=password]").press("Enter")
    page.get_by_test_id("rental-status").wait_for()
    seen["home_url"] = page.url
    seen["who"] = ui.text("who")
    seen["no_rental"] = ui.text("no-rental")
    seen["badge_before"] = ui.text("rental-badge")
    seen["nav"] = page.locator("nav a").all_inner_texts()
    ui.shot("no-rental")

    page.get_by_label("Serial code").fill(serial)
    page.get_by_role("button", name="Redeem").click()
    seen["redeemed"] = ui.text("redeemed")
    page.get_by_test_id("days-left").wait_for()
    seen["badge_after"] = ui.text("rental-badge")
    seen["days_left"] = ui.text("days-left")
    seen["ends_on"] = ui.text("ends-on")
    seen["plan"] = ui.text("plan-name")
    seen["usage"] = [ui.text("usage-containers"), ui.text("usage-traffic")]
    ui.shot("rental")

    # a service down: the page says so and retries, then recovers by itself
    page.route("**/api/user/rental_info", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body='{"error": "Service unavailable: billing is not answering"}'))
    page.reload()
    seen["unavailable"] = ui.text("unavailable")
    ui.shot("unavailable")
    page.unroute("**/api/user/rental_info")
    page.get_by_test_id("days-left").wait_for(timeout=30_000)
    seen["recovered"] = ui.text("days-left")
    tab.problems[:] = [p for p in tab.problems if "status of 503" not in p]

    page.set_viewport_size(NARROW)
    page.wait_for_timeout(300)
    seen["overflow_390"] = page.evaluate(HORIZONTAL_SCROLL)
    ui.shot("rental-390px")

    page.get_by_text("中文").click()
    page.get_by_role("heading", name="我的租期").wait_for()
    seen["zh_days_left"] = ui.text("days-left")
    seen["zh_stored"] = page.evaluate("localStorage.getItem('berth.language')")
    seen["zh_lang"] = page.evaluate("document.documentElement.lang")
    page.reload()  # the language is kept, and so is the session (sessionStorage)
    page.get_by_role("heading", name="我的租期").wait_for()
    seen["zh_after_reload"] = ui.text("rental-badge")
    seen["overflow_390_zh"] = page.evaluate(HORIZONTAL_SCROLL)
    ui.shot("rental-390px-zh")

    page.get_by_role("button", name="打开菜单").click()  # the menu, folded at 390 px
    page.get_by_role("link", name="我的容器").click()
    page.get_by_role("heading", name="我的容器").wait_for()
    page.get_by_test_id("no-containers").wait_for()
    seen["containers_empty"] = ui.text("no-containers")
    seen["overflow_containers_390"] = page.evaluate(HORIZONTAL_SCROLL)
    ui.shot("containers-390px-zh")

    page.get_by_text("English").click()
    page.set_viewport_size(WIDE)
    page.get_by_role("heading", name="My containers").wait_for()
    page.get_by_test_id("new-container").click()
    page.get_by_role("button", name="Create", exact=True).click()  # empty: refused here
    seen["create_errors"] = page.locator(
        ".mantine-Modal-body .mantine-InputWrapper-error").all_inner_texts()
    seen["catalogue"] = page.locator("input[data-path=image]").evaluate(
        "e => e.value")  # the plan's only image is chosen for the customer
    ui.shot("create-refused")
    page.keyboard.press("Escape")

    page.get_by_test_id("sign-out").click()
    page.wait_for_url("**/login")
    seen["token_after_sign_out"] = page.evaluate("sessionStorage.getItem('berth.token')")
    page.goto(tab.origin + "/containers")
    page.wait_for_url("**/login")
    seen["after_sign_out_url"] = page.url
    ui.shot("signed-out")
    seen["screenshots"] = ui.taken
    seen["unlabelled"] = ui.unlabelled
    return seen


def _sign_up(page, username: str, email: str, password: str) -> str:
    """On the sign-up page: fill the form (the password twice) and send it; what the page
    then says."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("E-mail address").fill(email)
    page.locator("input[data-path=password]").fill(password)
    page.locator("input[data-path=again]").fill(password)
    page.get_by_role("button", name="Create the account").click()
    return page.get_by_test_id("signed-up").inner_text()


def _create_container(page, name: str):
    """From "My containers" (none yet): create ``name`` from the plan's catalogue, as it
    offers it; its row once it runs."""
    page.get_by_role("link", name="My containers").click()
    page.get_by_test_id("no-containers").wait_for()
    page.get_by_test_id("new-container").click()
    page.get_by_label("Container name").fill(name)
    page.get_by_role("button", name="Create", exact=True).click()
    row = page.get_by_test_id(f"container-{name}")
    row.get_by_text("running").wait_for(timeout=60_000)
    return row


def console_containers(tab: Tab, shots: str, username: str, password: str,
                       container: str) -> dict:
    """A customer with a rental runs a container from the console: create it from the plan's
    catalogue, stop, start, restart, read its logs, delete it (cancelled once, then
    confirmed)."""
    page, seen, name = tab.page, {}, container
    ui = Console(tab, shots)
    page.set_viewport_size(WIDE)
    page.goto(tab.origin + "/login")
    page.get_by_role("heading", name="Sign in to Berth").wait_for()
    page.get_by_label("Username").fill(username)
    page.locator("input[data-path=password]").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("rental-status").wait_for()
    row = _create_container(page, name)
    seen["created"] = row.inner_text()
    ui.shot("container-running")

    row.get_by_role("button", name="Stop", exact=True).click()
    row.get_by_role("button", name="Start", exact=True).wait_for(timeout=60_000)
    row.get_by_text("stopped").wait_for(timeout=60_000)
    seen["stopped"] = row.inner_text()
    ui.shot("container-stopped")
    row.get_by_role("button", name="Start", exact=True).click()
    row.get_by_text("running").wait_for(timeout=60_000)
    row.get_by_role("button", name="Restart", exact=True).click()
    page.get_by_text(f"{name}: running").first.wait_for()  # the notification
    row.get_by_text("running").wait_for(timeout=60_000)
    seen["restarted"] = row.inner_text()

    row.get_by_role("button", name="Logs", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"Logs of {name}").wait_for()
    logs = dialog.get_by_test_id("log-lines").or_(dialog.get_by_text("No log lines."))
    logs.first.wait_for()
    seen["logs"] = logs.first.inner_text()
    ui.shot("container-logs")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")

    row.get_by_role("button", name="Delete", exact=True).click()
    seen["confirm"] = page.get_by_role("dialog").inner_text()
    ui.shot("container-delete-confirm")
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    page.get_by_role("dialog").wait_for(state="hidden")
    seen["kept_after_cancel"] = row.count() == 1
    row.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_test_id("confirm-delete").click()
    page.get_by_test_id("no-containers").wait_for(timeout=60_000)
    seen["after_delete"] = ui.text("no-containers")
    ui.shot("container-deleted")
    seen["screenshots"] = ui.taken
    seen["unlabelled"] = ui.unlabelled
    return seen


def console_verify(tab: Tab, tokens: list[str]) -> dict:
    """The console's landing page for a verification link, /verify/<token>, for each token."""
    texts = []
    for token in tokens:
        tab.page.goto(f"{tab.origin}/verify/{token}")
        texts.append(tab.page.get_by_test_id("verify-result").inner_text().strip())
    # a refused link is a 400 the browser logs; what the page says is asserted instead
    tab.problems[:] = [p for p in tab.problems if "status of 400" not in p]
    return {"texts": texts}


def console_forgot(tab: Tab, email: str) -> dict:
    """Signed out, "Forgot your password?" from the sign-in page: a malformed address is
    refused before sending, then the real one is sent."""
    page = tab.page
    page.set_viewport_size(WIDE)
    page.goto(tab.origin + "/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_role("heading", name="Forgot your password?").wait_for()
    page.get_by_label("E-mail address").fill("not-an-address")
    page.get_by_role("button", name="Mail me a link").click()
    refused = page.locator(".mantine-InputWrapper-error").all_inner_texts()
    page.get_by_label("E-mail address").fill(email)
    page.get_by_role("button", name="Mail me a link").click()
    return {"refused": refused, "sent": page.get_by_test_id("forgot-sent").inner_text()}


def console_account(tab: Tab, shots: str, token: str, username: str, new_password: str,
                    newer_password: str, new_email: str) -> dict:
    """The mailed reset link's page in the console (a mismatch refused, then the password
    set), sign in with it, My account: a wrong current password refused with the API's
    sentence, the password changed (this tab stays signed in), the address changed; sign out
    (the session ends at the gateway: the token it held is returned to be tried)."""
    page, seen = tab.page, {}
    ui = Console(tab, shots)
    page.set_viewport_size(WIDE)
    page.goto(f"{tab.origin}/reset/{token}")
    seen["reset_for"] = ui.text("reset-for")
    page.locator("input[data-path=new_password]").fill(new_password)
    page.locator("input[data-path=again]").fill(new_password + "x")
    page.get_by_role("button", name="Set the password").click()
    seen["mismatch"] = page.locator(".mantine-InputWrapper-error").all_inner_texts()
    page.locator("input[data-path=again]").fill(new_password)
    ui.shot("reset-form")
    page.get_by_role("button", name="Set the password").click()
    seen["reset_done"] = ui.text("reset-done")
    ui.shot("reset-done")

    page.get_by_role("link", name="Sign in").click()
    page.get_by_role("heading", name="Sign in to Berth").wait_for()
    page.get_by_label("Username").fill(username)
    page.locator("input[data-path=password]").fill(new_password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("who").wait_for()
    seen["nav"] = page.locator("nav a").all_inner_texts()
    page.get_by_role("link", name="My account").click()
    page.get_by_role("heading", name="My account").wait_for()
    seen["token_before"] = page.evaluate("sessionStorage.getItem('berth.token')")

    form = page.get_by_test_id("password-form")
    form.get_by_label("Current password").fill("not the password")
    form.get_by_label("New password").fill(newer_password)
    form.get_by_label("Password again").fill(newer_password)
    before = len(tab.problems)
    form.get_by_role("button", name="Change the password").click()
    seen["wrong_current"] = form.get_by_test_id("form-error").inner_text()
    # the refusal is a 4xx the browser logs; what the page says is asserted instead
    seen["refusal_logged"] = tab.problems[before:]
    del tab.problems[before:]
    form.get_by_label("Current password").fill(new_password)
    form.get_by_role("button", name="Change the password").click()
    page.get_by_text("Password changed.").wait_for()
    seen["token_after"] = page.evaluate("sessionStorage.getItem('berth.token')")
    ui.shot("password-changed")

    form = page.get_by_test_id("email-form")
    form.get_by_label("New e-mail address").fill(new_email)
    form.locator("input[data-path=password]").fill(newer_password)
    form.get_by_role("button", name="Change the address").click()
    seen["email_changed"] = page.get_by_text("Address changed to").inner_text()
    page.set_viewport_size(NARROW)
    seen["overflow_390"] = page.evaluate(HORIZONTAL_SCROLL)
    ui.shot("account-390")
    page.set_viewport_size(WIDE)

    page.get_by_test_id("sign-out").click()
    page.wait_for_url("**/login")
    seen["after_sign_out_url"] = page.url
    seen["screenshots"] = ui.taken
    seen["unlabelled"] = ui.unlabelled
    return seen


def _api(origin: str, method: str, path: str, token: str) -> int:
    """A request made outside the page (another person's action, as the page sees it)."""
    request = urllib.request.Request(origin + path, method=method, data=b"" if method == "POST"
                                     else None, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def _download(port: int, times: int) -> int:
    got = 0
    for _ in range(times):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/blob", timeout=10) as response:
            got += len(response.read())
    return got


def _signal(folder: str, name: str) -> None:
    with open(f"{folder}/{name}", "w") as f:
        f.write("1")


def _wait_signal(folder: str, name: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(f"{folder}/{name}"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {name} signal from the test")
        time.sleep(0.1)


def console_live(tab: Tab, shots: str, username: str, password: str, container: str,
                 admin_token: str, port: int, sync: str) -> dict:
    """Live updates in the console: a container an operator stops and starts changes state on
    the customer's page without a reload (the list does not poll while the stream is live);
    the traffic page draws the live bytes/s and the history, and the month's use moves after
    bytes were downloaded from the container. Then the test restarts the gateway (files
    ``ready`` and ``restarted`` in ``sync``): the page reconnects by itself and follows the
    next change; then the broker (``broker``, ``broker-back``): the page follows the next
    change again."""
    page, seen, name = tab.page, {}, container
    ui = Console(tab, shots)
    page.set_viewport_size(WIDE)
    page.goto(tab.origin + "/login")
    page.get_by_label("Username").fill(username)
    page.locator("input[data-path=password]").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("rental-status").wait_for()
    page.locator("[data-testid=live-status][data-state=live]").wait_for()
    page.get_by_role("link", name="My containers").click()
    row = page.get_by_test_id(f"container-{name}")
    row.get_by_text("running").wait_for()
    page.evaluate("window.__sameDocument = true")
    ui.shot("live-running")

    listed: list[str] = []
    page.on("request", lambda r: "/api/containers?" in r.url and listed.append(r.url))
    began = time.monotonic()
    _api(tab.origin, "POST", f"/api/containers/{name}/stop", admin_token)
    row.get_by_text("stopped").wait_for(timeout=15_000)
    seen["stopped_after"] = round(time.monotonic() - began, 2)
    seen["stopped_row"] = row.inner_text()
    ui.shot("live-stopped-by-operator")
    began = time.monotonic()
    _api(tab.origin, "POST", f"/api/containers/{name}/start", admin_token)
    row.get_by_text("running").wait_for(timeout=15_000)
    seen["started_after"] = round(time.monotonic() - began, 2)
    seen["same_document"] = page.evaluate("window.__sameDocument === true")
    seen["list_requests"] = len(listed)  # refetches the events caused (no polling when live)

    page.get_by_role("link", name="Traffic").click()
    page.get_by_role("heading", name="Traffic").wait_for()
    month = page.get_by_test_id("month-used")
    month.wait_for()
    seen["month_before"] = month.inner_text()
    seen["downloaded"] = _download(port, 8)
    live_chart = page.locator("[data-testid=live-chart] canvas")
    live_chart.first.wait_for(timeout=30_000)
    page.get_by_test_id("live-rates").get_by_text(name).wait_for(timeout=30_000)
    page.wait_for_function(
        "before => document.querySelector('[data-testid=month-used]').innerText !== before",
        arg=seen["month_before"], timeout=30_000)
    seen["month_after"] = month.inner_text()
    page.locator("[data-testid=history-chart] canvas").first.wait_for(timeout=30_000)
    seen["live_rates"] = page.get_by_test_id("live-rates").inner_text()
    seen["history_total"] = ui.text("history-total")
    ui.shot("traffic-hourly")
    page.get_by_text("By day").click()
    page.locator("[data-testid=history-chart] canvas").first.wait_for()
    seen["history_total_daily"] = ui.text("history-total")
    ui.shot("traffic-daily")
    page.set_viewport_size(NARROW)
    page.wait_for_timeout(300)
    seen["overflow_traffic_390"] = page.evaluate(
        "document.documentElement.scrollWidth - window.innerWidth")
    ui.shot("traffic-390")
    page.set_viewport_size(WIDE)

    # the gateway restarts under the open page
    page.get_by_role("link", name="My containers").click()
    row.wait_for()
    before = len(tab.problems)
    _signal(sync, "ready")
    page.locator("[data-testid=live-status][data-state=reconnecting]").wait_for(timeout=60_000)
    seen["badge_while_down"] = page.get_by_test_id("live-status").get_attribute("data-state")
    _wait_signal(sync, "restarted")
    page.locator("[data-testid=live-status][data-state=live]").wait_for(timeout=60_000)
    ui.shot("live-after-gateway-restart")
    # what failed while the gateway was away: the stream's reconnection attempts (and any
    # refetch in that moment), nothing else
    outage = tab.problems[before:]
    seen["outage_problems"] = outage
    del tab.problems[before:]
    began = time.monotonic()
    _api(tab.origin, "POST", f"/api/containers/{name}/stop", admin_token)
    row.get_by_text("stopped").wait_for(timeout=15_000)
    seen["stopped_after_restart"] = round(time.monotonic() - began, 2)

    # then the broker restarts under the open page (files ``broker`` and ``broker-back``): the
    # stream stays open, and the page follows the next change
    before = len(tab.problems)
    refetched: list[str] = []  # the page's refetch on ``resync``: its consumer is back
    page.on("request", lambda r: "/api/containers?" in r.url and refetched.append(r.url))
    _signal(sync, "broker")
    _wait_signal(sync, "broker-back", 120)
    deadline = time.monotonic() + 60
    while not refetched and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    seen["resync_refetches"] = len(refetched)
    seen["broker_problems"] = tab.problems[before:]
    del tab.problems[before:]
    seen["badge_after_broker"] = page.get_by_test_id("live-status").get_attribute("data-state")
    began = time.monotonic()
    _api(tab.origin, "POST", f"/api/containers/{name}/start", admin_token)
    row.get_by_text("running").wait_for(timeout=15_000)
    seen["started_after_broker"] = round(time.monotonic() - began, 2)
    ui.shot("live-after-broker-restart")
    seen["same_document_end"] = page.evaluate("window.__sameDocument === true")
    seen["screenshots"] = ui.taken
    seen["unlabelled"] = ui.unlabelled
    return seen


def customer_whole(tab: Tab, shots: str, username: str, password: str, email: str,
                   serial: str, container: str, sync: str) -> dict:
    """A customer's whole first visit in one tab: sign up; open the verification link of the
    mail the real SMTP server received (the test reads the mailbox and hands the link over:
    files ``signed-up`` and ``link`` in ``sync``) and follow it to the sign-in page; sign in;
    redeem a serial (the platform requires a verified address for that); create a container
    from the plan's catalogue; download bytes from it (the port the page shows); watch the
    traffic page's live chart, the history and the month's use move."""
    page, seen, name = tab.page, {}, container
    ui = Console(tab, shots)
    page.set_viewport_size(WIDE)
    page.goto(tab.origin + "/")
    page.get_by_role("link", name="Create one").click()
    page.get_by_role("heading", name="Create a Berth account").wait_for()
    seen["signed_up"] = _sign_up(page, username, email, password)
    ui.shot("whole-signed-up")
    _signal(sync, "signed-up")

    _wait_signal(sync, "link", 60)  # the mailed link, as the customer's mail client shows it
    with open(f"{sync}/link") as f:
        link = f.read().strip()
    page.goto(link)
    seen["verified_page"] = page.inner_text("main")
    ui.shot("whole-link-opened")
    page.get_by_role("link", name="Sign in to the Berth console").click()
    page.get_by_role("heading", name="Sign in to Berth").wait_for()
    page.get_by_label("Username").fill(username)
    page.locator("input[data-path=password]").fill(password)
    page.locator("input[data-path=password]").press("Enter")
    page.get_by_test_id("rental-status").wait_for()
    page.locator("[data-testid=live-status][data-state=live]").wait_for()
    page.evaluate("window.__sameDocument = true")
    seen["no_rental"] = ui.text("no-rental")

    page.get_by_label("Serial code").fill(serial)
    page.get_by_role("button", name="Redeem").click()
    seen["redeemed"] = ui.text("redeemed")
    page.get_by_test_id("days-left").wait_for()
    seen["days_left"] = ui.text("days-left")
    ui.shot("whole-redeemed")

    row = _create_container(page, name)
    seen["created"] = row.inner_text()
    ui.shot("whole-container-running")
    port = int(row.get_by_text("→80/tcp").inner_text().split("→")[0])

    page.get_by_role("link", name="Traffic").click()
    month = page.get_by_test_id("month-used")
    month.wait_for()
    page.locator("[data-testid=history-chart], [data-testid=history-empty]").first.wait_for()
    seen["month_before"] = month.inner_text()
    seen["history_before"] = (ui.text("history-total")
                              if page.get_by_test_id("history-total").count() else "")
    seen["downloaded"] = _download(port, 8)
    page.get_by_test_id("live-rates").get_by_text(name).wait_for(timeout=30_000)
    page.locator("[data-testid=live-chart] canvas").first.wait_for(timeout=30_000)
    # the 8 MiB show in the month's use and the history (earlier sweeps may count a few bytes
    # of the container's own first)
    month.filter(has_text="MiB").wait_for(timeout=30_000)
    seen["month_after"] = month.inner_text()
    page.get_by_test_id("history-total").filter(has_text="MiB").wait_for(timeout=30_000)
    seen["history_after"] = ui.text("history-total")
    seen["live_rates"] = page.get_by_test_id("live-rates").inner_text()
    ui.shot("whole-traffic-moved")
    page.get_by_test_id("per-container").check()  # one line per container, named
    legend = page.locator("[data-testid=history-chart] .u-legend")
    legend.get_by_text(name).wait_for()
    seen["per_container_legend"] = legend.inner_text()
    ui.shot("whole-traffic-per-container")
    seen["same_document"] = page.evaluate("window.__sameDocument === true")
    seen["screenshots"] = ui.taken
    seen["unlabelled"] = ui.unlabelled
    return seen


JOURNEYS = {"docs": docs, "links": links, "download": download, "console": console,
            "console_verify": console_verify, "console_containers": console_containers,
            "console_forgot": console_forgot, "console_account": console_account,
            "console_live": console_live, "customer_whole": customer_whole}


def main(journeys: dict | None = None) -> None:
    """``python -m <module> NAME``: run journey NAME of ``journeys`` (this module's by default;
    the other journey modules pass theirs) with the JSON arguments on stdin."""
    name = sys.argv[1]
    arguments = json.load(sys.stdin)
    origin = arguments.pop("origin")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            tab = Tab(browser, origin)
            result = (journeys or JOURNEYS)[name](tab, **arguments)
            result.update(tab.seen())
        finally:
            browser.close()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
