"""The web console (``web/``, served by the gateway at ``/``) in a real headless Chromium
against the running platform (no Docker engine but in the last test): a customer signs up,
signs in, has no rental, redeems a serial an admin made, and sees the rental's days left and the plan; a 503
shows "service unavailable, retrying" and the page recovers by itself; at 390 px wide nothing
scrolls sideways; 中文 changes the texts and is kept across a reload. No console error,
nothing loaded from outside, every control labelled. The journey is ``console`` in
``browser_journeys.py``; its screenshots go to a folder this test reports (``figures``).

The container screens (create from the catalogue, stop, start, restart, logs, delete with a
confirmation) need an engine: the last test runs them on the default engine (make test runs
this module in its "engine" shard, tests/shards.py; by hand, not beside another run on the
same engine).
"""
from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from tests.docker_support import TEST_IMAGE, remove_berth_containers
from tests.e2e.helpers import links_in, to_address
from tests.e2e.test_browser import journey
from tests.support import report

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def built_console():
    """The console as the platform serves it (web/dist): `make web` builds it if missing or
    stale (make test has built it already; this covers running pytest alone)."""
    done = subprocess.run(["make", "--no-print-directory", "web"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (ROOT / "web/dist/index.html").is_file()


def ok(platform, method, path, body=None, token=None):
    status, reply = platform.request(method, path, body, token=token)
    assert status == 200, (method, path, status, reply)
    return reply


def test_the_gateway_serves_the_console_with_long_cached_assets(platform):
    status, headers, body = platform.fetch("GET", "/containers")
    assert status == 200 and "text/html" in headers["Content-Type"]
    assert headers["Cache-Control"] == "no-cache"
    assets = [a for a in body.decode().split('"') if a.startswith("/assets/")]
    assert assets, body
    for asset in assets:
        status, headers, _ = platform.fetch("GET", asset)
        assert status == 200, asset
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    status, body = platform.request("GET", "/api/no-such-route")
    assert status == 404 and body == {"error": "Not found"}


def test_a_customer_signs_up_signs_in_and_redeems_a_serial(platform, tmp_path_factory,
                                                            module_smtp):
    admin = platform.admin_token()
    image = ok(platform, "POST", "/api/images", {
        "reference": "berth-test/web:1", "display_name": "Web server"}, admin)
    plan = ok(platform, "POST", "/api/plans", {
        "name": "console-small", "cpus": 0.5, "memory_mib": 256, "pids_limit": 128,
        "max_containers": 3, "max_ports": 1, "log_max_mib": 10,
        "traffic_quota_bytes": 10 * 1024 ** 3, "quota_action": "suspend",
        "image_ids": [image["image"]["image_id"]]}, admin)
    plan_id = plan["plan"]["plan_id"]
    end = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=30)
    serial = ok(platform, "POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": end.isoformat(), "plan_id": plan_id},
        admin)["serial_code"]
    status, refused = platform.request("POST", "/api/login", {
        "username": "nobody-console", "password": "not the password"})
    assert status == 401, refused

    shots = tmp_path_factory.mktemp("console-screenshots")
    seen = journey(platform, "console", shots=str(shots), username="console-cust",
                   password="console password 1", email="console-cust@example.com",
                   serial=serial)
    report(f"console journey screenshots: {shots}")

    assert seen["start_url"].endswith("/login")  # signed out: the start page asks to sign in
    assert seen["empty_form_errors"] == ["From 3 to 32 characters", "Not an e-mail address",
                                         "From 8 to 128 characters", "The passwords differ"]
    assert seen["sent_invalid_form"] == []
    assert "console-cust@example.com" in seen["signed_up"]
    assert seen["tab_reached_username"]
    assert seen["login_refused"].endswith(refused["error"])  # the API's own sentence
    assert seen["who"] == "Signed in as console-cust (customer)"
    assert seen["no_rental"].startswith("You have no rental yet")
    assert seen["badge_before"].lower() == "no rental"  # a badge is in capitals
    assert seen["nav"] == ["My rental", "My containers", "Traffic", "My account"]  # no operator or distributor area
    assert seen["redeemed"] == f"Serial redeemed: your rental runs until {end.isoformat()}."
    assert seen["badge_after"].lower() == "active"
    assert seen["days_left"] == "30 days left"
    assert seen["ends_on"] == f"Ends on {end.isoformat()}"
    assert seen["plan"] == "Plan “console-small”"
    assert seen["usage"][0].endswith("0 / 3")
    assert seen["usage"][1].endswith("0 B / 10 GiB")
    assert "The service is unavailable right now; retrying" in seen["unavailable"]
    assert seen["recovered"] == "30 days left"
    assert seen["overflow_390"] <= 0 and seen["overflow_390_zh"] <= 0
    assert seen["overflow_containers_390"] <= 0
    assert seen["zh_days_left"] == "剩余 30 天"
    assert seen["zh_stored"] == "zh" and seen["zh_lang"] == "zh-CN"
    assert seen["zh_after_reload"] == "有效"
    assert seen["containers_empty"] == "您还没有容器。"
    assert "Required" in seen["create_errors"]  # the name, refused before sending
    assert seen["catalogue"] == "Web server (berth-test/web:1)"
    assert seen["token_after_sign_out"] is None
    assert seen["after_sign_out_url"].endswith("/login")
    assert seen["unlabelled"] == {}
    assert len(seen["screenshots"]) >= 10
    assert all(Path(p).stat().st_size > 1000 for p in seen["screenshots"])

    # the mailed link's token, opened on the console's own landing page: once, then spent
    [link] = [u for mail in module_smtp.wait_for(
        lambda m: to_address(m) == "console-cust@example.com"
        and any("/verify_email/" in u for u in links_in(m)))
        for u in links_in(mail) if "/verify_email/" in u]
    token = link.rsplit("/", 1)[1]
    first, again = journey(platform, "console_verify", tokens=[token, token])["texts"]
    assert first == "Your e-mail address is verified. You can sign in."
    assert again == "This verification link is invalid, was already used or has expired."


def test_a_customer_runs_a_container_from_the_console(platform, docker_url, docker_client,
                                                      tmp_path_factory):
    remove_berth_containers(docker_client)
    admin = platform.admin_token()
    try:
        ok(platform, "POST", "/api/add_server", {
            "server_name": "console-local", "ip_address": "127.0.0.1",
            "docker_url": docker_url, "status": "online"}, admin)
        image = ok(platform, "POST", "/api/images", {
            "reference": TEST_IMAGE, "display_name": "httpd", "container_port": 80},
            admin)["image"]
        plan = ok(platform, "POST", "/api/plans", {
            "name": "console-runner", "cpus": 0.5, "memory_mib": 64, "pids_limit": 64,
            "max_containers": 1, "max_ports": 1, "log_max_mib": 3,
            "image_ids": [image["image_id"]]}, admin)["plan"]
        end = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=7)
        serial = ok(platform, "POST", "/api/serial/generate", {
            "type": "rental", "expiry_date": end.isoformat(), "plan_id": plan["plan_id"]},
            admin)["serial_code"]
        _, token = platform.new_user("console-runner", "runner password 1")
        ok(platform, "POST", "/api/serial/redeem", {"serial_code": serial}, token)

        shots = tmp_path_factory.mktemp("console-container-screenshots")
        seen = journey(platform, "console_containers", shots=str(shots),
                       username="console-runner", password="runner password 1",
                       container="runner-site")
        report(f"console container journey screenshots: {shots}")
    finally:
        remove_berth_containers(docker_client)

    assert "runner-site" in seen["created"] and TEST_IMAGE in seen["created"]
    # (a status badge is in capitals)
    assert "stopped" in seen["stopped"].lower() and "Start" in seen["stopped"]
    assert "running" in seen["restarted"].lower() and "Stop" in seen["restarted"]
    assert seen["logs"]
    assert "Delete runner-site?" in seen["confirm"] and "cannot be undone" in seen["confirm"]
    assert seen["kept_after_cancel"]
    assert seen["after_delete"] == "You have no containers yet."
    assert seen["unlabelled"] == {}
    status, body = platform.request("GET", "/api/containers", token=token)
    assert status == 200 and body["total"] == 0
