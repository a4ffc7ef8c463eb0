"""Talking to Docker engines: one cached API client per server, errors in Berth's terms.

Shared because two services reach engines: containers (create, stop, supervise) and traffic
(network counters). Engines are reached at a server's ``docker_url`` (``unix://`` or
``tcp://``), with TLS client certificates for remote engines.

Every container Berth makes carries ``berth.managed`` (its value: the installation's key) and
the labels below; Berth lists and changes only containers with its own installation's key,
and nothing else on a host, not even another installation's containers.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import ssl
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound as EngineNotFound
from docker.tls import TLSConfig

from berth.errors import ServiceUnavailable
from berth.docker.sealing import CannotUnseal, unseal

log = logging.getLogger(__name__)

API_VERSION = "1.41"  # Docker 20.10; newer engines serve older API versions

LABEL_MANAGED = "berth.managed"
LABEL_CONTAINER_ID = "berth.container_id"
LABEL_SERVER_ID = "berth.server_id"
LABEL_GENERATION = "berth.generation"
LABEL_OWNER = "berth.user_id"

# the engine's state → Berth's word (DESIGN.md); a container the engine lacks is "missing"
ENGINE_STATES = {"running": "running", "paused": "paused", "restarting": "restarting",
                 "created": "stopped", "exited": "stopped", "dead": "stopped",
                 "removing": "stopped"}


@dataclass(frozen=True)
class Endpoint:
    """How to reach one server's engine."""
    server_id: int
    name: str
    docker_url: str
    tls_ca_cert: str | None = None
    tls_client_cert: str | None = None
    tls_client_key: str | None = None

    @classmethod
    def of(cls, server) -> Endpoint:
        return cls(server.id, server.name, server.docker_url, server.tls_ca_cert,
                   server.tls_client_cert, server.tls_client_key)

    @property
    def uses_tls(self) -> bool:
        return bool(self.tls_client_cert)

    def fingerprint(self) -> str:
        material = "\0".join([self.docker_url, self.tls_ca_cert or "",
                              self.tls_client_cert or "", self.tls_client_key or ""])
        return hashlib.sha256(material.encode()).hexdigest()[:16]


class EngineUnavailable(ServiceUnavailable):
    """The server's engine did not answer (refused, timed out, TLS failure)."""


def berth_state(engine_state: str | None) -> str:
    return ENGINE_STATES.get(engine_state or "", "missing" if engine_state is None
                             else "stopped")


_EXIT_CODE = re.compile(r"Exited \((-?\d+)\)")


def exit_code_of(summary: dict) -> int | None:
    """The exit code from a container listing row's ``Status`` text (``Exited (137) ...``)."""
    match = _EXIT_CODE.search(summary.get("Status") or "")
    return int(match.group(1)) if match else None


def system_ca_store() -> str | bool:
    """The system's CA bundle (or folder) as requests' ``verify``; True (requests' own
    bundle) if the system names none. Never False."""
    paths = ssl.get_default_verify_paths()
    return paths.cafile or paths.capath or True


class EnginePool:
    """One low-level API client per (server, url, TLS material), reused across calls.

    ``timeout`` bounds every engine request; pings use their own shorter timeout.
    TLS material is written once to files under ``tls_dir`` (mode 0600), as docker's
    TLSConfig needs paths; the client key arrives sealed (berth.docker.sealing) and is unsealed only
    to be written there.
    """

    def __init__(self, tls_dir: Path, timeout: float = 10.0, max_pool_size: int = 32):
        self.tls_dir = Path(tls_dir)
        self.timeout = timeout
        self.max_pool_size = max_pool_size
        self._clients: dict[tuple[int, str], docker.APIClient] = {}
        self._lock = threading.Lock()

    def client(self, endpoint: Endpoint) -> docker.APIClient:
        key = (endpoint.server_id, endpoint.fingerprint())
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client = self._connect(endpoint)
                    # a changed URL or certificate retires the server's previous client
                    for old in [k for k in self._clients if k[0] == endpoint.server_id]:
                        self._clients.pop(old).close()
                    self._clients[key] = client
        return client

    def _connect(self, endpoint: Endpoint) -> docker.APIClient:
        tls = self._tls_config(endpoint) if endpoint.uses_tls else False
        try:
            client = docker.APIClient(base_url=endpoint.docker_url, version=API_VERSION,
                                      timeout=self.timeout, tls=tls,
                                      max_pool_size=self.max_pool_size)
        except DockerException as exc:
            raise EngineUnavailable(
                f"Docker host {endpoint.name} cannot be reached: {exc}") from None
        # the engine's own CA decides, not REQUESTS_CA_BUNDLE; and no HTTP(S)_PROXY detour
        client.trust_env = False
        return client

    def _tls_config(self, endpoint: Endpoint) -> TLSConfig:
        folder = self.tls_dir / f"server-{endpoint.server_id}-{endpoint.fingerprint()}"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        paths = {}
        for name, text in (("ca.pem", endpoint.tls_ca_cert), ("cert.pem",
                           endpoint.tls_client_cert), ("key.pem", endpoint.tls_client_key)):
            if not text:
                continue
            path = folder / name
            if not path.exists():
                try:
                    text = unseal(text)
                except CannotUnseal as exc:
                    raise EngineUnavailable(f"Docker host {endpoint.name}: its TLS client key "
                                            f"cannot be used: {exc}") from None
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(text)
            paths[name] = str(path)
        # the engine's certificate is always verified: against its CA, or without one
        # against the system's CA store; never with verification off
        return TLSConfig(client_cert=(paths["cert.pem"], paths["key.pem"]),
                         ca_cert=paths.get("ca.pem"),
                         verify=paths.get("ca.pem") or system_ca_store())

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    @contextmanager
    def reach(self, endpoint: Endpoint):
        """Run engine calls; an engine that cannot be reached becomes EngineUnavailable."""
        try:
            yield self.client(endpoint)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                ConnectionError, TimeoutError) as exc:
            raise EngineUnavailable(f"Docker host {endpoint.name} is unreachable") from exc
        except APIError:
            raise
        except DockerException as exc:
            raise EngineUnavailable(f"Docker host {endpoint.name} is unreachable: {exc}"
                                    ) from exc

    def ping(self, endpoint: Endpoint, timeout: float) -> str:
        """The engine's version if it answers within ``timeout`` seconds, else raises."""
        with self.reach(endpoint) as api:
            response = api._get(api._url("/version"), timeout=timeout)
            return api._result(response, json=True).get("Version", "")

    def capacity(self, endpoint: Endpoint, timeout: float) -> tuple[int, int]:
        """The host's (CPUs, memory in MiB) as its engine reports them (``docker info``:
        ``NCPU``, ``MemTotal``), within ``timeout`` seconds, else raises."""
        with self.reach(endpoint) as api:
            response = api._get(api._url("/info"), timeout=timeout)
            info = api._result(response, json=True)
        return int(info["NCPU"]), int(info["MemTotal"]) // 2 ** 20

    def managed(self, endpoint: Endpoint, installation: str) -> list[dict]:
        """Every container of this Berth installation on the engine (listing rows: Id, Names,
        State, Labels...)."""
        with self.reach(endpoint) as api:
            return api.containers(all=True,
                                  filters={"label": f"{LABEL_MANAGED}={installation}"})


__all__ = ["APIError", "EngineNotFound", "ImageNotFound", "EngineUnavailable", "EnginePool",
           "Endpoint", "berth_state", "exit_code_of"]
