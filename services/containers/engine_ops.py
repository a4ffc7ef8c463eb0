"""Container operations on one engine, in Berth's terms (no database, no nameko).

Engine refusals become Berth errors here: an unknown image is a 400, a taken name or port a
409, an engine that does not answer a 503. A create that fails half-way removes what it made.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from berth.docker.engines import (LABEL_CONTAINER_ID, LABEL_GENERATION, LABEL_MANAGED, LABEL_OWNER,
                           LABEL_SERVER_ID, APIError, Endpoint, EngineNotFound, EnginePool,
                           EngineUnavailable, ImageNotFound, berth_state)
from berth.errors import BadRequest, Conflict, ServiceUnavailable

log = logging.getLogger(__name__)


def labels_for(installation: str, container, server_id: int,
               generation: int) -> dict[str, str]:
    return {LABEL_MANAGED: installation, LABEL_CONTAINER_ID: str(container.id),
            LABEL_SERVER_ID: str(server_id), LABEL_GENERATION: str(generation),
            LABEL_OWNER: str(container.user_id)}


def _explain(exc: APIError) -> str:
    return (exc.explanation or str(exc)).strip()[:300]


class EngineOps:
    def __init__(self, pool: EnginePool, installation: Callable[[], str],
                 stop_timeout: int = 3):
        self.pool = pool
        self.installation = installation  # the key every copy is labelled with
        self.stop_timeout = stop_timeout

    def create(self, endpoint: Endpoint, ip_address: str, container, generation: int,
               name: str, start: bool) -> str:
        """Create (and start) a copy of ``container``'s spec; return the engine's id."""
        ports = container.ports or {}
        with self.pool.reach(endpoint) as api:
            try:
                host_config = api.create_host_config(port_bindings={
                    key: (ip_address, host_port) for key, host_port in ports.items()})
                created = api.create_container(
                    container.image, command=container.command or None, name=name,
                    environment=container.environment or None, detach=True,
                    labels=labels_for(self.installation(), container,
                                                endpoint.server_id, generation),
                    ports=[(int(k.split("/")[0]), k.split("/")[1]) for k in ports],
                    host_config=host_config)
            except ImageNotFound:
                raise BadRequest("Invalid container data", [{
                    "field": "image", "message": f"image {container.image} is not available "
                                                 f"on server {endpoint.name}"}]) from None
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
