"""Gunicorn settings for the gateway (threads, not eventlet: the gateway is never patched)."""
import json
import os
import shutil
import sys

from gunicorn import util

from berth.settings import InsecureConfiguration, get_settings

try:  # development listens on this machine only
    get_settings().require_loopback_in_development(None)
except InsecureConfiguration as exc:
    sys.exit(f"gateway: {exc}")

bind = get_settings().gateway_bind
workers = int(os.environ.get("BERTH_GATEWAY_WORKERS", "2"))
worker_class = "gthread"
# the API's threads, plus one per live stream a worker may hold (BERTH_STREAM_LIMIT, see
# gateway.live): a held stream never takes a thread an API request needs
threads = int(os.environ.get("BERTH_GATEWAY_THREADS", "16")) + get_settings().stream_limit
# the app is imported once, in the master, and the workers fork from it: its modules' pages
# are shared, not copied per worker (benchmarks.idle: the platform's PSS). Nothing connects
# at import: the RPC pools, Redis and the live hub all start on first use in a worker.
preload_app = True
timeout = 60
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("BERTH_GATEWAY_ACCESS_LOG") or None

# request metrics from every worker, merged at /metrics
_metrics_dir = os.path.abspath(os.path.join(os.environ.get("BERTH_VAR_DIR", "var"),
                                            "gateway-metrics"))
shutil.rmtree(_metrics_dir, ignore_errors=True)
os.makedirs(_metrics_dir, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def pre_fork(server, worker):
    """The app is loaded (preload_app): freeze what is alive now, so a worker's full garbage
    collections never walk the modules and the app (gen2 passes of 50-120 ms under load
    without this; see berth.run.freeze_what_was_imported), and their pages stay shared."""
    import gc
    gc.collect()
    gc.freeze()


def post_worker_init(worker):
    """On SIGTERM, end the worker's live streams first (gateway.live.stop_all): a held stream
    would keep the graceful shutdown waiting for its whole graceful_timeout."""
    import signal

    from gateway import live

    stop = signal.getsignal(signal.SIGTERM)

    def end_streams_then_stop(signum, frame):
        live.stop_all()
        if callable(stop):
            stop(signum, frame)
    signal.signal(signal.SIGTERM, end_streams_then_stop)


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)

# gunicorn's control socket sits at one fixed path per user; several gateways (tests, bench)
# on one machine would fight over it, and Berth does not use it
control_socket_disable = True


def _json_protocol_error(sock, status_int, reason, mesg):
    """What gunicorn answers by itself, before Flask sees the request (a request line over
    ``limit_request_line``: 414; a malformed request: 400), follows the error model too:
    ``{"error": ...}`` as JSON rather than gunicorn's HTML page."""
    body = json.dumps({"error": reason}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin1") + body)


util.write_error = _json_protocol_error  # the workers call util.write_error at error time
