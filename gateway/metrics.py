"""Gateway request metrics (by route template, never by raw path), gunicorn multi-process safe."""
from __future__ import annotations

import os
import time

from flask import Flask, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram,
                               generate_latest, multiprocess)

REQUESTS = Counter("berth_http_requests_total", "HTTP requests answered by the gateway",
                   ["method", "route", "status"])
LATENCY = Histogram("berth_http_request_duration_seconds", "Gateway request latency",
                    ["method", "route"],
                    buckets=(.0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))


def install(app: Flask) -> None:
    @app.before_request
    def _start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response):
        started = g.pop("started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule else "unmatched"
            REQUESTS.labels(request.method, route, str(response.status_code)).inc()
            LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        return response


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
