"""A remote engine reached over TCP with TLS client certificates (mutual TLS in front of the
real engine, on 127.0.0.1): the right certificate works end to end, a foreign one is offline."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from berth.db import normalise_url
from berth.docker.sealing import unseal
from services.containers.service import ContainersService
from tests.docker_support import TEST_IMAGE
from tests.support import ROOT, free_port
from tests.tls_proxy import make_pki

ADMIN = {"user_id": 1, "role": "admin", "username": "root"}


@pytest.fixture(scope="module")
def tls_engine(tmp_path_factory, docker_url):
    folder = tmp_path_factory.mktemp("pki")
    make_pki(folder)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.tls_proxy", str(port),
                             docker_url.removeprefix("unix://"), str(folder / "server.pem"),
                             str(folder / "server.key"), str(folder / "ca.pem")],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield f"tcp://127.0.0.1:{port}", folder
    proc.kill()
    proc.wait()


def pem(folder: Path, name: str) -> str:
    return (folder / name).read_text()


def stored_key(databases, server_id: int) -> str:
    engine = create_engine(normalise_url(databases.url("containers")))
    with engine.connect() as conn:
        key = conn.execute(text("SELECT tls_client_key FROM servers WHERE id = :id"),
                           {"id": server_id}).scalar_one()
    engine.dispose()
    return key


def test_client_certificates_reach_the_engine_and_foreign_ones_do_not(
        rpc, make_service, clean_docker, tls_engine, databases):
    url, folder = tls_engine
    make_service(ContainersService, HEALTH_INTERVAL=3600)
    good = rpc.containers.add_server({
        "server_name": "remote", "ip_address": "127.0.0.1", "docker_url": url,
        "tls_ca_cert": pem(folder, "ca.pem"), "tls_client_cert": pem(folder, "client.pem"),
        "tls_client_key": pem(folder, "client.key")})
    assert good["status"] == "online", rpc.containers.server_status(good["server_id"])[
        "last_error"]
    key = stored_key(databases, good["server_id"])  # sealed at rest, opened only to connect
    assert key.startswith("sealed:v1:") and "PRIVATE KEY" not in key
    assert unseal(key) == pem(folder, "client.key")
    created = rpc.containers.create_container(ADMIN, {"container_name": "over-tls",
                                                      "image": TEST_IMAGE})
    (copy,) = clean_docker.containers.list(filters={"label": "berth.managed"})
    assert copy.name == "over-tls" and copy.status == "running"
    assert rpc.containers.container_status(ADMIN, "over-tls")["status"] == "running"
    assert created["server_id"] == good["server_id"]

    rogue = rpc.containers.add_server({
        "server_name": "rogue", "ip_address": "127.0.0.2", "docker_url": url.replace(
            "127.0.0.1", "localhost"),
        "tls_ca_cert": pem(folder, "ca.pem"), "tls_client_cert": pem(folder, "rogue.pem"),
        "tls_client_key": pem(folder, "rogue.key")})
    assert rogue["status"] == "offline"
    assert rpc.containers.server_status(rogue["server_id"])["last_error"]
