"""Gunicorn settings for the gateway (threads, not eventlet: the gateway is never patched)."""
import json
import os
import shutil

from gunicorn import util

bind = os.environ.get("BERTH_GATEWAY_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("BERTH_GATEWAY_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("BERTH_GATEWAY_THREADS", "16"))
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
