"""Journeys through the platform in a real headless Chromium (Debian's ``chromium``, driven by
Playwright). Each journey does what a person would do and returns what the browser saw; the
assertions are in ``test_browser.py``.

They run in a process of their own (``python -m tests.e2e.browser_journeys NAME`` with the
arguments as JSON on stdin, the observations as JSON on stdout): the test process is
eventlet-patched, and Playwright's driver does not shut down under eventlet.
"""
from __future__ import annotations

import json
import shutil
import sys
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
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(
            f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(
            f"request failed: {r.url} {r.failure}"))
        self.page.on("request", self._check_origin)

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
        return {"problems": self.problems, "foreign": self.foreign}


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


JOURNEYS = {"docs": docs, "links": links, "download": download}


def main() -> None:
    name = sys.argv[1]
    arguments = json.load(sys.stdin)
    origin = arguments.pop("origin")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            tab = Tab(browser, origin)
            result = JOURNEYS[name](tab, **arguments)
            result.update(tab.seen())
        finally:
            browser.close()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
