"""The OpenAPI 3.1 document, built from the route declarations and their pydantic schemas."""
from __future__ import annotations

import os
import re

import flask_swagger_ui

from flask import Flask
from pydantic.json_schema import models_json_schema

from berth.schemas import ErrorReply
from berth.api_keys import NO_KEYS
from gateway.api import PUBLIC

STATUS_TEXT = {400: "Invalid input", 401: "Missing, invalid or expired token",
               403: "Not allowed for this caller", 404: "Unknown id or name",
               409: "Conflict with existing data", 413: "Body too large",
               414: "Request line (path and query) too long",
               429: "Too many requests or attempts (see Retry-After)", 503: "A backing service is unavailable"}
_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
REF = "#/components/schemas/{model}"


def _path_and_params(rule: str) -> tuple[str, list[dict]]:
    params = []
    for converter, name in _PARAM.findall(rule):
        schema = ({"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
                  if converter == "int" else {"type": "string", "minLength": 1,
                                               "maxLength": 64, "pattern": "^[^/]+$"})
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _PARAM.sub(r"{\2}", rule), params


def _query_params(model) -> list[dict]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [{"name": name, "in": "query", "required": name in required, "schema": prop}
            for name, prop in schema.get("properties", {}).items()]


def _closed_pattern_maps(node) -> None:
    """pydantic writes ``dict[Annotated[str, pattern], V]`` as ``patternProperties`` alone,
    which lets any other key through; the model does not: close such maps."""
    if isinstance(node, dict):
        if "patternProperties" in node and "properties" not in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            _closed_pattern_maps(value)
    elif isinstance(node, list):
        for value in node:
            _closed_pattern_maps(value)


def build(app: Flask) -> dict:
    routes = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        doc = getattr(app.view_functions.get(rule.endpoint), "api_doc", None)
        if doc is not None:
            routes.append((rule, doc))

    models = {ErrorReply}
    for _, doc in routes:
        models.update(m for m in (doc.body, doc.reply) if m is not None)
    keyed = [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)]
    refs, defs = models_json_schema(keyed, ref_template=REF)
    schemas = defs.get("$defs", {})
    _closed_pattern_maps(schemas)

    def ref(model):
        return refs[(model, "validation")]

    paths: dict = {}
    for rule, doc in routes:
        path, params = _path_and_params(rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            responses = {"200": {"description": "OK", "content": {
                "application/json": {"schema": ref(doc.reply)}}} if doc.reply else {
                "description": "OK"}}
            codes = set(doc.errors)
            if params:  # a path segment that names nothing (or is out of range) is a 404
                codes.add(404)
            if params or doc.query is not None:  # gunicorn's limit_request_line
                codes.add(414)
            if doc.body is not None or doc.query is not None:
                codes.add(400)
            if doc.body is not None:
                codes.add(413)
            if doc.access:
                codes.update({401, 403})
            codes.update({429, 503})  # every route: the per-address limit (gateway.limits)
            for code in sorted(codes):
                responses[str(code)] = {"description": STATUS_TEXT.get(code, "Error"),
                                        "content": {"application/json": {
                                            "schema": ref(ErrorReply)}}}
            access = ("public" if doc.access == PUBLIC else
                      "roles: " + ", ".join(doc.access))
            if doc.owner is not None:  # enforced by the declaration (gateway.api)
                access += " (a non-admin only for their own records)"
            if doc.scope == NO_KEYS:
                access += "; API keys: not accepted (a signed-in session only)"
            elif doc.scope is not None:
                access += f"; API keys: need the {doc.scope} scope"
            operation = {
                "operationId": rule.endpoint.replace(".", "_"),
                "summary": doc.summary,
                "description": f"Access: {access}.",
                "tags": [rule.endpoint.split(".")[0]],
                "parameters": params + (_query_params(doc.query) if doc.query else []),
                "responses": responses,
                "security": [{"bearerAuth": []}] if doc.access else [],
            }
            if doc.body is not None:
                operation["requestBody"] = {"required": True, "content": {
                    "application/json": {"schema": ref(doc.body)}}}
            paths.setdefault(path, {})[method.lower()] = operation

    paths["/api/stream"] = {"get": STREAM_OPERATION}  # a raw route (gateway.blueprints.live)

    return {
        "openapi": "3.1.0",
        "info": {"title": "Berth API", "version": "1.0.0",
                 "description": "Container rental back end. Errors are always "
                                "`{\"error\": \"<sentence>\"}`. Sign in with "
                                "`POST /api/login`, then use **Authorize** with the "
                                "token it returns."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "a token from POST /api/login, or an API key "
                                          "(berth_<id>_<secret>) from POST /api/keys"},
            "streamTicket": {"type": "apiKey", "in": "query", "name": "ticket",
                             "description": "from POST /api/stream/ticket; opens "
                                            "GET /api/stream only"}}},
    }


STREAM_OPERATION = {
    "operationId": "live_stream",
    "summary": "The live event stream (Server-Sent Events) of a stream ticket's holder",
    "description": (
        "Access: a ticket from POST /api/stream/ticket (EventSource cannot send a bearer "
        "token). Events: `hello` (from then on every event is sent; it waits up to 10 s for "
        "the worker's event consumer), the domain events the caller may see (an admin: every "
        "container, server, rental and quota event and `alert_raised`/`alert_resolved`; "
        "anyone else: those with their `user_id`), `traffic` (realtime bytes/s per "
        "container after each traffic sweep), `resync` (events may have been missed: "
        "refetch) and `session_ended` (the stream then ends). A comment line every "
        "BERTH_STREAM_HEARTBEAT_SECONDS; a worker holds at most BERTH_STREAM_LIMIT streams "
        "(then 503 with Retry-After)."),
    "tags": ["live"],
    "parameters": [],  # the ticket: see the streamTicket security scheme
    "responses": {
        "200": {"description": "An event stream", "content": {
            # OpenAPI 3.1: ``schema`` describes each event of the stream
            "text/event-stream": {"schema": {
                "type": "object", "required": ["data"],
                "properties": {
                    "event": {"type": "string", "description": "hello, a domain event's "
                              "type, traffic, resync or session_ended"},
                    "data": {"type": "string", "description": "a JSON object"},
                    "id": {"type": "string"},
                    "retry": {"type": "integer", "description": "milliseconds before the "
                              "browser reconnects"}}}}}},
        **{str(code): {"description": STATUS_TEXT[code], "content": {"application/json": {
            "schema": {"$ref": REF.format(model="ErrorReply")}}}} for code in (401, 429, 503)},
    },
    "security": [{"streamTicket": []}],
}

# Swagger UI 5 (the first to read OpenAPI 3.1), as the flask-swagger-ui package ships it; the
# gateway serves these files itself under /api/docs/, so the page fetches nothing from outside.
SWAGGER_UI_DIR = os.path.join(os.path.dirname(flask_swagger_ui.__file__), "dist")

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Berth API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" type="image/png" href="/api/docs/favicon-32x32.png">
<link rel="stylesheet" href="/api/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script>
</body></html>
"""

# Swagger UI's settings: "Authorize" keeps the bearer token across reloads, "Try it out" is on.
DOCS_INIT = """window.ui = SwaggerUIBundle({
  url: "/api/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  persistAuthorization: true, tryItOutEnabled: true,
  displayRequestDuration: true, filter: true
});
"""
