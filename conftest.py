"""Root of the test suite. Eventlet is monkey-patched before anything else imports, by
``tests/eventlet_first.py`` (loaded ahead of every plugin through pyproject's addopts).

Berth's changes to nameko are installed here, as ``berth.run`` installs them in every service
process. Tests get a secret and ``BERTH_ENV=test`` (so the insecure-secret guard is live), an
isolated RabbitMQ vhost per run, and databases on SQLite and PostgreSQL (see tests/support.py).
"""
import os
import secrets

import tests.eventlet_first  # noqa: F401 - a no-op when pytest loaded it first, as it should
from berth import nameko_patches  # noqa: E402

nameko_patches.install()  # as berth.run does: services started in-process behave as deployed

os.environ["BERTH_ENV"] = "test"
os.environ.setdefault("BERTH_JWT_SECRET", secrets.token_urlsafe(48))
os.environ.setdefault("BERTH_SECRETS_KEY", secrets.token_urlsafe(48))
os.environ["BERTH_CONTAINER_PULL_REGISTRIES"] = ""  # no pulls but where a test says (127.0.0.1)
os.environ.pop("BERTH_DATABASE_URL", None)
os.environ.pop("BERTH_SMTP_HOST", None)
# an app made in the test process counts its rate limits in memory (the unit tier needs
# nothing running), far above what tests send; a Platform's gateway counts in Redis
# (tests.support); tests of the limits set their own
from tests.support import generous_rate_limits  # noqa: E402
from tests import shards  # noqa: E402

os.environ.update(generous_rate_limits(), BERTH_RATE_LIMIT_STORAGE="memory://")

pytest_plugins = ["tests.fixtures"]


def pytest_terminal_summary(terminalreporter):
    """Figures tests chose to publish (soak, scale-out, ...): shown even when they pass."""
    from tests.support import REPORT
    if REPORT:
        terminalreporter.section("figures")
        for line in REPORT:
            terminalreporter.write_line(line)


# The fast tier (`make test-unit`): every test that needs nothing running (no broker, database
# server, Docker engine, platform or service container), decided from the fixtures it uses and
# the backend it is parametrised on, so no list to keep. The rest is `make test-service`
# (broker, PostgreSQL, engine) and `make test-e2e` (markers e2e, chaos, deploy).
SLOW_FIXTURES = {"amqp_uri", "rabbit_config", "make_service", "container_factory", "rpc",
                 "platform", "docker_url", "docker_client", "second_engine", "databases"}
END_TO_END = ("e2e", "chaos", "deploy")
SERVER_BACKENDS = {"postgresql"}  # a test parametrised on one of these needs its server


def needs_nothing_running(item) -> bool:
    if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return False
    if any(item.get_closest_marker(name) for name in END_TO_END):
        return False
    params = getattr(getattr(item, "callspec", None), "params", {})
    return not any(isinstance(value, str) and value in SERVER_BACKENDS
                   for value in params.values())


def pytest_collection_modifyitems(config, items):
    import pytest
    for item in items:
        if needs_nothing_running(item):
            item.add_marker(pytest.mark.unit)
    # `make test` runs the suite as two shards at once (tests/shards.py): BERTH_TEST_SHARD
    # keeps one shard's modules and deselects the rest
    shards.select(config, items)
