"""docker-compose.yml really brought up, from images really built.

The Berth image is built from the Dockerfile; the four public images it stands on (python,
rabbitmq, postgres, redis) come from Docker Hub where that is reachable, and otherwise (here, in CI)
from stand-ins that ``deploy/offline/build-images`` makes out of Debian's packages.
``BERTH_COMPOSE_BASE=registry`` uses the public images instead.

Then: every process healthy, non-root and under a restart policy, one database per service at
its newest migration, the platform answering through the gateway on 127.0.0.1 (sign-in, a
Docker host reached through the mounted socket), a SIGKILLed service brought back by its
restart policy, and acknowledged data kept across ``down`` and ``up``.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

import berth
from berth.migrations import head
from tests.support import free_port, report

# On a machine that has never built them, the base images and Berth's own take several
# minutes (about 5 here): more than the suite's 300 s per test, which the module fixture's
# build counts against the first test (and pytest-timeout's thread method ends the whole run).
# The builds have their own subprocess timeouts (900 s each).
pytestmark = [pytest.mark.deploy, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
OFFLINE = {"BERTH_PYTHON_IMAGE": "berth-offline/python:3.11",
           "BERTH_NODE_IMAGE": "berth-offline/node:18",
           "BERTH_RABBITMQ_IMAGE": "berth-offline/rabbitmq:3",
           "BERTH_POSTGRES_IMAGE": "berth-offline/postgres:15",
           "BERTH_REDIS_IMAGE": "berth-offline/redis:7"}
IMAGE = "berth:compose-test"
LOCAL_CAS = Path("/usr/local/share/ca-certificates")  # Debian's drop folder for extra CAs
BERTH_PROCESSES = (*berth.SERVICES, "gateway")


def run(*args, timeout=600, env=None, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


class Stack:
    """One compose project: its environment, its gateway on 127.0.0.1 and its containers."""

    def __init__(self, project: str, env: dict, port: int):
        self.project, self.env, self.port = project, env, port
        self.base = f"http://127.0.0.1:{port}"
        self.admin = (env["BERTH_ADMIN_USERNAME"], env["BERTH_ADMIN_PASSWORD"])

    def compose(self, *args, timeout=300, check=True):
        return run("docker-compose", "-p", self.project, "-f", "docker-compose.yml", *args,
                   timeout=timeout, env=self.env, check=check)

    def containers(self) -> dict[str, dict]:
        """Each service's container, inspected (one ``ps``, one ``docker inspect``)."""
        ids = self.compose("ps", "-q").stdout.split()
        infos = json.loads(run("docker", "inspect", *ids).stdout) if ids else []
        return {info["Config"]["Labels"]["com.docker.compose.service"]: info
                for info in infos}

    def container(self, service: str) -> str:
        return self.inspect(service)["Id"]

    def inspect(self, service: str) -> dict:
        return self.containers()[service]

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40", check=False).stdout

    def wait_healthy(self, timeout: float = 180.0) -> float:
        """Seconds until every long-running container reports healthy."""
        started = time.monotonic()
        while True:
            found = self.containers()
            states = {s: (found[s]["State"].get("Health") or {}).get("Status")
                      if s in found else None for s in ("rabbitmq", "postgres", "redis",
                                                        *BERTH_PROCESSES)}
            if all(state == "healthy" for state in states.values()):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"not healthy after {timeout:.0f} s: {states}\n"
                                     f"{self.logs()}")
            time.sleep(1)

    def request(self, method: str, path: str, body=None, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        reply = requests.request(method, self.base + path, json=body, headers=headers,
                                 timeout=15)
        return reply.status_code, reply.json()

    def login(self, username: str, password: str) -> str:
        status, body = self.request("POST", "/api/login",
                                    {"username": username, "password": password})
        assert status == 200, body
        return body["token"]

    def psql(self, database: str, sql: str) -> str:
        return run("docker", "exec", self.container("postgres"), "psql", "-U", "berth",
                   "-d", database, "-Atc", sql).stdout.strip()


def build_images(env: dict) -> dict:
    """The base images (stand-ins unless told otherwise) and Berth's own; seconds per step."""
    seconds = {}
    if os.environ.get("BERTH_COMPOSE_BASE") != "registry":
        started = time.monotonic()
        run(str(ROOT / "deploy/offline/build-images"), timeout=900)
        seconds["base images"] = time.monotonic() - started
        env.update(OFFLINE)
    build = ["docker", "build", "-q", "--network", "host", "-t", IMAGE]
    if "BERTH_PYTHON_IMAGE" in env:
        build += ["--build-arg", f"PYTHON_IMAGE={env['BERTH_PYTHON_IMAGE']}"]
    if "BERTH_NODE_IMAGE" in env:
        build += ["--build-arg", f"NODE_IMAGE={env['BERTH_NODE_IMAGE']}"]
    cas = "".join(p.read_text() for p in sorted(LOCAL_CAS.glob("*.crt")))
    if cas:  # the machine's own extra CAs, e.g. a TLS-intercepting proxy to the package index
        build += ["--build-arg", f"BUILD_CA_CERT={cas}"]
    started = time.monotonic()
    # the classic builder: BuildKit needs the buildx plugin, which Debian's docker.io lacks
    run(*build, ".", timeout=900, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    seconds["Berth image"] = time.monotonic() - started
    return seconds


@pytest.fixture(scope="module")
def stack():
    port = free_port()
    env = {**os.environ,
           "BERTH_IMAGE": IMAGE, "BERTH_HTTP_ADDRESS": "127.0.0.1", "BERTH_HTTP_PORT": str(port),
           "BERTH_JWT_SECRET": secrets.token_urlsafe(48),
           "BERTH_SECRETS_KEY": secrets.token_urlsafe(48),
           "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
           "RABBITMQ_PASSWORD": secrets.token_urlsafe(16),
           "BERTH_ADMIN_USERNAME": "operator", "BERTH_ADMIN_PASSWORD": secrets.token_urlsafe(16),
           "BERTH_ADMIN_EMAIL": "operator@example.com",
           "DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid)}
    seconds = build_images(env)
    project = f"berthtest{os.getpid()}"
    s = Stack(project, env, port)
    try:
        started = time.monotonic()
        s.compose("up", "-d", "--no-build")
        s.wait_healthy()
        seconds["up until all healthy"] = time.monotonic() - started
        report("compose: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
        yield s
    finally:
        s.compose("down", "-v", "--remove-orphans", "-t", "5", check=False)


def test_every_process_is_healthy_non_root_and_restarted_by_policy(stack):
    for service in (*BERTH_PROCESSES, "rabbitmq", "postgres", "redis"):
        info = stack.inspect(service)
        assert info["State"]["Health"]["Status"] == "healthy", service
        assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped", service
        uid = run("docker", "exec", info["Id"], "id", "-u").stdout.strip()
        assert uid != "0", service
        if service in BERTH_PROCESSES:
            assert uid == "10001" and info["Config"]["Image"] == IMAGE, service
    init = stack.inspect("init")
    assert init["State"]["Status"] == "exited" and init["State"]["ExitCode"] == 0


def test_each_service_has_its_own_database_at_its_newest_migration(stack):
    databases = set(stack.psql("postgres", "SELECT datname FROM pg_database").split())
    for service in berth.SERVICES:
        assert f"berth_{service}" in databases
        assert stack.psql(f"berth_{service}",
                          "SELECT version_num FROM alembic_version") == head(service)


def test_the_platform_answers_through_the_gateway(stack):
    status, body = stack.request("GET", "/api/server/health_check")
    assert status == 200 and body["status"] == "healthy", body
    assert set(body["services"].values()) == {"ok"}
    admin = stack.login(*stack.admin)
    status, body = stack.request("POST", "/api/add_user", {
        "username": "compose-user", "password": "user-password-1",
        "email": "compose-user@example.com"})
    assert status == 200, body
    stack.login("compose-user", "user-password-1")
    # the local engine through the socket compose mounts into containers (DOCKER_GID)
    status, body = stack.request("POST", "/api/add_server", {
        "server_name": "compose-local", "ip_address": "127.0.0.1",
        "docker_url": "unix:///var/run/docker.sock"}, token=admin)
    assert status == 200 and body["status"] == "online", body
    status, body = stack.request("GET", f"/api/server/status/{body['server_id']}", token=admin)
    assert status == 200 and body["status"] == "online" and body["engine_version"], body
    metrics = requests.get(stack.base + "/metrics", timeout=10).text
    assert 'berth_http_requests_total{method="POST",route="/api/login",status="200"}' in metrics
    # the rate limits count in the compose Redis: the gateway reached it, nothing failed open
    assert "berth_rate_limit_store_errors_total" not in metrics or \
        "berth_rate_limit_store_errors_total 0.0" in metrics, metrics


def test_the_gateway_serves_the_web_console_built_in_the_image(stack):
    page = requests.get(stack.base + "/containers", timeout=10)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-cache"
    assets = [part for part in page.text.split('"') if part.startswith("/assets/")]
    assert assets, page.text[:500]  # the build, not the how-to-build page
    for asset in assets:
        answer = requests.get(stack.base + asset, timeout=10)
        assert answer.status_code == 200, asset
        assert answer.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_a_killed_service_is_restarted_by_its_policy(stack):
    before = stack.inspect("users")
    os.kill(before["State"]["Pid"], signal.SIGKILL)  # a crash, not a stop
    killed = time.monotonic()
    deadline = killed + 60
    while True:
        now = stack.inspect("users")
        if now["RestartCount"] > before["RestartCount"] and now["State"]["Running"]:
            status, body = stack.request("GET", "/api/server/health_check")
            if status == 200 and body["services"]["users"] == "ok":
                break
        assert time.monotonic() < deadline, (now["State"], stack.logs())
        time.sleep(0.5)
    report(f"compose: users SIGKILLed, restarted by the engine and answering again after "
           f"{time.monotonic() - killed:.1f} s")
    stack.login("compose-user", "user-password-1")


def test_acknowledged_data_survives_down_and_up(stack):
    status, body = stack.request("POST", "/api/add_user", {
        "username": "kept-user", "password": "user-password-2",
        "email": "kept-user@example.com"})
    assert status == 200, body
    stack.compose("down", "-t", "10")  # containers go, the named volumes stay
    assert not stack.compose("ps", "-q").stdout.strip()
    stack.compose("up", "-d", "--no-build")
    stack.wait_healthy()
    stack.login("kept-user", "user-password-2")
    stack.login(*stack.admin)  # init ran again and left the first admin as it was
