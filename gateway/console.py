"""The web console (``web/``, a single-page app) served by the gateway as static files, so
production runs no Node process.

- ``/assets/...``: the build's content-hashed files, cached for a year (``immutable``);
- any other path that is not ``/api/...`` (``/``, ``/containers``, ``/verify/<token>``...):
  a file of the build if there is one by that name, else ``index.html``, the app, which
  routes on the client; ``index.html`` is never cached, so a new build is seen at once;
- without a build (``make web`` not run), a small page saying how to build it.

``/api/...`` never reaches these rules (the converter refuses paths under ``api/``), so an
unknown API path stays a JSON 404 and a wrong method on it a JSON 405/404 as before.
"""
from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, Response, abort, send_from_directory
from werkzeug.routing import PathConverter

from gateway import pages

SOURCE_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"
IMMUTABLE = "public, max-age=31536000, immutable"
# The app loads everything from its own origin; Mantine sets styles inline.
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
          "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
          "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


class ConsolePathConverter(PathConverter):
    """A path (slashes allowed) that does not start with ``api/`` or equal ``api``."""
    regex = r"(?!api(?:/|$))[^/].*?"


def install(app: Flask, web_dir: Path | None) -> None:
    dist = Path(web_dir) if web_dir else SOURCE_DIST
    app.url_map.converters["console"] = ConsolePathConverter

    def index() -> Response:
        if not (dist / "index.html").is_file():
            return not_built(dist)
        response = send_from_directory(dist, "index.html", max_age=0)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = POLICY
        return response

    def console(path: str = "") -> Response:
        if path.startswith("assets/"):
            # a hashed file or nothing: a missing one is a 404, never the app's page
            response = send_from_directory(dist / "assets", path[len("assets/"):],
                                           max_age=31536000)
            response.headers["Cache-Control"] = IMMUTABLE
            return response
        if path and "/" not in path and path != "index.html" and (dist / path).is_file():
            response = send_from_directory(dist, path, max_age=0)  # favicon and the like
            response.headers["Cache-Control"] = "no-cache"
            return response
        if path and path != "index.html" and os.path.splitext(path)[1] and "/" not in path:
            abort(404)  # a file name that is not in the build
        return index()

    app.add_url_rule("/", "console.index", console, methods=["GET"])
    app.add_url_rule("/<console:path>", "console.path", console, methods=["GET"])


def not_built(dist: Path) -> Response:
    response = pages.page(
        "The web console is not built",
        "Berth's API is running (see /api/docs), but the web console has not been built "
        f"into {dist}.",
        "Build it with `make web` in the source tree (Node.js 18 or newer with npm; on "
        "Debian: apt-get install nodejs npm), then reload this page. `make run` builds it "
        "when it is missing or out of date.",
        status=200, links=(("Berth API documentation", "/api/docs"),))
    response.headers["Cache-Control"] = "no-cache"
    return response
