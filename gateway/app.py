"""The Flask application: error model, converters, RPC pools, blueprints."""
from __future__ import annotations

import logging
import os

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from berth.errors import BerthError
from berth.settings import get_settings
from gateway import metrics
from gateway.rpc import RpcPool

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
HTTP_MESSAGES = {400: "Bad request", 404: "Not found", 405: "Method not allowed",
                 413: "Request body too large (limit 1 MiB)",
                 415: "Unsupported media type"}


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` that stops at the database's integer range (larger ids → 404)."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


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

    register_error_handlers(app)
    metrics.install(app)

    from gateway.blueprints import billing, system, users
    for blueprint in (system.bp, users.bp, billing.bp):
        app.register_blueprint(blueprint, url_prefix="/api")
    app.add_url_rule("/metrics", "metrics", system.prometheus_metrics)
    return app


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
