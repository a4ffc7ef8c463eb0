"""Root of the test suite. Eventlet is monkey-patched before anything else imports, by
``tests/eventlet_first.py`` (loaded ahead of every plugin through pyproject's addopts).

Tests get a secret and ``BERTH_ENV=test`` (so the insecure-secret guard is live), an isolated
RabbitMQ vhost per run, and databases on SQLite and PostgreSQL (see tests/support.py).
"""
import os
import secrets

import tests.eventlet_first  # noqa: F401 - a no-op when pytest loaded it first, as it should

os.environ["BERTH_ENV"] = "test"
os.environ.setdefault("BERTH_JWT_SECRET", secrets.token_urlsafe(48))
os.environ.setdefault("BERTH_SECRETS_KEY", secrets.token_urlsafe(48))
os.environ.pop("BERTH_DATABASE_URL", None)
os.environ.pop("BERTH_SMTP_HOST", None)

pytest_plugins = ["tests.fixtures"]


def pytest_terminal_summary(terminalreporter):
    """Figures tests chose to publish (soak, scale-out, ...): shown even when they pass."""
    from tests.support import REPORT
    if REPORT:
        terminalreporter.section("figures")
        for line in REPORT:
            terminalreporter.write_line(line)


# The fast tier (`make test-unit`): every test that needs no broker, Docker engine, running
# platform or service container, decided from the fixtures it uses, so no list to keep.
SLOW_FIXTURES = {"amqp_uri", "rabbit_config", "make_service", "container_factory", "rpc",
                 "platform", "docker_url", "docker_client", "second_engine", "databases"}


def pytest_collection_modifyitems(config, items):
    import pytest
    for item in items:
        if not SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())) and not any(
                item.get_closest_marker(name) for name in ("e2e", "chaos", "deploy")):
            item.add_marker(pytest.mark.unit)
