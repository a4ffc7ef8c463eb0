"""The web console's side of the gateway: the saved OpenAPI document the console's client is
generated from is the one the gateway serves, and ``gateway.console`` serves a build at ``/``
(the app for client-side routes, hashed assets cached for good, ``index.html`` never) without
changing anything under ``/api``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from berth.settings import get_settings
from gateway import openapi_dump
from gateway.app import create_app
from gateway.console import IMMUTABLE

ROOT = Path(__file__).resolve().parents[2]
SAVED = ROOT / "web" / "openapi.json"


def test_the_saved_openapi_document_is_the_one_the_gateway_serves():
    saved = json.loads(SAVED.read_text(encoding="utf-8"))
    served = openapi_dump.document()
    assert saved == served, (
        "web/openapi.json is out of date: run `make web-api` (it saves the document and "
        "regenerates the console's API client) and commit both")


def test_the_generated_client_names_every_operation():
    """orval's output is committed with the document: every operationId has its function."""
    generated = (ROOT / "web/src/api/generated/berth.ts").read_text(encoding="utf-8")
    doc = json.loads(SAVED.read_text(encoding="utf-8"))
    missing = []
    for item in doc["paths"].values():
        for operation in item.values():
            head, *rest = operation["operationId"].split("_")
            name = head + "".join(part[:1].upper() + part[1:] for part in rest)
            if f"export const {name} = " not in generated:
                missing.append(name)
    assert not missing, f"regenerate with `make web-api`: {missing}"


@pytest.fixture()
def build(tmp_path):
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>Berth</title><div id=root></div>")
    (dist / "assets" / "index-AbC123.js").write_text("console.log('berth')")
    (dist / "robots.txt").write_text("User-agent: *\n")
    return dist


def client_for(web_dir):
    settings = get_settings().model_copy(update={"web_dir": web_dir})
    return create_app(settings).test_client()


@pytest.mark.parametrize("path", ["/", "/containers", "/verify/some-token", "/operator/x/y",
                                  "/apis", "/login?next=/", "/index.html"])
def test_client_side_routes_get_the_app_never_cached(build, path):
    response = client_for(build).get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert b"<div id=root>" in response.data
    assert response.headers["Cache-Control"] == "no-cache"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_hashed_assets_are_cached_for_a_year(build):
    response = client_for(build).get("/assets/index-AbC123.js")
    assert response.status_code == 200 and response.data == b"console.log('berth')"
    assert response.mimetype in ("text/javascript", "application/javascript")
    assert response.headers["Cache-Control"] == IMMUTABLE == \
        "public, max-age=31536000, immutable"


def test_a_missing_asset_is_a_404_not_the_app(build):
    client = client_for(build)
    for path in ("/assets/index-Old999.js", "/assets/../index.html", "/favicon.ico"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"<div id=root>" not in response.data


def test_other_files_of_the_build_are_served_uncached(build):
    response = client_for(build).get("/robots.txt")
    assert response.status_code == 200 and response.data == b"User-agent: *\n"
    assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("web_dir", ["build", None])
def test_the_api_is_unchanged(build, tmp_path, web_dir):
    client = client_for(build if web_dir else tmp_path / "no-build")
    for method, path, status in (("GET", "/api/nope", 404), ("POST", "/api/nope", 404),
                                 ("GET", "/api", 404), ("DELETE", "/api/add_user", 405),
                                 ("GET", "/api/openapi.json", 200)):
        response = client.open(path, method=method)
        assert response.status_code == status, (method, path)
        assert response.mimetype == "application/json", (method, path)
    assert client.get("/metrics").status_code == 200


def test_without_a_build_the_root_says_how_to_build_it(tmp_path):
    client = client_for(tmp_path / "no-build")
    for path in ("/", "/containers"):
        response = client.get(path)
        assert response.status_code == 200 and response.mimetype == "text/html"
        assert b"The web console is not built" in response.data
        assert b"make web" in response.data
