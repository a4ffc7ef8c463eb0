"""The Flask application: error model, converters, RPC pools, blueprints."""
from __future__ import annotations

import logging
import os
import threading

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from berth import context
from berth.errors import BerthError
from berth.settings import get_settings
from gateway import audit, console, limits, metrics
from gateway.rpc import RpcPool
from gateway.sessions import ApiKeyChecker, TokenChecker

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
HTTP_MESSAGES = {400: "Bad request", 404: "Not found", 405: "Method not allowed",
                 413: "Request body too large (limit 1 MiB)",
                 415: "Unsupported media type"}


MAX_ID = 2**31 - 1  # the databases' integer range


def up_to(limit: int) -> str:
    """A regex matching the decimal numbers 0..``limit`` (leading zeros allowed)."""
    digits = str(limit)
    options = [rf"\d{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    for i, digit in enumerate(digits):
        if digit != "0":
            rest = len(digits) - i - 1
            below = f"[0-{int(digit) - 1}]" if digit != "1" else "0"
            options.append(digits[:i] + below + (rf"\d{{{rest}}}" if rest else ""))
    options.append(digits)
    return "0*(?:" + "|".join(options) + ")"


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` that stops at the database's integer range: a larger id matches no rule
    (404). Bounded by the pattern, not by a check after matching: werkzeug matches methods
    before it converts, so a rejected conversion on a path that another method's rule shares
    would answer 405 instead."""
    regex = up_to(MAX_ID)


def create_app(settings=None) -> Flask:
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config.update(
        BERTH_SECRET=settings.secret,  # refuses an unsafe secret outside development
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        BERTH_VALIDATE_RESPONSES=os.environ.get("BERTH_VALIDATE_RESPONSES") == "1",
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    app.url_map.converters["int"] = BoundedIntConverter
    app.url_map.strict_slashes = False

    pool_size = int(os.environ.get("BERTH_GATEWAY_THREADS", "16"))
    config = settings.nameko_config()
    app.extensions["rpc"] = RpcPool(config, pool_size, settings.rpc_timeout)
    app.extensions["rpc_health"] = RpcPool(config, 5, settings.health_timeout)
    app.extensions["settings"] = settings
    app.extensions["tokens"] = TokenChecker(
        settings.secret,
        lambda user_id: app.extensions["rpc"].call("users", "token_state", user_id),
        settings.token_check_seconds)
    app.extensions["api_keys"] = ApiKeyChecker(
        lambda key_id, presented: app.extensions["rpc"].call("users", "api_key_state", key_id,
                                                              presented),
        settings.token_check_seconds)

    register_error_handlers(app)
    install_request_id(app)
    metrics.install(app)
    audit.install(app)
    limits.install(app, settings)  # after audit: a counted failure is marked for it

    from gateway.blueprints import alerts, billing, containers, live, system, traffic, users
    app.extensions["live_lock"] = threading.Lock()  # the live hub starts on first use
    for blueprint in (system.bp, users.bp, billing.bp, containers.bp, traffic.bp, alerts.bp,
                      live.bp):
        app.register_blueprint(blueprint, url_prefix="/api")
    app.add_url_rule("/metrics", "metrics", system.prometheus_metrics)
    console.install(app, settings.web_dir)  # the web console at / (gateway/console.py)
    return app


def install_request_id(app: Flask) -> None:
    """Every request gets an id (the caller's ``X-Request-ID`` if plain, else a new one): it
    is in every log line the request causes, here and in the services (it rides on RPC and
    on the events that follow), and it comes back in the response's ``X-Request-ID``."""
    @app.before_request
    def _bind_request_id():
        g.request_id = context.accept(request.headers.get(context.HEADER))
        context.bind(g.request_id)

    @app.after_request
    def _echo_request_id(response):
        if "request_id" in g:
            response.headers[context.HEADER] = g.request_id
        return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(BerthError)
    def _domain_error(exc: BerthError):
        response = jsonify(exc.to_json())
        response.status_code = exc.status
        if exc.status == 429 and exc.details:
            response.headers["Retry-After"] = exc.details[0]["message"]
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        response = jsonify({"error": HTTP_MESSAGES.get(exc.code, exc.name)})
        response.status_code = exc.code or 500
        if exc.code == 405:
            response.headers["Allow"] = exc.get_response().headers.get("Allow", "")
        return response

    @app.errorhandler(Exception)
    def _bug(exc: Exception):
        log.exception("unhandled error")
        response = jsonify({"error": "Internal server error"})
        response.status_code = 500
        return response
