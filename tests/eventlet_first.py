"""Loaded by pytest before any installed plugin (``-p tests.eventlet_first`` in pyproject's
addopts): eventlet must patch the standard library before anything imports ssl or socket.
Plugins such as schemathesis's import requests, hence ssl, at start-up; ssl imported before
the patch makes every later TLS connection recurse to death inside green ssl."""
import warnings

warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import psycogreen.eventlet  # noqa: E402

psycogreen.eventlet.patch_psycopg()
