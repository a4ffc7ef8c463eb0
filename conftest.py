"""Root of the test suite. Eventlet is monkey-patched here, before anything else imports.

Tests get a secret and ``BERTH_ENV=test`` (so the insecure-secret guard is live), an isolated
RabbitMQ vhost per run, and databases on SQLite and PostgreSQL (see tests/support.py).
"""
import warnings

warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import os  # noqa: E402
import secrets  # noqa: E402

import psycogreen.eventlet  # noqa: E402

psycogreen.eventlet.patch_psycopg()

os.environ["BERTH_ENV"] = "test"
os.environ.setdefault("BERTH_JWT_SECRET", secrets.token_urlsafe(48))
os.environ.pop("BERTH_DATABASE_URL", None)
os.environ.pop("BERTH_SMTP_HOST", None)

pytest_plugins = ["tests.fixtures"]
