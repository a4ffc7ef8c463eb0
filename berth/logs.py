"""Logging set-up shared by the services and the gateway."""
import logging
import os
import sys


def configure_logging(process: str) -> None:
    level = os.environ.get("BERTH_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format=f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s")
    for noisy in ("kombu", "amqp"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
    # nameko logs expected domain errors (a 404, a 409) as warnings with a traceback; real
    # failures are logged at ERROR and still show
    logging.getLogger("nameko.containers").setLevel(
        max(logging.getLevelName(level), logging.ERROR))
