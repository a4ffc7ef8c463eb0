"""Logging set-up shared by the services and the gateway.

``BERTH_LOG_FORMAT=json`` writes one JSON object per line (time, level, process, logger,
request_id, message, exception); the default is plain text. Either way every line carries the
request id of the work that caused it (``berth.context``).
"""
import json
import logging
import os
import sys

from berth.context import current


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str):
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") +
                 f".{int(record.msecs):03d}Z",
                 "level": record.levelname, "process": self.process, "logger": record.name,
                 "request_id": getattr(record, "request_id", None) or current(),
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(process: str) -> None:
    level = os.environ.get("BERTH_LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if os.environ.get("BERTH_LOG_FORMAT", "text").lower() == "json":
        formatter = JsonFormatter(process)
        formatter.converter = __import__("time").gmtime
        handler.setFormatter(formatter)
    else:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s {process} %(levelname)s [%(request_id)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kombu", "amqp"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
    # nameko logs expected domain errors (a 404, a 409) as warnings with a traceback; real
    # failures are logged at ERROR and still show
    logging.getLogger("nameko.containers").setLevel(
        max(logging.getLevelName(level), logging.ERROR))
