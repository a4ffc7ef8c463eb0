"""Gateway request metrics (by route template, never by raw path), gunicorn multi-process safe."""
from __future__ import annotations

import os
import time

from flask import Flask, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram,
                               generate_latest, multiprocess)

# route: the matched rule's template (``/api/users/<int:user_id>``); every request that
# matched no route (404, 405) is ``unmatched``, so labels stay bounded whatever clients send
UNMATCHED = "unmatched"
REQUESTS = Counter("berth_http_requests_total", "HTTP requests answered by the gateway",
                   ["method", "route", "status"])
LATENCY = Histogram("berth_http_request_duration_seconds",
                    "Gateway request latency, from the request's start to its response",
                    ["method", "route", "status"],
                    buckets=(.0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))

RATE_LIMITED = Counter("berth_rate_limited_total",
                       "Requests answered 429 by a gateway rate limit", ["limit"])
RATE_LIMIT_STORE_ERRORS = Counter(
    "berth_rate_limit_store_errors_total",
    "Rate-limit store calls that failed, so that the request passed unlimited")

_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


def install(app: Flask) -> None:
    @app.before_request
    def _start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response):
        started = g.pop("started", None)
        if started is not None:
            rule = request.url_rule
            route = rule.rule if rule is not None else UNMATCHED
            method = request.method if request.method in _METHODS else "other"
            requests, latency = _children(method, route, str(response.status_code))
            requests.inc()
            latency.observe(time.perf_counter() - started)
        return response


_CHILDREN: dict[tuple, tuple] = {}  # bounded as the labels are


def _children(*labels):
    """The request counter's and latency histogram's children for ``labels``, looked up once
    (``labels()`` validates and locks on every call: ~5 µs a request for the pair)."""
    children = _CHILDREN.get(labels)
    if children is None:
        children = _CHILDREN[labels] = (REQUESTS.labels(*labels), LATENCY.labels(*labels))
    return children


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
