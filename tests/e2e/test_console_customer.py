"""A customer's whole journey through the console in one tab of a real headless Chromium
(issue 17, item 8), every part real: the platform's processes (a verified address required
before a serial is redeemed, a 2 s traffic sweep), the real SMTP server the platform mails
through, and the default Docker engine. The customer signs up; the test reads the
verification mail off the SMTP server and hands its link to the browser, which opens it and
follows it to the sign-in page; signs in, redeems a serial, creates a container from the
plan's catalogue, downloads 8 MiB from it, and watches the traffic page's live rates, the
history and the month's use move, without a reload; per container, the history draws the
container's own line, named. The journey is ``customer_whole`` in
``browser_journeys.py``; its screenshots go to a folder this test reports.

It uses the default engine: make test runs it in its "engine" shard, with one such test at
a time (tests/shards.py); by hand, not beside another run on the same engine."""
from __future__ import annotations

import datetime as dt

import pytest

from tests.docker_support import TEST_IMAGE, remove_berth_containers
from tests.e2e.helpers import Beside, links_in, to_address
from tests.e2e.test_browser import journey
from tests.e2e.test_console_operator import built_console, ok  # noqa: F401 (autouse)
from tests.support import poll, report, rmtree, running_platform

pytestmark = pytest.mark.e2e

EMAIL = "whole-cust@example.com"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, amqp_uri, module_smtp, docker_client):
    remove_berth_containers(docker_client)
    folder = tmp_path_factory.mktemp("console-customer")
    with running_platform(folder, amqp_uri, smtp_port=module_smtp.port, extra_env={
            "BERTH_REQUIRE_VERIFIED_EMAIL": "true", "BERTH_TRAFFIC_INTERVAL": "2",
            "BERTH_STREAM_TRAFFIC_SECONDS": "1", "BERTH_HEALTH_INTERVAL": "1"}) as platform:
        yield platform
    remove_berth_containers(docker_client)
    rmtree(folder)


def test_a_customer_signs_up_verifies_redeems_runs_a_container_and_watches_its_traffic(
        stack, module_smtp, docker_url, tmp_path_factory):
    admin = stack.admin_token()
    ok(stack, "POST", "/api/add_server", {"server_name": "whole-local",
                                          "ip_address": "127.0.0.1",
                                          "docker_url": docker_url}, admin)
    image = ok(stack, "POST", "/api/images", {"reference": TEST_IMAGE, "display_name": "httpd",
                                              "container_port": 80}, admin)["image"]
    plan = ok(stack, "POST", "/api/plans", {
        "name": "whole-plan", "cpus": 0.5, "memory_mib": 64, "pids_limit": 64,
        "max_containers": 1, "max_ports": 1, "log_max_mib": 3,
        "traffic_quota_bytes": 10 * 1024 ** 3, "image_ids": [image["image_id"]]},
        admin)["plan"]
    end = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=30)
    serial = ok(stack, "POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": end.isoformat(), "plan_id": plan["plan_id"]},
        admin)["serial_code"]
    shots = tmp_path_factory.mktemp("console-customer-screenshots")
    sync = tmp_path_factory.mktemp("console-customer-sync")
    handed: dict = {}

    def hand_over_the_mailed_link():
        poll(lambda: (sync / "signed-up").exists(), timeout=120, what="the sign-up")
        [mail] = module_smtp.wait_for(lambda m: to_address(m) == EMAIL)
        [link] = [u for u in links_in(mail) if "/verify_email/" in u]
        handed["link"] = link
        (sync / "link").write_text(link)

    helper = Beside(hand_over_the_mailed_link, sync / "link")
    helper.start()
    try:
        seen = journey(stack, "customer_whole", shots=str(shots), username="whole-cust",
                       password="whole password 1", email=EMAIL, serial=serial,
                       container="whole-site", sync=str(sync))
    finally:
        helper.finish()
    report(f"console customer journey screenshots: {shots} (signed up, the mailed link "
           f"opened, the serial redeemed, the container running, the traffic page after the "
           f"download)")
    report(f"console customer: the month's use {seen['month_before']} -> "
           f"{seen['month_after']}; history {seen['history_before'] or '(none)'} -> "
           f"{seen['history_after']}")

    assert handed["link"].startswith(stack.url + "/api/verify_email/")
    assert EMAIL in seen["signed_up"]
    assert "E-mail address verified" in seen["verified_page"] and EMAIL in seen["verified_page"]
    assert seen["no_rental"].startswith("You have no rental yet")
    assert seen["redeemed"] == f"Serial redeemed: your rental runs until {end.isoformat()}."
    assert seen["days_left"] == "30 days left"
    assert "whole-site" in seen["created"] and "running" in seen["created"].lower()
    assert seen["downloaded"] == 8 * 1024 * 1024
    assert "whole-site" in seen["live_rates"]
    assert seen["month_after"] != seen["month_before"]
    assert "MiB" in seen["month_after"] and "10 GiB" in seen["month_after"]
    assert seen["history_after"].startswith("Total:")
    assert seen["history_after"] != seen["history_before"]
    assert seen["same_document"]  # from sign-in to the moving chart, no reload
    assert seen["unlabelled"] == {}
    # per container: the legend names the container, not "In" and "Out"
    assert "whole-site" in seen["per_container_legend"]
    assert "Out" not in seen["per_container_legend"]
    assert len(seen["screenshots"]) == 6
    users = ok(stack, "GET", "/api/users", token=admin)["users"]
    assert [u.get("email_verified") for u in users if u["username"] == "whole-cust"] == [True]
