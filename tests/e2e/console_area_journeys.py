"""The console's distributor and operator areas in a real headless Chromium: journeys as in
``browser_journeys.py`` (same Tab and Console, a process of their own, arguments as JSON on
stdin, what the browser saw as JSON on stdout); the assertions are in
``test_console_operator.py``."""
from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.browser_journeys import (HORIZONTAL_SCROLL, NARROW, WIDE, Console, Tab, _signal,
                                        _wait_signal, main)


def sign_in(page, origin: str, username: str, password: str) -> None:
    page.goto(origin + "/login")
    page.get_by_label("Username").fill(username)
    page.locator("input[data-path=password]").fill(password)
    page.locator("input[data-path=password]").press("Enter")
    page.get_by_test_id("who").wait_for()


def api_calls(page, pattern: str) -> list[str]:
    """A list that fills with the URLs of requests matching ``pattern`` from now on."""
    sent: list[str] = []
    page.on("request", lambda request: pattern in request.url and sent.append(
        f"{request.method} {request.url}"))
    return sent


def distributor_generates(tab: Tab, shots: str, username: str, password: str,
                          plan: str) -> dict:
    """A distributor signs in, sees their allotment, is refused an incomplete form before it
    is sent, generates three serials of their plan, copies them and downloads them as CSV,
    and sees the allotment go down and the serials listed; then the page at 390 px."""
    page, seen = tab.page, {}
    ui = Console(tab, shots)
    tab.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=tab.origin)
    page.set_viewport_size(WIDE)
    sign_in(page, tab.origin, username, password)
    seen["who"] = ui.text("who")
    seen["nav"] = page.locator("nav a").all_inner_texts()
    page.get_by_role("link", name="Distributor").click()
    page.get_by_role("heading", name="Distributor", exact=True).wait_for()
    page.get_by_test_id("allotment-left").wait_for()
    seen["left_before"] = ui.text("allotment-left")
    page.get_by_test_id("no-sales").wait_for()
    seen["sales_before"] = ui.text("no-sales")
    ui.shot("distributor")

    generated = api_calls(page, "/api/serial/generate")
    page.locator("[data-testid=generate-form] input[data-path=count]").fill("")
    page.get_by_test_id("generate").click()
    page.get_by_text("Choose a plan", exact=True).wait_for()  # the Select's error
    page.wait_for_timeout(300)
    seen["refused_errors"] = page.locator(
        "[data-testid=generate-form] .mantine-InputWrapper-error").all_inner_texts()
    seen["sent_invalid"] = list(generated)
    ui.shot("generate-refused")

    page.locator("[data-testid=generate-form] input[data-path=plan_id]").click()
    page.get_by_role("option", name=plan).click()
    page.locator("[data-testid=generate-form] input[data-path=count]").fill("3")
    page.get_by_test_id("generate").click()
    page.get_by_test_id("generated").wait_for()
    page.get_by_test_id("generated").get_by_text("3 serials generated").wait_for()
    codes = page.get_by_test_id("generated-code").all_inner_texts()
    seen["codes"] = [c.strip() for c in codes]
    seen["generate_calls"] = len(generated)
    page.get_by_test_id("allotment-left").get_by_text("2 serials left").wait_for()
    seen["left_after"] = ui.text("allotment-left")

    page.get_by_test_id("copy-all").click()
    page.get_by_text("Copied").first.wait_for()
    seen["clipboard"] = page.evaluate("navigator.clipboard.readText()")
    with page.expect_download() as download:
        page.get_by_test_id("csv").click()
    path = Path(shots) / download.value.suggested_filename
    download.value.save_as(path)
    seen["csv_name"] = download.value.suggested_filename
    seen["csv"] = path.read_text(encoding="utf-8-sig")
    for code in seen["codes"]:
        page.get_by_test_id(f"serial-{code}").wait_for()
    seen["listed"] = [page.get_by_test_id(f"serial-{c}").inner_text() for c in seen["codes"]]
    ui.shot("generated")

    page.set_viewport_size(NARROW)
    page.wait_for_timeout(300)
    seen["overflow_390"] = page.evaluate(HORIZONTAL_SCROLL)
    ui.shot("distributor-390px")
    seen["screenshots"] = ui.taken
    seen["unlabelled"] = ui.unlabelled
    return seen


def distributor_sales(tab: Tab, shots: str, username: str, password: str) -> dict:
    """The distributor's sales after a customer redeemed one of their serials."""
    page, seen = tab.page, {}
    ui = Console(tab, shots)
    page.set_viewport_size(WIDE)
    sign_in(page, tab.origin, username, password)
    page.goto(tab.origin + "/distributor")
    page.get_by_test_id("sales-table").wait_for()
    seen["customers"] = page.get_by_test_id("sale-customer").all_inner_texts()
    seen["summary"] = ui.text("sales-summary")
    ui.shot("sales")
    seen["screenshots"] = ui.taken
    seen["unlabelled"] = ui.unlabelled
    return seen


def operator(tab: Tab, shots: str, username: str, password: str, admin_id: int,
             victim: str) -> dict:
    """An operator opens the dashboard, runs a failover (confirmed) and sees the actions
    taken, adds a plan (an invalid form refused first), disables a user (cancelled once, then
    confirmed), opens the audit log filtered by actor; the dashboard and the users at 390 px;
    中文."""
    page, seen = tab.page, {}
    ui = Console(tab, shots)
    page.set_viewport_size(WIDE)
    sign_in(page, tab.origin, username, password)
    seen["nav"] = page.locator("nav a").all_inner_texts()
    page.get_by_role("link", name="Dashboard").click()
    page.get_by_role("heading", name="Operator dashboard").wait_for()
    for test_id in ("servers-online", "servers-offline", "alerts-open", "monitoring-status",
                    "traffic-in", "rentals-past-due", "rentals-expiring"):
        page.get_by_test_id(test_id).wait_for()
    seen["dashboard"] = {name: ui.text(name) for name in (
        "servers-online", "servers-offline", "alerts-open", "monitoring-status", "traffic-in",
        "rentals-past-due", "rentals-expiring")}
    ui.shot("dashboard")

    page.get_by_role("link", name="Servers").click()
    page.get_by_role("heading", name="Servers", exact=True).wait_for()
    page.get_by_test_id("failover").click()
    seen["failover_confirm"] = page.get_by_role("dialog").inner_text()
    ui.shot("failover-confirm")
    page.get_by_test_id("confirm").click()
    page.get_by_test_id("action-result").wait_for()
    seen["failover_result"] = ui.text("action-result")
    ui.shot("failover-done")
    page.keyboard.press("Escape")
    page.get_by_test_id("add-server").click()
    page.locator("[data-testid=server-form] input[data-path=server_name]").fill("bad name!")
    page.locator("[data-testid=server-form] input[data-path=ip_address]").fill("300.1.1.1")
    page.locator("[data-testid=server-form] textarea[data-path=tls_client_cert]").fill("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----")
    added = api_calls(page, "/api/add_server")
    page.get_by_test_id("server-submit").click()
    page.get_by_text("A client certificate needs its key").wait_for()
    seen["server_errors"] = page.locator(
        "[data-testid=server-form] .mantine-InputWrapper-error").all_inner_texts()
    seen["server_sent"] = list(added)
    ui.shot("add-server-refused")
    page.keyboard.press("Escape")

    page.get_by_role("link", name="Plans and images").click()
    page.get_by_test_id("new-plan").click()
    sent = api_calls(page, "/api/plans")
    page.locator("[data-testid=plan-form] input[data-path=name]").fill("")
    page.get_by_test_id("plan-save").click()
    page.locator("[data-testid=plan-form] .mantine-InputWrapper-error").first.wait_for()
    page.wait_for_timeout(300)
    seen["plan_errors"] = page.locator(
        "[data-testid=plan-form] .mantine-InputWrapper-error").all_inner_texts()
    seen["plan_sent_invalid"] = [s for s in sent if s.startswith("POST")]
    page.locator("[data-testid=plan-form] input[data-path=name]").fill("area plan")
    page.get_by_test_id("plan-save").click()
    page.get_by_test_id("plan-area plan").wait_for()
    seen["plan_row"] = page.get_by_test_id("plan-area plan").inner_text()
    ui.shot("plan-added")

    page.get_by_role("link", name="Users").click()
    row = page.get_by_test_id(f"user-{victim}")
    row.get_by_role("button", name="Disable").click()
    seen["disable_confirm"] = page.get_by_role("dialog").inner_text()
    ui.shot("disable-confirm")
    updates = api_calls(page, "/api/users/")
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_timeout(300)
    seen["sent_after_cancel"] = [s for s in updates if s.startswith("PUT")]
    row.get_by_role("button", name="Disable").click()
    page.get_by_test_id("confirm").click()
    row.get_by_test_id("user-disabled").wait_for()
    seen["victim_row"] = row.inner_text()
    ui.shot("user-disabled")

    page.get_by_role("link", name="Audit log").click()
    page.get_by_test_id("audit-log").wait_for()
    page.locator("[data-testid=audit-filters] input[data-path=user_id]").fill(str(admin_id))
    page.locator("[data-testid=audit-filters] input[data-path=action]").fill("PUT /api/users/<int:user_id>")
    logs = api_calls(page, "/api/logs/system")
    with page.expect_response(lambda r: "/api/logs/system" in r.url and "user_id=" in r.url):
        page.get_by_test_id("audit-apply").click()
    page.get_by_test_id("log-actor").first.wait_for()
    page.wait_for_timeout(500)
    seen["audit_request"] = logs[-1] if logs else None
    seen["audit_actors"] = page.get_by_test_id("log-actor").all_inner_texts()
    seen["audit_rows"] = page.locator("[data-testid=audit-log] tbody tr").all_inner_texts()
    ui.shot("audit-by-actor")

    page.set_viewport_size(NARROW)
    page.goto(tab.origin + "/operator")
    page.get_by_test_id("servers-online").wait_for()
    page.wait_for_timeout(300)
    seen["overflow_dashboard_390"] = page.evaluate(HORIZONTAL_SCROLL)
    ui.shot("dashboard-390px")
    page.get_by_role("button", name="Open the menu").click()
    page.get_by_role("link", name="Users").click()
    page.get_by_test_id("users").wait_for()
    page.wait_for_timeout(300)
    seen["overflow_users_390"] = page.evaluate(HORIZONTAL_SCROLL)
    ui.shot("users-390px")
    page.get_by_text("中文").click()
    page.get_by_role("heading", name="用户", exact=True).wait_for()
    ui.shot("users-390px-zh")
    page.get_by_text("English").click()
    seen["screenshots"] = ui.taken
    seen["unlabelled"] = ui.unlabelled
    return seen


def operator_fleet(tab: Tab, shots: str, username: str, password: str, engine_url: str,
                   sync: str) -> dict:
    """An operator adds a server (a real engine) in the form and sees it online; the test
    puts a container on it and kills the engine (files ``added``, ``running`` and ``killed``
    in ``sync``); on the same page, without a reload, the alert arrives (a notification) and
    the server goes offline; the alert is on the alerts page; a confirmed failover moves the
    container and lists what it did."""
    page, seen = tab.page, {}
    ui = Console(tab, shots)
    page.set_viewport_size(WIDE)
    sign_in(page, tab.origin, username, password)
    page.locator("[data-testid=live-status][data-state=live]").wait_for()
    page.evaluate("window.__sameDocument = true")
    page.get_by_role("link", name="Servers").click()
    page.get_by_role("heading", name="Servers", exact=True).wait_for()
    page.get_by_test_id("add-server").click()
    form = "[data-testid=server-form]"
    page.locator(f"{form} input[data-path=server_name]").fill("edge-1")
    page.locator(f"{form} input[data-path=ip_address]").fill("127.0.0.1")
    page.locator(f"{form} input[data-path=docker_url]").fill(engine_url)
    ui.shot("add-server-form")
    page.get_by_test_id("server-submit").click()
    row = page.get_by_test_id("server-edge-1")
    status = row.get_by_test_id("server-status")
    status.wait_for()
    seen["added_row"] = row.inner_text()
    seen["added_status"] = status.inner_text().strip()
    ui.shot("server-added-online")
    _signal(sync, "added")

    _wait_signal(sync, "killed", 180)  # a container runs there, then its engine is killed
    killed = time.monotonic()
    notice = page.get_by_role("alert").filter(has_text="edge-1").filter(has_text="Alert:")
    notice.first.wait_for(timeout=30_000)
    seen["alert_after"] = round(time.monotonic() - killed, 2)
    seen["notice"] = notice.first.inner_text()
    ui.shot("alert-arrives-live")
    row.get_by_test_id("server-status").filter(has_text="offline").wait_for(timeout=30_000)
    seen["offline_after"] = round(time.monotonic() - killed, 2)
    seen["offline_row"] = row.inner_text()
    ui.shot("server-offline")

    page.get_by_role("link", name="Alerts and rules").click()
    alerts = page.get_by_test_id("alerts")
    alerts.get_by_text("edge-1").first.wait_for()
    seen["alert_rows"] = alerts.locator("tbody tr").all_inner_texts()
    ui.shot("alert-listed")

    page.get_by_role("link", name="Servers").click()
    page.get_by_test_id("server-edge-1").wait_for()
    page.get_by_test_id("failover").click()
    seen["failover_confirm"] = page.get_by_role("dialog").inner_text()
    page.get_by_test_id("confirm").click()
    page.get_by_test_id("action-result").wait_for(timeout=120_000)
    seen["failover_result"] = ui.text("action-result")
    seen["failover_actions"] = page.locator(
        "[data-testid=actions-table] tbody tr").all_inner_texts()
    ui.shot("failed-over")
    seen["same_document"] = page.evaluate("window.__sameDocument === true")
    seen["screenshots"] = ui.taken
    seen["unlabelled"] = ui.unlabelled
    return seen


JOURNEYS = {"distributor_generates": distributor_generates,
            "distributor_sales": distributor_sales, "operator": operator,
            "operator_fleet": operator_fleet}


if __name__ == "__main__":
    main(JOURNEYS)
