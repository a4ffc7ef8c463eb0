"""The platform as an operator sees it: health, route list, API docs, metrics, error shapes,
and what happens when a service goes away and comes back."""
from __future__ import annotations

import http.client
import json
import re
import time
import urllib.request

import pytest


pytestmark = pytest.mark.e2e

RPC_TIMEOUT = 4.0  # BERTH_RPC_TIMEOUT in the Platform environment
MARGIN = 2.0
SERVICE_NAMES = ("users", "containers", "traffic", "billing", "alerts")


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers.get("Content-Type", "").startswith("text/plain")
        return resp.read().decode()


def samples(text: str, metric: str) -> list[str]:
    return [line for line in text.splitlines()
            if line.startswith(metric + "{") or line.startswith(metric + " ")]


def test_health_check_reports_every_service_ok(platform):
    status, body = platform.request("GET", "/api/server/health_check")
    assert status == 200, body
    assert body["status"] == "healthy"
    assert set(body["services"]) == set(SERVICE_NAMES)
    assert all(state == "ok" for state in body["services"].values()), body


def test_url_list_names_every_route(platform):
    status, body = platform.request("GET", "/api/urls")
    assert status == 200, body
    assert isinstance(body, list) and body
    for row in body:
        assert set(row) >= {"endpoint", "methods", "url"}, row
    by_url = {row["url"]: row for row in body}
    assert "/api/add_user" in by_url and "POST" in by_url["/api/add_user"]["methods"]
    assert "/api/login" in by_url and "POST" in by_url["/api/login"]["methods"]
    assert "/api/security/user_acl_info/<int:user_id>" in by_url


def test_openapi_document_describes_the_users_routes(platform):
    status, doc = platform.request("GET", "/api/openapi.json")
    assert status == 200, doc
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"]
    paths = doc["paths"]
    for path, method in [("/api/add_user", "post"), ("/api/login", "post"),
                         ("/api/users", "get"), ("/api/users/{user_id}", "put"),
                         ("/api/send_verification_email", "post"),
                         ("/api/acl/generate", "post"), ("/api/acl/update", "post"),
                         ("/api/acl/logs/{user_id}", "get"),
                         ("/api/acl/download/{username}", "get"),
                         ("/api/user/download_acl", "get"),
                         ("/api/security/user_acl_info/{user_id}", "get")]:
        assert path in paths, f"{path} missing from the OpenAPI document"
        assert method in paths[path], f"{method.upper()} {path} missing"
    login = paths["/api/login"]["post"]
    assert "requestBody" in login and "200" in login["responses"]


def test_swagger_ui_page_and_its_assets_are_served(platform):
    status, headers, raw = platform.fetch("GET", "/api/docs")
    assert status == 200
    assert headers.get("Content-Type", "").startswith("text/html")
    page = raw.decode()
    assert "swagger-ui" in page.lower()
    scripts = re.findall(r'src="([^"]+)"', page)
    bundle = [src for src in scripts if src.endswith("swagger-ui-bundle.js")]
    assert bundle, page
    status, headers, raw = platform.fetch("GET", bundle[0])
    assert status == 200
    assert "javascript" in headers.get("Content-Type", "")
    assert b"SwaggerUIBundle" in raw
    assert len(raw) > 100_000  # the real bundle, not an error page


def test_gateway_metrics_label_routes_by_template(platform):
    user_id, token = platform.new_user("metrics-user")
    status, _ = platform.request("GET", f"/api/security/user_acl_info/{user_id}", token=token)
    assert status == 200
    status, _ = platform.request("GET", "/api/made-up-path-4711")
    assert status == 404
    text = scrape(platform.url + "/metrics")
    lines = samples(text, "berth_http_requests_total")
    assert lines, text[:2000]
    template = [l for l in lines
                if 'route="/api/security/user_acl_info/<int:user_id>"' in l and
                'status="200"' in l]
    assert template, lines
    assert not [l for l in lines if re.search(r'route="[^"]*/\d+"', l)], \
        "a concrete id leaked into a route label"
    assert not [l for l in lines if f"user_acl_info/{user_id}" in l]
    assert not [l for l in lines if "made-up-path-4711" in l], "raw unknown paths as labels"
    assert [l for l in lines if 'status="404"' in l], lines


def test_every_service_serves_prometheus_metrics_after_a_call(platform):
    platform.admin_token()  # a login: an RPC to users
    status, _ = platform.request("GET", "/api/server/health_check")  # calls every service
    assert status == 200
    for name in SERVICE_NAMES:
        text = scrape(platform.metrics_url(name))
        lines = samples(text, "berth_entrypoint_calls_total")
        assert [l for l in lines if f'service="{name}"' in l and 'entrypoint="health"' in l], \
            (name, lines)
    users = samples(scrape(platform.metrics_url("users")), "berth_entrypoint_calls_total")
    assert [l for l in users if 'entrypoint="login"' in l and 'outcome="ok"' in l], users


def test_unknown_route_is_a_json_404(platform):
    status, headers, raw = platform.fetch("GET", "/api/no/such/route")
    assert status == 404
    assert headers.get("Content-Type", "").startswith("application/json")
    assert isinstance(_json(raw)["error"], str) and _json(raw)["error"]


def test_wrong_method_is_a_json_405(platform):
    status, headers, raw = platform.fetch("DELETE", "/api/login")
    assert status == 405
    assert headers.get("Content-Type", "").startswith("application/json")
    assert _json(raw)["error"]
    assert "POST" in headers.get("Allow", "")


def test_oversized_body_is_a_json_413(platform):
    """A client announcing a 2 MiB body is refused before it sends it (a client that keeps
    writing after the refusal gets a broken pipe instead of the answer, so send no body)."""
    conn = http.client.HTTPConnection("127.0.0.1", platform.port, timeout=30)
    try:
        conn.putrequest("POST", "/api/add_user")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(2 * 1024 * 1024))
        conn.endheaders()
        response = conn.getresponse()
        status, content_type, raw = (response.status, response.getheader("Content-Type", ""),
                                     response.read())
    finally:
        conn.close()
    assert status == 413
    assert content_type.startswith("application/json")
    assert _json(raw)["error"]


def test_a_body_just_under_the_limit_is_not_refused_for_size(platform):
    payload = json.dumps({"username": "x" * (1024 * 1024 - 100)}).encode()
    assert len(payload) < 1024 * 1024
    status, body = platform.request("POST", "/api/add_user", raw=payload)
    assert status == 400, body  # judged on content (invalid), not refused for size


def _json(raw: bytes):
    return json.loads(raw)


# --- keep last: it stops and restarts the users service ---------------------------------

def test_users_service_outage_is_a_prompt_503_and_recovers(platform):
    platform.new_user("outage-user")  # the user exists before the outage
    platform.stop_service("users")
    try:
        started = time.monotonic()
        status, body = platform.request("POST", "/api/login", {
            "username": "outage-user", "password": "user-password-1"}, timeout=30)
        elapsed = time.monotonic() - started
        assert status == 503, body
        assert isinstance(body, dict) and body.get("error"), body
        print(f"login with users down answered {status} in {elapsed:.2f}s: {body}")
        assert elapsed < RPC_TIMEOUT + MARGIN, f"login took {elapsed:.1f}s with users down"

        status, body = platform.request("GET", "/api/server/health_check", timeout=30)
        assert status == 503, body
        assert body["status"] != "healthy"
        assert body["services"]["users"] != "ok"
        assert "users" in body["error"]
        for other in ("containers", "traffic", "billing", "alerts"):
            assert body["services"][other] == "ok", body
    finally:
        platform.start_service("users")
        platform.wait_healthy()

    token = platform.login("outage-user", "user-password-1")
    assert token


def test_a_request_answered_503_is_not_carried_out_later(platform):
    platform.stop_service("users")
    try:
        status, body = platform.request("POST", "/api/add_user", {
            "username": "too-early", "password": "user-password-1",
            "email": "too-early@example.com"}, timeout=30)
        assert status == 503, body
    finally:
        platform.start_service("users")
        platform.wait_healthy()
    time.sleep(3)  # let the restarted service drain whatever was queued for it
    # the client was told the registration did not happen, so retrying it must work
    status, body = platform.request("POST", "/api/add_user", {
        "username": "too-early", "password": "user-password-1",
        "email": "too-early@example.com"})
    assert status == 200, body
    status, body = platform.request("POST", "/api/login", {
        "username": "too-early", "password": "user-password-1"})
    assert status == 200, body
