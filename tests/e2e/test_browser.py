"""What a person opens in a browser, opened in a real one: headless Chromium (Debian's
``chromium``) driven by Playwright against the running platform (the journeys are in
``browser_journeys.py``, run in a process of their own).

- ``/api/docs`` renders every operation of the OpenAPI 3.1 document, loads nothing from
  outside Berth, logs no error, and "Authorize" + "Try it out" work against the platform;
- the verification link and the ACL file link answer a person with a page (or a download)
  that says what happened, also when the link is spent or invalid.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from tests.e2e.helpers import links_in, to_address

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def journey(platform, name: str, **arguments) -> dict:
    """Run one browser journey; what the browser saw (no problem, nothing from outside)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.e2e.browser_journeys", name], cwd=ROOT,
        input=json.dumps({"origin": platform.url, **arguments}), capture_output=True,
        text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["problems"] == [], seen["problems"]
    assert seen["foreign"] == [], seen["foreign"]
    assert len(seen["aborted"]) <= 5, seen["aborted"]  # queries the page gave up: a few
    return seen


def test_the_docs_page_renders_every_operation_and_try_it_out_works(platform):
    status, doc = platform.request("GET", "/api/openapi.json")
    assert status == 200 and doc["openapi"] == "3.1.0"
    expected = {(method.upper(), path) for path, item in doc["paths"].items()
                for method in item}

    seen = journey(platform, "docs", base_url=platform.url, token=platform.admin_token())

    assert seen["status"] == 200 and not seen["unable_to_render"]
    shown = {tuple(row) for row in seen["shown"]}
    assert shown == expected, (sorted(expected - shown), sorted(shown - expected))
    # Authorize with the bearer token, then "Try it out" on GET /api/users
    assert seen["try_status"].startswith("200"), seen["try_status"]
    assert platform.admin["username"] in seen["try_body"]


def test_the_verification_link_answers_a_person_with_a_page(platform, module_smtp):
    status, reply = platform.request("POST", "/api/add_user", {
        "username": "browser-verify", "password": "user-password-1",
        "email": "browser-verify@example.com"})
    assert status == 200, reply
    [mail] = module_smtp.wait_for(lambda m: to_address(m) == "browser-verify@example.com")
    [link] = [u for u in links_in(mail) if "/verify_email/" in u]

    first, again, made_up = journey(platform, "links", urls=[
        link, link, platform.url + "/api/verify_email/not-a-real-link"])["visits"]

    assert first["status"] == 200 and first["content_type"].startswith("text/html")
    assert first["h1"] == "E-mail address verified"
    assert "browser-verify@example.com is now verified" in first["text"]
    for spent in (again, made_up):
        assert spent["status"] == 400 and spent["content_type"].startswith("text/html")
        assert spent["h1"] == "This link does not work"
        assert "send_verification_email" in spent["text"]
    # a program still gets the JSON answer
    status, body = platform.request("GET", urlsplit(link).path)
    assert status == 400 and body == {"error": "Invalid or expired verification link"}


def test_the_acl_file_link_downloads_the_file_or_explains_a_dead_link(platform):
    user_id, user_token = platform.new_user("browser-acl")
    status, reply = platform.request("POST", "/api/acl/generate", {
        "user_id": user_id, "permissions": ["containers.read"]}, token=platform.admin_token())
    assert status == 200, reply
    status, reply = platform.request("GET", "/api/user/download_acl", token=user_token)
    assert status == 200, reply

    saved = journey(platform, "download", url=reply["acl_file"])
    assert saved["filename"] == "acl-browser-acl.json"
    assert "containers.read" in json.dumps(json.loads(saved["content"]))

    [dead] = journey(platform, "links", urls=[
        platform.url + "/api/acl/file/not-a-signed-link"])["visits"]
    assert dead["status"] == 401 and dead["content_type"].startswith("text/html")
    assert dead["h1"] == "This download link does not work"
    # a program still gets the JSON error
    status, body = platform.request("GET", "/api/acl/file/not-a-signed-link")
    assert status == 401 and "error" in body
