"""Fixtures shared by service tests and end-to-end tests."""
from __future__ import annotations

import contextlib
import warnings

import pytest

from tests.support import DatabaseSet, SmtpServer, Vhost, poll, rmtree, running_platform


@pytest.fixture(scope="module")
def amqp_uri():
    """An isolated RabbitMQ vhost per test module (queues never leak between modules)."""
    with Vhost() as uri:
        yield uri


IDLE_TIMEOUT = 10.0  # seconds a test's containers get to finish the workers holding a message


@pytest.fixture
def container_factory():
    """nameko's fixture; the containers it made are its ``containers`` (finish_messages)."""
    from nameko.containers import get_container_cls

    def make(service_cls, config):
        container = get_container_cls(config)(service_cls, config)
        make.containers.append(container)
        return container

    make.containers = []
    yield make
    for container in make.containers:
        with contextlib.suppress(Exception):
            container.kill()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    """Before any fixture of a test is torn down, its service containers finish the workers
    they run for a message: each acks it, as a deployed service does on SIGTERM.

    Without it, a message still in a worker when nameko's teardown killed the container went
    back to the module's queue and reached the next test's service, whose emptied tables no
    longer knew it was handled: one event audited twice (CI, stop 23). Waiting here, not in
    a fixture, lets the workers finish while the test's settings, SMTP server and peers
    are still there."""
    factory = getattr(item, "funcargs", {}).get("container_factory")
    if factory is not None:
        finish_messages(factory.containers)
    yield


def finish_messages(containers: list) -> None:
    import eventlet
    eventlet.sleep(0)  # deliveries already read start their greenthreads
    try:
        poll(lambda: any(holds_a_message(c) for c in containers), until=lambda busy: not busy,
             timeout=IDLE_TIMEOUT, interval=0.01, what="the test's workers to ack their messages",
             error=TimeoutError)
    except TimeoutError as exc:
        warnings.warn(f"{exc}: the kill requeues them to the next test of this module")


def holds_a_message(container) -> bool:
    """Whether ``container`` runs a worker for a message it has not acked yet (an event, an
    RPC request; not a timer's tick, which a kill rolls back and loses nothing), or has a
    delivery waiting for a worker (nameko's ``handle_message`` greenthread)."""
    from nameko.messaging import Consumer
    from nameko.rpc import Rpc
    return (any(isinstance(ctx.entrypoint, (Consumer, Rpc)) for ctx in container._worker_threads)
            or any(".handle_message[" in str(name)
                   for name in container._managed_threads.values()))


@pytest.fixture(scope="session")
def rabbit_config():  # nameko's own needs the management plugin; never use it here
    raise RuntimeError("use the amqp_uri / service_config fixtures")


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def databases(request, tmp_path_factory):
    """Service databases on each backend (service tests run once per backend)."""
    dbs = DatabaseSet(request.param, tmp_path_factory.mktemp(f"db-{request.param}"))
    yield dbs
    dbs.drop()


_migrated: set[str] = set()  # database URLs migrated to head in this test session


@pytest.fixture
def make_service(container_factory, amqp_uri, databases):
    """Start a service in-process on the real broker with an empty schema on this backend.

    The schema comes from the service's migrations, as at every start (``berth.manage
    init``): upgraded once per database per session, emptied of rows before each test.
    ``make_service(UsersService, **config)``; returns the started container.
    """
    from berth import migrations
    from berth.db import make_engine
    from berth.manage import model_bases

    def make(service_cls, **config):
        name = service_cls.name
        url = databases.url(name)
        base = model_bases().get(name)
        if base is not None:
            if url not in _migrated:
                migrations.upgrade(name, url)
                _migrated.add(url)
            engine = make_engine(url)
            with engine.begin() as conn:
                for table in reversed(base.metadata.sorted_tables):
                    conn.execute(table.delete())
            engine.dispose()
        container = container_factory(service_cls, service_config(amqp_uri, url, **config))
        container.start()
        return container
    return make


def service_config(amqp_uri: str, database_url: str, **extra) -> dict:
    return {"AMQP_URI": amqp_uri, "serializer": "json", "WEB_SERVER_ADDRESS": "127.0.0.1:0",
            "DATABASE_URL": database_url, "max_workers": 10, **extra}


@pytest.fixture
def rpc(amqp_uri):
    """A cluster RPC proxy to whatever services the test started."""
    from nameko.standalone.rpc import ClusterRpcProxy

    import berth.errors  # noqa: F401 - domain errors arrive as themselves
    with ClusterRpcProxy({"AMQP_URI": amqp_uri, "serializer": "json"}, timeout=15) as proxy:
        yield proxy


@pytest.fixture
def smtp_server(tmp_path):
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def module_smtp(tmp_path_factory):
    server = SmtpServer(tmp_path_factory.mktemp("smtp")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def platform(tmp_path_factory, amqp_uri, module_smtp):
    """The whole platform as real processes, on SQLite (make run's default), with SMTP."""
    folder = tmp_path_factory.mktemp("platform")
    with running_platform(folder, amqp_uri, smtp_port=module_smtp.port) as stack:
        yield stack
    rmtree(folder)


# --- Docker (tests/docker_support.py): real engines, fail rather than skip without one --------

@pytest.fixture(scope="session")
def docker_url():
    """The default engine's URL, checked reachable, with the test images built on it."""
    from tests.docker_support import build_test_images, connect, default_engine_url, require_engine

    url = default_engine_url()
    require_engine(url)
    client = connect(url)
    build_test_images(client)
    client.close()
    yield url


@pytest.fixture(scope="session")
def docker_client(docker_url):
    from tests.docker_support import connect

    client = connect(docker_url)
    yield client
    client.close()


@pytest.fixture
def clean_docker(docker_client):
    """The default engine's client, with no Berth-labelled container before or after the test."""
    from tests.docker_support import remove_berth_containers

    remove_berth_containers(docker_client)
    yield docker_client
    remove_berth_containers(docker_client)


@pytest.fixture(scope="module")
def second_engine():
    """A second real engine in its own network namespace (its own folder /tmp/be-<hex>, short
    for the unix sockets), with the test images; closed and wiped after the module."""
    from tests.docker_support import SecondEngine

    with SecondEngine() as engine:
        yield engine
