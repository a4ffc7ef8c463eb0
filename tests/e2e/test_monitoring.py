"""GET /api/monitoring end to end: healthy with everything up, degraded with a service
stopped, healthy again when it is back."""
from __future__ import annotations

import pytest

from tests.support import poll

pytestmark = pytest.mark.e2e


def healthy_soon(platform, token, timeout=20.0) -> dict:
    """The monitoring answer once it is healthy (a busy machine may miss a probe's 2 s)."""
    def monitoring() -> dict:
        status, body = platform.request("GET", "/api/monitoring", token=token)
        assert status == 200, body
        return body
    return poll(monitoring, until=lambda body: body["status"] == "healthy", timeout=timeout,
                interval=0.5, what="GET /api/monitoring to say healthy")


def test_monitoring_is_healthy_then_degraded_while_a_service_is_stopped(platform):
    admin = platform.admin_token()
    body = healthy_soon(platform, admin)
    assert body["status"] == "healthy", body
    assert body["issues"] == [] and body["uptime"].split()[1].rstrip("s") in (
        "second", "minute", "hour")
    assert set(body["services"]) == {"users", "containers", "traffic", "billing", "alerts"}

    platform.stop_service("traffic")
    try:
        status, body = platform.request("GET", "/api/monitoring", token=admin)
        assert status == 200, body
        assert body["status"] == "degraded", body
        [issue] = body["issues"]
        assert issue["type"] == "service_down" and "traffic" in issue["message"]
        assert issue["timestamp"].endswith("Z")
    finally:
        platform.start_service("traffic")
        platform.wait_healthy()
    assert healthy_soon(platform, admin)["status"] == "healthy"


def test_monitoring_without_the_containers_service_is_an_issue_not_an_error(platform):
    admin = platform.admin_token()
    platform.stop_service("containers")
    try:
        status, body = platform.request("GET", "/api/monitoring", token=admin)
        assert status == 200, body
        assert body["status"] in ("degraded", "unhealthy"), body
        types = {issue["type"] for issue in body["issues"]}
        assert {"service_down", "fleet_unknown"} <= types, body
    finally:
        platform.start_service("containers")
        platform.wait_healthy()
