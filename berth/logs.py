"""Logging set-up shared by the services and the gateway."""
import logging
import os
import sys


def configure_logging(process: str) -> None:
    level = os.environ.get("BERTH_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format=f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s")
    for noisy in ("kombu", "amqp", "nameko.containers"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
