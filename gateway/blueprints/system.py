"""Platform routes: the route list, health, the OpenAPI document and its docs page, metrics."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from flask import Response, current_app, jsonify, send_from_directory

import berth
from berth.errors import BerthError
from berth.manage import check_broker
from berth.schemas import Reply
from gateway import metrics, openapi
from gateway.api import PUBLIC, ApiBlueprint

log = logging.getLogger(__name__)

bp = ApiBlueprint("system", __name__)


class RouteInfo(Reply):
    endpoint: str
    methods: str
    url: str


class Health(Reply):
    status: str
    broker: str
    services: dict[str, str]


# The original API document's example of GET /api/urls names routes by what they are about:
# "user.add_user", "user.login", "server.add_server", "traffic.realtime_traffic". Flask names
# them by blueprint ("users.add_user", "containers.add_server"); the listing says it the
# seed's way. Groups the example does not show keep their blueprint's name.
SEED_GROUPS = {"users": "user"}
SERVER_ROUTES = ("/api/add_server", "/api/server")  # /api/servers..., /api/server/status/...


def seed_endpoint(rule) -> str:
    group, _, name = rule.endpoint.partition(".")
    if group == "containers" and rule.rule.startswith(SERVER_ROUTES):
        return f"server.{name}"
    return f"{SEED_GROUPS.get(group, group)}.{name}"


@bp.api("/urls", ["GET"], summary="List every API route", reply=None, access=PUBLIC)
def list_urls():
    rules = sorted(current_app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))
    return jsonify([{"endpoint": seed_endpoint(r), "methods": ", ".join(sorted(r.methods)),
                     "url": r.rule} for r in rules if r.rule.startswith("/api")])


@bp.api("/server/health_check", ["GET"], summary="Healthy only if the broker and every "
        "service answer", reply=Health, access=PUBLIC)
def health_check():
    pool = current_app.extensions["rpc_health"]
    broker_problem = check_broker(current_app.extensions["settings"].amqp_uri, timeout=2)

    def probe(service):
        if broker_problem:
            return "unreachable: the message broker is down"
        try:
            pool.call(service, "health")
            return "ok"
        except BerthError as exc:
            return f"down: {exc.message}"
        except Exception as exc:  # noqa: BLE001 - a remote failure is "down", not a 500
            # the detail may name hosts and users: log it, do not publish it
            log.warning("health check of %s failed: %s", service, exc)
            return "down: internal error"

    with ThreadPoolExecutor(len(berth.SERVICES)) as workers:
        states = dict(zip(berth.SERVICES, workers.map(probe, berth.SERVICES)))
    down = [name for name, state in states.items() if state != "ok"]
    body = {"status": "healthy" if not (down or broker_problem) else "unhealthy",
            "broker": "unreachable" if broker_problem else "ok", "services": states}
    if body["status"] == "healthy":
        return body
    parts = (["the message broker"] if broker_problem else []) + down
    body["error"] = "Unhealthy: not answering: " + ", ".join(parts)
    response = jsonify(body)
    response.status_code = 503
    return response


@bp.route("/openapi.json", methods=["GET"])
def openapi_document():
    document = current_app.extensions.get("openapi")
    if document is None:
        document = current_app.extensions["openapi"] = openapi.build(current_app)
    return jsonify(document)


@bp.route("/docs", methods=["GET"])
def docs_page():
    return Response(openapi.DOCS_PAGE, mimetype="text/html")


@bp.route("/docs/init.js", methods=["GET"])
def docs_init():
    return Response(openapi.DOCS_INIT, mimetype="text/javascript")


@bp.route("/docs/<path:filename>", methods=["GET"])
def docs_asset(filename):
    """Swagger UI 5 (OpenAPI 3.1), the files flask-swagger-ui ships: nothing from outside."""
    return send_from_directory(openapi.SWAGGER_UI_DIR, filename, max_age=86400)


def prometheus_metrics():
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)
