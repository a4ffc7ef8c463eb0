"""Container operations on one engine, in Berth's terms (no database, no nameko).

Engine refusals become Berth errors here: an unknown image is a 400, a taken name or port a
409, an engine that does not answer a 503. A create that fails half-way removes what it made.

Every copy is created confined (``Confinement``): memory and memory+swap, a CPU quota, a PIDs
limit, a rotated json-file log, every capability dropped but ``KEPT_CAPABILITIES``,
``no-new-privileges``, never privileged, no host mounts, devices, network or PID namespace,
and on the engine's Berth network, a bridge with inter-container traffic off: containers of
different tenants on one host cannot reach each other (nor can one tenant's own two; each is
reached only through its published ports).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from berth.docker.engines import (LABEL_CONTAINER_ID, LABEL_GENERATION, LABEL_MANAGED, LABEL_OWNER,
                           LABEL_SERVER_ID, APIError, Endpoint, EngineNotFound, EnginePool,
                           EngineUnavailable, ImageNotFound, berth_state)
from berth.errors import BadRequest, Conflict, ServiceUnavailable
from berth.settings import Settings, get_settings

log = logging.getLogger(__name__)

# Docker's default set has 14 capabilities; a container keeps only these (each with its reason):
KEPT_CAPABILITIES = (
    "CHOWN",             # entrypoints running as root chown their data folders (postgres, nginx)
    "DAC_OVERRIDE",      # root reads and writes files it does not own (most images assume it)
    "FOWNER",            # root chmods and touches files it does not own (entrypoints)
    "SETUID", "SETGID",  # root drops to a service user (nginx workers, gosu, su-exec, postgres)
    "KILL",              # a root supervisor signals its children that run as another user
    "NET_BIND_SERVICE",  # servers listen on ports below 1024 (80, 443) inside the container
)
# dropped from Docker's default: AUDIT_WRITE, FSETID, MKNOD (no device nodes), NET_RAW (no raw
# sockets: no spoofing or sniffing on the bridge), SETFCAP, SETPCAP, SYS_CHROOT

ICC_OPTION = "com.docker.network.bridge.enable_icc"
NETWORK_LABEL = "berth.network"


@dataclass(frozen=True)
class Confinement:
    """The limits one copy runs under. Built from the operator's defaults (``of``); a plan can
    supply its own instance. Swap equals memory: Docker's ``memory-swap`` is memory plus swap,
    so it is twice the memory (on a host without swap, memory is the whole limit)."""
    memory_bytes: int
    nano_cpus: int
    pids_limit: int
    log_max_size_mib: int = 10
    log_max_files: int = 3
    network: str = "berth"
    capabilities: tuple[str, ...] = KEPT_CAPABILITIES

    @classmethod
    def of(cls, settings: Settings | None = None) -> Confinement:
        settings = settings or get_settings()
        return cls(memory_bytes=settings.container_memory_mib * 1024 ** 2,
                   nano_cpus=round(settings.container_cpus * 1e9),
                   pids_limit=settings.container_pids_limit,
                   log_max_size_mib=settings.container_log_max_size_mib,
                   log_max_files=settings.container_log_max_files,
                   network=settings.container_network)

    def with_limits(self, limits: dict | None) -> Confinement:
        """These limits with a plan's in place of the operator's (``Container.limits``)."""
        if not limits:
            return self
        return dataclasses.replace(
            self, memory_bytes=int(limits["memory_mib"]) * 1024 ** 2,
            nano_cpus=round(float(limits["cpus"]) * 1e9), pids_limit=int(limits["pids_limit"]),
            log_max_size_mib=max(1, int(limits["log_max_mib"]) // self.log_max_files))

    @property
    def memory_swap_bytes(self) -> int:
        return 2 * self.memory_bytes

    def host_config(self) -> dict:
        """The engine's ``create_host_config`` arguments (ports aside)."""
        return {
            "mem_limit": self.memory_bytes, "memswap_limit": self.memory_swap_bytes,
            "nano_cpus": self.nano_cpus, "pids_limit": self.pids_limit,
            "log_config": {"type": "json-file", "config": {
                "max-size": f"{self.log_max_size_mib}m", "max-file": str(self.log_max_files)}},
            "cap_drop": ["ALL"], "cap_add": list(self.capabilities),
            "security_opt": ["no-new-privileges:true"], "privileged": False,
            "network_mode": self.network, "ipc_mode": "private",
            # never: binds, volumes_from, devices, pid_mode="host", network_mode="host"
        }


def labels_for(installation: str, container, server_id: int,
               generation: int) -> dict[str, str]:
    return {LABEL_MANAGED: installation, LABEL_CONTAINER_ID: str(container.id),
            LABEL_SERVER_ID: str(server_id), LABEL_GENERATION: str(generation),
            LABEL_OWNER: str(container.user_id)}


def _explain(exc: APIError) -> str:
    return (exc.explanation or str(exc)).strip()[:300]


def registry_of(image: str) -> str:
    """The registry an image reference names (Docker's rule): the first path component if it
    looks like a host (a dot, a port or ``localhost``), else Docker Hub (``docker.io``)."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def may_pull(image: str, settings: Settings | None = None) -> bool:
    """Whether Berth may pull ``image`` (BERTH_CONTAINER_PULL_REGISTRIES lists its registry):
    a reference names a host to fetch from, and a host should fetch only where the operator
    said."""
    settings = settings or get_settings()
    allowed = {r.strip().lower() for r in settings.container_pull_registries.split(",")}
    return registry_of(image).lower() in allowed - {""}


def _not_pulled(image: str, endpoint: Endpoint, reason: str) -> BadRequest:
    return BadRequest("Invalid container data", [{
        "field": "image", "message": f"image {image} is not on server {endpoint.name} and "
                                     f"could not be pulled: {reason[:300]}"}])


class EngineOps:
    def __init__(self, pool: EnginePool, installation: Callable[[], str],
                 stop_timeout: int = 3, confinement: Confinement | None = None):
        self.pool = pool
        self.installation = installation  # the key every copy is labelled with
        self.stop_timeout = stop_timeout
        self.confinement = confinement  # None: the operator's defaults at each create
        self._network_lock = threading.Lock()

    def create(self, endpoint: Endpoint, ip_address: str, container, generation: int,
               name: str, start: bool, confinement: Confinement | None = None) -> str:
        """Create (and start) a copy of ``container``'s spec, confined (``confinement``,
        default the operator's); return the engine's id. Every copy Berth makes (create,
        update, replace, failover, load balance, drain) is made here."""
        confinement = (confinement or self.confinement or Confinement.of()).with_limits(
            container.limits)
        ports = container.ports or {}
        with self.pool.reach(endpoint) as api:
            self._ensure_network(api, endpoint, confinement.network)
            host_config = api.create_host_config(port_bindings={
                key: (ip_address, host_port) for key, host_port in ports.items()},
                **confinement.host_config())

            def make() -> dict:
                return api.create_container(
                    container.image, command=container.command or None, name=name,
                    environment=container.environment or None, detach=True,
                    labels=labels_for(self.installation(), container,
                                      endpoint.server_id, generation),
                    ports=[(int(k.split("/")[0]), k.split("/")[1]) for k in ports],
                    host_config=host_config)
            try:
                try:
                    created = make()
                except ImageNotFound:  # not on this host yet: pull it, then once more
                    if not may_pull(container.image):
                        raise
                    self._pull(api, endpoint, container.image)
                    created = make()
            except ImageNotFound:
                raise BadRequest("Invalid container data", [{
                    "field": "image", "message": f"image {container.image} is not available "
                                                 f"on server {endpoint.name} (Berth pulls only "
                                                 f"from BERTH_CONTAINER_PULL_REGISTRIES)"}]
                                 ) from None
            except APIError as exc:
                if exc.status_code == 409:
                    raise Conflict(f"The name {name} is taken on server {endpoint.name}"
                                   ) from None
                if exc.status_code == 400:
                    raise BadRequest("Invalid container data", [{
                        "field": "body", "message": _explain(exc)}]) from None
                raise ServiceUnavailable(f"Docker host {endpoint.name} could not create the "
                                         f"container: {_explain(exc)}") from None
            engine_id = created["Id"]
            if start:
                try:
                    api.start(engine_id)
                except (APIError, EngineUnavailable, OSError) as exc:
                    self._discard(api, engine_id)
                    raise self._start_error(exc, endpoint) from None
            return engine_id

    @staticmethod
    def _pull(api, endpoint: Endpoint, image: str) -> None:
        """Pull ``image`` onto the engine. Whatever stops it (no such image, a registry that
        refuses or does not answer) is a 400 naming ``image`` with the engine's reason: the
        image is not available on that host. An engine that does not answer is a 503."""
        log.info("pulling %s onto %s", image, endpoint.name)
        try:
            for message in api.pull(image, stream=True, decode=True):
                if "error" in message:
                    raise _not_pulled(image, endpoint, str(message["error"]))
        except APIError as exc:
            raise _not_pulled(image, endpoint, _explain(exc)) from None

    def _ensure_network(self, api, endpoint: Endpoint, name: str) -> None:
        """The engine's Berth network, made if missing: a bridge with inter-container traffic
        off. One that lets containers talk to each other is refused (a 503), never used."""
        with self._network_lock:  # one create per process; the engine refuses duplicates
            try:
                network = api.inspect_network(name)
            except EngineNotFound:
                try:
                    api.create_network(name, driver="bridge", check_duplicate=True,
                                       options={ICC_OPTION: "false"},
                                       labels={NETWORK_LABEL: "1"})
                    log.info("network %s created on %s", name, endpoint.name)
                except APIError as exc:
                    if exc.status_code != 409:  # 409: another replica made it meanwhile
                        raise ServiceUnavailable(f"Docker host {endpoint.name} could not "
                                                 f"create network {name}: {_explain(exc)}"
                                                 ) from None
                network = api.inspect_network(name)
        if network.get("Driver") != "bridge" or \
                (network.get("Options") or {}).get(ICC_OPTION) != "false":
            raise ServiceUnavailable(
                f"Docker host {endpoint.name}: network {name} lets containers reach each "
                f"other (it needs driver bridge and {ICC_OPTION}=false); remove it and Berth "
                f"makes its own")

    def _start_error(self, exc, endpoint: Endpoint):
        if isinstance(exc, APIError):
            text = _explain(exc)
            if "port is already allocated" in text or "address already in use" in text:
                return Conflict(f"A published port is already in use on server "
                                f"{endpoint.name}: {text}")
            if exc.status_code == 400:
                return BadRequest("Invalid container data", [{"field": "body",
                                                              "message": text}])
            return ServiceUnavailable(f"Docker host {endpoint.name} could not start the "
                                      f"container: {text}")
        return EngineUnavailable(f"Docker host {endpoint.name} is unreachable")

    def discard_copies(self, endpoint: Endpoint, container_id: int, generation: int,
                       ping_timeout: float = 2.0) -> int:
        """Remove every copy of ``container_id``'s ``generation`` on the engine: what a
        create that failed may have left (the engine made the copy but its answer was lost).
        Only copies labelled with this installation, container and generation are touched.
        An engine that does not answer is left to the reconciler (a copy without a row is
        stale). Returns how many were removed."""
        removed = 0
        try:
            self.pool.ping(endpoint, ping_timeout)
            with self.pool.reach(endpoint) as api:
                for copy in api.containers(all=True, filters={"label": [
                        f"{LABEL_MANAGED}={self.installation()}",
                        f"{LABEL_CONTAINER_ID}={container_id}",
                        f"{LABEL_GENERATION}={generation}"]}):
                    api.remove_container(copy["Id"], force=True)
                    removed += 1
        except Exception as exc:  # noqa: BLE001 - the reconciler removes what is left
            log.warning("copies of container %s (generation %s) on %s left to the "
                        "reconciler: %s", container_id, generation, endpoint.name, exc)
        if removed:
            log.info("removed %d half-created copy of container %s on %s", removed,
                     container_id, endpoint.name)
        return removed

    @staticmethod
    def _discard(api, engine_id: str) -> None:
        try:
            api.remove_container(engine_id, force=True)
        except Exception:  # noqa: BLE001 - the reconciler removes what is left as stale
            log.warning("could not remove half-created container %s", engine_id[:12])

    def start(self, endpoint: Endpoint, engine_id: str) -> None:
        with self.pool.reach(endpoint) as api:
            try:
                api.start(engine_id)
            except APIError as exc:
                if isinstance(exc, EngineNotFound):
                    raise
                raise self._start_error(exc, endpoint) from None

    def stop(self, endpoint: Endpoint, engine_id: str) -> None:
        """Stop the copy (SIGTERM, then SIGKILL after the grace period); absent is fine."""
        with self.pool.reach(endpoint) as api:
            try:
                api.stop(engine_id, timeout=self.stop_timeout)
            except EngineNotFound:
                pass

    def remove(self, endpoint: Endpoint, engine_id: str) -> None:
        """Remove the copy; absent, or already being removed (by the reconciler or a
        concurrent call), is fine."""
        with self.pool.reach(endpoint) as api:
            try:
                api.remove_container(engine_id, force=True)
            except EngineNotFound:
                pass
            except APIError as exc:
                if exc.status_code != 409 or "already in progress" not in _explain(exc):
                    raise

    def rename(self, endpoint: Endpoint, engine_id: str, name: str) -> None:
        with self.pool.reach(endpoint) as api:
            try:
                api.rename(engine_id, name)
            except EngineNotFound:
                pass
            except APIError as exc:
                if exc.status_code == 409:
                    raise Conflict(f"The name {name} is taken on server {endpoint.name}"
                                   ) from None
                raise

    def logs(self, endpoint: Endpoint, engine_id: str | None, tail: int,
             limit_bytes: int = 256 * 1024) -> list[str]:
        """The copy's last ``tail`` lines of output (stdout and stderr), at most
        ``limit_bytes`` of them (the newest kept); none if the engine lacks the copy or is
        removing it (a 409 "dead or marked for removal" while a delete runs)."""
        if not engine_id:
            return []
        with self.pool.reach(endpoint) as api:
            try:
                raw = api.logs(engine_id, stdout=True, stderr=True, tail=tail)
            except EngineNotFound:
                return []
            except APIError as exc:
                if exc.status_code == 409:
                    return []
                raise
        text = raw[-limit_bytes:].decode("utf-8", errors="replace")
        return text.splitlines()[-tail:]

    def state(self, endpoint: Endpoint, engine_id: str | None) -> tuple[str, int | None]:
        """(Berth status, exit code) of a copy, ``missing`` if the engine lacks it."""
        if not engine_id:
            return "missing", None
        with self.pool.reach(endpoint) as api:
            try:
                info = api.inspect_container(engine_id)
            except EngineNotFound:
                return "missing", None
        state = info.get("State") or {}
        status = berth_state(state.get("Status"))
        return status, (state.get("ExitCode") if status == "stopped" else None)

    def death_reason(self, endpoint: Endpoint, engine_id: str) -> str:
        """Why a copy that should run has stopped: ``oom`` when the kernel killed it for
        going over its memory limit (the engine's ``State.OOMKilled``), else ``exited``."""
        with self.pool.reach(endpoint) as api:
            state = api.inspect_container(engine_id).get("State") or {}
        return "oom" if state.get("OOMKilled") else "exited"
