"""Engines are reached safely (issue 15, item 5): outside development a plaintext ``tcp://``
engine is refused with a 400 naming ``docker_url``; TLS is never used without verifying the
engine's certificate; the default URL is Docker's TLS port. Tests run with BERTH_ENV=test."""
from __future__ import annotations

import pytest

from berth.docker.engines import Endpoint, EnginePool, system_ca_store
from berth.docker.sealing import seal
from berth.errors import BadRequest
from services.containers.service import ContainersService

ADMIN = {"user_id": 1, "role": "admin", "username": "root"}
TLS = {"tls_client_cert": "CERT", "tls_client_key": "KEY"}  # nothing answers: offline
NO_TLS = {"tls_ca_cert": None, "tls_client_cert": None, "tls_client_key": None}


@pytest.fixture
def containers(make_service, clean_docker):
    return make_service(ContainersService, HEALTH_INTERVAL=3600)


def refused(call, *args) -> str:
    with pytest.raises(BadRequest) as caught:
        call(*args)
    (detail,) = caught.value.details
    assert detail["field"] == "docker_url"
    assert "TLS" in detail["message"] and "unix://" in detail["message"]
    return detail["message"]


def test_plaintext_tcp_engines_are_refused_outside_development(rpc, containers, docker_url):
    add = rpc.containers.add_server
    message = refused(add, {"server_name": "plain", "ip_address": "127.0.0.1"})
    assert message.startswith("tcp://127.0.0.1:2376 ")  # the default URL, without TLS
    refused(add, {"server_name": "plain", "ip_address": "127.0.0.1",
                  "docker_url": "tcp://127.0.0.1:2375"})
    assert rpc.containers.servers()["servers"] == []

    remote = add({"server_name": "remote", "ip_address": "127.0.0.1", **TLS})["server_id"]
    local = add({"server_name": "local", "ip_address": "127.0.0.2",
                 "docker_url": docker_url})["server_id"]
    refused(rpc.containers.update_server, ADMIN, remote, NO_TLS)  # TLS dropped: plaintext
    refused(rpc.containers.update_server, ADMIN, local, {"docker_url": "tcp://127.0.0.2:2375"})
    refused(rpc.containers.update_server, ADMIN, local, {"docker_url": None})  # the default
    rows = {s["server_id"]: s["docker_url"] for s in rpc.containers.servers()["servers"]}
    assert rows == {remote: "tcp://127.0.0.1:2376", local: docker_url}  # nothing changed
    moved = rpc.containers.update_server(ADMIN, local, {"docker_url": None, **TLS})
    assert moved["docker_url"] == "tcp://127.0.0.2:2376"


def test_development_may_reach_a_plaintext_engine(rpc, containers, monkeypatch):
    from berth.settings import reload_settings
    monkeypatch.setenv("BERTH_ENV", "development")
    reload_settings()
    try:
        added = rpc.containers.add_server({"server_name": "dev", "ip_address": "127.0.0.1"})
        assert rpc.containers.server_status(added["server_id"])["docker_url"] == \
            "tcp://127.0.0.1:2376"
    finally:
        monkeypatch.undo()
        reload_settings()


@pytest.mark.parametrize("ca", [None, "CA PEM"])
def test_tls_always_verifies_the_engines_certificate(tmp_path, ca):
    pool = EnginePool(tmp_path)
    endpoint = Endpoint(1, "remote", "tcp://127.0.0.1:2376", tls_ca_cert=ca,
                        tls_client_cert="CERT", tls_client_key=seal("KEY"))
    tls = pool._tls_config(endpoint)
    assert tls.verify not in (False, None, "")
    if ca:
        (ca_file,) = tmp_path.glob("server-1-*/ca.pem")
        assert tls.verify == tls.ca_cert == str(ca_file)
    else:  # no CA of its own: the system's store
        assert tls.verify == system_ca_store() and tls.ca_cert is None
