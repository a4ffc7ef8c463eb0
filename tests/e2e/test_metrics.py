"""Prometheus metrics as a scraper sees them: after a login, a failed login and a registration
(whose verification_email_requested event the alerts service handles), the gateway and every
service answer /metrics with output ``promtool check metrics`` accepts without a lint problem,
and the families an operator graphs are there with the labels and values that traffic made.

promtool comes from Debian's ``prometheus`` package (``.ci/run`` installs it); without it this
test fails rather than skips."""
from __future__ import annotations

import re
import shutil
import subprocess
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import poll

pytestmark = pytest.mark.e2e

SERVICE_NAMES = ("users", "containers", "traffic", "billing", "alerts")


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers.get("Content-Type", "").startswith("text/plain")
        return resp.read().decode()


def promtool_problems(body: str) -> str:
    """What ``promtool check metrics`` says about an exposition ('' when it is clean)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (Debian's package; "
                    ".ci/run installs it). This test validates every /metrics body with it.")
    result = subprocess.run([promtool, "check", "metrics"], input=body.encode(),
                            capture_output=True, timeout=30)
    output = (result.stdout + result.stderr).decode().strip()
    if result.returncode != 0 and not output:
        output = f"promtool exited {result.returncode}"
    return output


def samples(body: str) -> list:
    """Every sample, parsed by prometheus_client's strict text parser."""
    return [s for family in text_string_to_metric_families(body) for s in family.samples]


def value(body: str, name: str, **labels) -> float | None:
    """The sum of the samples called ``name`` whose labels include ``labels`` (None: none)."""
    found = [s.value for s in samples(body) if s.name == name
             and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(found) if found else None


def scrape_once_counted(url: str, name: str, **labels) -> str:
    """The exposition at ``url`` once ``name`` with ``labels`` has counted at least one."""
    return poll(lambda: scrape(url), until=lambda body: (value(body, name, **labels) or 0) >= 1,
                interval=0.3, what=f"{name}{labels} >= 1 at {url}")


def test_gateway_and_every_service_expose_clean_prometheus_metrics_after_traffic(platform):
    admin = platform.admin_token()
    status, _ = platform.request("POST", "/api/login",
                                 {"username": platform.admin["username"],
                                  "password": "not-the-password"})
    assert status == 401
    status, body = platform.request("POST", "/api/add_user", {
        "username": "metrics-newcomer", "password": "newcomer-password-1",
        "email": "metrics-newcomer@example.com"})
    assert status == 200, body
    new_id = body["user_id"]
    status, _ = platform.request("GET", f"/api/security/user_acl_info/{new_id}", token=admin)
    assert status in (200, 404)
    status, _ = platform.request("GET", "/api/no-such-route-31337")
    assert status == 404
    status, _ = platform.request("GET", "/api/server/health_check")
    assert status == 200

    alerts_url = platform.metrics_url("alerts")
    bodies = {"alerts": scrape_once_counted(alerts_url, "berth_events_handled_total",
                                            event_type="verification_email_requested",
                                            outcome="ok")}
    for name in SERVICE_NAMES:
        bodies.setdefault(name, scrape(platform.metrics_url(name)))
    bodies["gateway"] = scrape(platform.url + "/metrics")

    problems = {name: promtool_problems(body) for name, body in bodies.items()}
    assert problems == {name: "" for name in bodies}, problems

    # no unbounded label: no id, user name, raw path or unknown route in any label value
    for name, body in bodies.items():
        for s in samples(body):
            for label, text in s.labels.items():
                assert "metrics-newcomer" not in text, (name, s)
                assert "31337" not in text and not re.search(rf"/{new_id}\b", text), (name, s)

    # the gateway: count and latency histogram by method, route template and status
    gateway = bodies["gateway"]
    login_ok = dict(method="POST", route="/api/login", status="200")
    login_bad = dict(method="POST", route="/api/login", status="401")
    assert value(gateway, "berth_http_requests_total", **login_ok) >= 1
    assert value(gateway, "berth_http_requests_total", **login_bad) >= 1
    assert value(gateway, "berth_http_request_duration_seconds_count", **login_ok) >= 1
    assert value(gateway, "berth_http_request_duration_seconds_bucket", le="+Inf",
                 **login_bad) >= 1
    assert value(gateway, "berth_http_requests_total", route="/api/security/user_acl_info/"
                 "<int:user_id>") >= 1
    assert value(gateway, "berth_http_requests_total", route="unmatched", status="404") >= 1

    # RPC calls, latency and errors by method
    users = bodies["users"]
    assert value(users, "berth_entrypoint_calls_total", service="users", entrypoint="login",
                 kind="rpc", outcome="ok") >= 1
    assert value(users, "berth_entrypoint_calls_total", service="users", entrypoint="login",
                 kind="rpc", outcome="rejected") >= 1
    assert value(users, "berth_entrypoint_duration_seconds_count", entrypoint="login") >= 2
    assert value(users, "berth_outbox_events_published_total",
                 event_type="verification_email_requested") >= 1

    # events handled, by event type
    alerts = bodies["alerts"]
    assert value(alerts, "berth_events_handled_total", service="alerts",
                 source_service="users", event_type="verification_email_requested",
                 outcome="ok") >= 1
    assert value(alerts, "berth_entrypoint_calls_total", kind="event",
                 entrypoint="on_verification_email_requested", outcome="ok") >= 1

    # domain gauges from each service's database
    assert value(users, "berth_users", role="admin") == 1
    assert value(users, "berth_users", role="user") >= 1
    assert value(users, "berth_outbox_backlog", service="users") is not None
    containers = bodies["containers"]
    assert value(containers, "berth_servers", status="online") == 0
    assert value(containers, "berth_containers", status="running") == 0
    assert value(bodies["traffic"], "berth_traffic_bytes_total", direction="in") == 0
    assert value(bodies["billing"], "berth_rentals", status="active") == 0
    assert value(alerts, "berth_alerts_open", alert_type="server_health") == 0
    assert value(alerts, "berth_mail_outbox_backlog") is not None
    assert value(alerts, "berth_webhook_outbox_backlog") == 0
    for name in SERVICE_NAMES:
        assert value(bodies[name], "berth_metrics_collect_errors_total") == 0, name
