"""The fleet: servers, containers, supervision and high availability (no nameko here).

One mechanism runs everything: a ``Container`` row holds the spec and the desired state; the
engine copy carries labels (installation, container id, server id, generation). Whatever
recreates a container (update, replace, failover, load balance, disaster recovery) builds a new
copy with the next generation, then points the row at it. The reconciler, run on every health tick,
reads each online engine and:

- removes copies that are stale: no row, a row now on another server, or an older generation
  (so a failed host that returns never runs a container twice);
- leaves alone copies with a newer generation (a recreate in flight) and rows still creating;
- records each row's observed status, reports a container that should run but does not
  (``container_died``, once per incident), starts it again, and stops one that should not run.

Work that recreates or moves containers runs under the ``containers-fleet`` lease, so only
one replica acts at a time (berth.lease).
"""
from __future__ import annotations

import datetime as dt
import logging
import shlex
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import eventlet
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from berth.db import isoformat, utcnow
from berth.engines import (LABEL_CONTAINER_ID, LABEL_GENERATION, LABEL_SERVER_ID, Endpoint,
                           EnginePool, EngineUnavailable, berth_state, exit_code_of)
from berth.errors import Conflict, Forbidden, NotFound, ServiceUnavailable
from berth.events import (ContainerCreated, ContainerDied, ContainerMoved, ContainerRecovered,
                          ContainerRemoved, ContainerStarted, ContainerStopped, Event,
                          ServerCameBack, ServerWentDown)
from services.containers import placement
from services.containers.engine_ops import EngineOps
from services.containers.models import Container, Installation, Server
from services.containers.servers import ServerAdmin

log = logging.getLogger(__name__)

STUCK_AFTER = dt.timedelta(minutes=10)  # a create or recreate older than this was abandoned
# where new containers may go: online and not in maintenance
PLACEABLE = (Server.status == "online", Server.maintenance.is_(False))


@dataclass(frozen=True)
class Backoff:
    """How supervision restarts a container that keeps dying: at once the first time, then
    after ``first`` seconds, doubling up to ``longest``; once it has stayed up for
    ``stable_after`` seconds, from the start again."""
    first: float = 10.0
    longest: float = 300.0
    stable_after: float = 60.0

    def due(self, restarts: int, restarted_at: dt.datetime | None, now: dt.datetime) -> bool:
        if not restarts or restarted_at is None:
            return True
        wait = min(self.first * 2 ** min(restarts - 1, 32), self.longest)
        return (now - restarted_at).total_seconds() >= wait

    def stable(self, restarted_at: dt.datetime | None, now: dt.datetime) -> bool:
        return restarted_at is None or (now - restarted_at).total_seconds() >= self.stable_after


@dataclass(frozen=True)
class Actor:
    user_id: int
    role: str

    @classmethod
    def of(cls, actor: dict) -> Actor:
        return cls(int(actor["user_id"]), actor["role"])

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# --- shapes --------------------------------------------------------------------------------

def server_row(server: Server, containers: int) -> dict:
    return {"server_id": server.id, "server_name": server.name,
            "ip_address": server.ip_address, "docker_url": server.docker_url,
            "status": server.status, "last_seen_at": isoformat(server.last_seen_at),
            "last_checked_at": isoformat(server.last_checked_at),
            "down_since": isoformat(server.down_since), "containers": containers,
            "maintenance": server.maintenance, "added_at": isoformat(server.created_at),
            "engine_version": server.engine_version, "last_error": server.last_error}


def container_row(c: Container) -> dict:
    return {"container_id": c.id, "container_name": c.name, "status": c.status,
            "desired_state": c.desired_state, "image": c.image, "user_id": c.user_id,
            "server_id": c.server_id, "ports": c.ports or {},
            "created_at": isoformat(c.created_at), "observed_at": isoformat(c.observed_at),
            "stopped_reason": c.stopped_reason, "exit_code": c.exit_code}


def _event_fields(c: Container) -> dict:
    return {"container_id": c.id, "container_name": c.name, "user_id": c.user_id,
            "server_id": c.server_id}


def action(c: Container, kind: str, from_server: int | None, to_server: int | None,
           error: str | None = None) -> dict:
    row = {"container_id": c.id, "container_name": c.name, "action": kind,
           "from_server_id": from_server, "to_server_id": to_server}
    if error:
        row["error"] = error
    return row


class Fleet(ServerAdmin):
    """Domain operations. ``sessions`` makes SQLAlchemy sessions; ``record(session, event)``
    puts an event in the service's outbox (same transaction)."""

    def __init__(self, sessions, pool: EnginePool, record: Callable, *, stop_timeout: int = 3,
                 ping_timeout: float = 2.0, now: Callable[[], dt.datetime] = utcnow,
                 backoff: Backoff = Backoff(), memo: dict | None = None):
        self.sessions = sessions
        self.pool = pool
        self.ops = EngineOps(pool, self.installation, stop_timeout)
        self.backoff = backoff
        self.memo = {} if memo is None else memo  # kept by the caller across Fleets
        self.record = record
        self.ping_timeout = ping_timeout
        self.now = now

    def installation(self) -> str:
        """This installation's key (``berth.managed`` on every copy), made on first use."""
        if "installation" not in self.memo:
            with self.sessions() as session:
                key = session.scalar(select(Installation.key).where(Installation.id == 1))
                if key is None:
                    try:
                        session.add(Installation(id=1, key=uuid.uuid4().hex))
                        session.commit()
                    except IntegrityError:  # another replica made it first
                        session.rollback()
                    key = session.scalar(select(Installation.key).where(Installation.id == 1))
            self.memo["installation"] = key
        return self.memo["installation"]

    # --- servers ---------------------------------------------------------------------------

    def _server(self, session, server_id: int) -> Server:
        server = session.get(Server, server_id)
        if server is None:
            raise NotFound(f"Server {server_id} not found")
        return server

    def _load(self, session) -> dict[int, int]:
        return dict(session.execute(select(Container.server_id, func.count(Container.id))
                                    .group_by(Container.server_id)).all())

    def servers(self) -> list[dict]:
        with self.sessions() as session:
            load = self._load(session)
            return [server_row(s, load.get(s.id, 0))
                    for s in session.scalars(select(Server).order_by(Server.id))]

    def server(self, server_id: int) -> dict:
        with self.sessions() as session:
            server = self._server(session, server_id)
            return server_row(server, self._load(session).get(server_id, 0))

    def probe(self, server_id: int) -> None:
        """Ping one engine (short timeout) and record what was seen."""
        with self.sessions() as session:
            endpoint = Endpoint.of(self._server(session, server_id))
        try:
            version, error = self.pool.ping(endpoint, self.ping_timeout), None
        except Exception as exc:  # noqa: BLE001 - any failure is "did not answer"
            version, error = None, _reason(exc)
        self.record_probe(server_id, error is None, version, error)

    def probe_all(self) -> list[dict]:
        """Ping every engine at once, then return every server's row."""
        with self.sessions() as session:
            ids = list(session.scalars(select(Server.id).order_by(Server.id)))
        pool = eventlet.GreenPool(max(1, min(len(ids), 50)))
        for server_id in ids:
            pool.spawn_n(self.probe, server_id)
        pool.waitall()
        return self.servers()

    def record_probe(self, server_id: int, ok: bool, version: str | None,
                     error: str | None) -> Event | None:
        """Store a probe's result; a change of status is one event, whichever replica (or
        concurrent probe) sees it first: the status UPDATE is conditional."""
        now = self.now()
        with self.sessions() as session:
            server = self._server(session, server_id)
            status, down_since, last_seen = server.status, server.down_since, server.last_seen_at
            values = {"last_checked_at": now}
            values.update({"last_seen_at": now, "engine_version": version, "last_error": None}
                          if ok else {"last_error": (error or "")[:500]})
            session.execute(update(Server).where(Server.id == server_id).values(**values))
            event = None
            fields = {"server_id": server.id, "server_name": server.name,
                      "ip_address": server.ip_address}
            if ok and status == "offline":
                if _transition(session, server_id, "offline", status="online", down_since=None):
                    if down_since is not None:
                        event = ServerCameBack.new(**fields, down_since=isoformat(down_since))
            elif not ok and status == "online":
                if _transition(session, server_id, "online", status="offline", down_since=now):
                    event = ServerWentDown.new(**fields, last_seen_at=isoformat(last_seen),
                                               reason=(error or "no answer")[:300],
                                               maintenance=server.maintenance)
            elif not ok and down_since is None:  # never online: down since first seen down
                session.execute(update(Server).where(Server.id == server_id,
                                                     Server.down_since.is_(None))
                                .values(down_since=now))
            if event is not None:
                self.record(session, event)
                log.warning("server %s (%d) %s", server.name, server_id, event.TYPE)
            session.commit()
        return event

    def ha_health(self) -> dict:
        rows = self.probe_all()
        usable = [r for r in rows if not r["maintenance"]]
        online = [r for r in usable if r["status"] == "online"]
        if usable and len(online) == len(usable):
            status = "healthy"
        elif online:
            status = "degraded"
        else:
            status = "unhealthy"
        return {"status": status, "servers": rows, "online": len(online),
                "offline": len(usable) - len(online)}

    def server_health(self, server_id: int) -> dict:
        self.probe(server_id)
        row = self.server(server_id)
        health = "maintenance" if row["maintenance"] else \
            {"online": "healthy"}.get(row["status"], "unhealthy")
        return {"server_id": server_id, "status": health, "server_status": row["status"],
                "last_seen_at": row["last_seen_at"], "server_name": row["server_name"],
                "ip_address": row["ip_address"], "last_error": row["last_error"],
                "down_since": row["down_since"], "added_at": row["added_at"],
                "maintenance": row["maintenance"]}

    # --- containers ------------------------------------------------------------------------

    def _by_name(self, session, name: str) -> Container:
        container = session.scalar(select(Container).where(Container.name == name))
        if container is None:
            raise NotFound(f"Container {name} not found")
        return container

    def _by_id(self, session, container_id: int) -> Container:
        container = session.get(Container, container_id)
        if container is None:
            raise NotFound(f"Container {container_id} not found")
        return container

    def _owned(self, session, actor: Actor, name: str) -> Container:
        container = self._by_name(session, name)
        if not actor.is_admin and container.user_id != actor.user_id:
            raise Forbidden("You may only access your own containers")
        return container

    def _place(self, session, server_id: int | None, exclude: set[int] = frozenset()
               ) -> Server:
        if server_id is not None:
            server = self._server(session, server_id)
            if server.maintenance:
                raise Conflict(f"Server {server.name} is in maintenance")
            if server.status != "online":
                raise ServiceUnavailable(f"Docker host {server.name} is offline")
            return server
        online = session.scalars(select(Server.id).where(*PLACEABLE)).all()
        load = self._load(session)
        chosen = placement.least_loaded({sid: load.get(sid, 0) for sid in online}, exclude)
        if chosen is None:
            raise ServiceUnavailable("No healthy server is available")
        return session.get(Server, chosen)

    def create(self, actor_id: int, owner_id: int, body) -> dict:
        """Reserve the name (row ``creating``), create and start the copy, then mark it
        running. Any failure removes both, so nothing is left half-created."""
        with self.sessions() as session:
            server = self._place(session, body.server_id)
            if session.scalar(select(Container.id).where(
                    Container.name == body.container_name)):
                raise Conflict(f"Container name {body.container_name} is already taken")
            container = Container(
                name=body.container_name, user_id=owner_id, server_id=server.id,
                image=body.image, command=_command(body.command),
                environment=body.environment or {}, ports=body.ports or {},
                status="creating", desired_state="running", generation=1)
            session.add(container)
            endpoint, ip_address = Endpoint.of(server), server.ip_address
            try:
                session.commit()
            except IntegrityError:  # the name was taken, or the server deleted, meanwhile
                session.rollback()
                if session.get(Server, endpoint.server_id) is None:
                    raise Conflict(f"Server {endpoint.name} was deleted while the container "
                                   f"was being placed; try again") from None
                raise Conflict(f"Container name {body.container_name} is already taken") \
                    from None
        try:
            engine_id = self.ops.create(endpoint, ip_address, container, 1, container.name,
                                        start=True)
        except Exception:
            with self.sessions() as session:
                session.execute(delete(Container).where(Container.id == container.id))
                session.commit()
            raise
        with self.sessions() as session:
            container = session.get(Container, container.id)
            container.engine_id, container.status = engine_id, "running"
            container.observed_at = self.now()
            self.record(session, ContainerCreated.new(**_event_fields(container),
                                                      image=container.image,
                                                      actor_id=actor_id))
            session.commit()
        log.info("container %s (%d) created on %s", container.name, container.id,
                 endpoint.name)
        return {"message": "Container created successfully", "container_id": container.id,
                "container_name": container.name, "server_id": server.id,
                "status": "running"}

    def listing(self, actor: Actor, query) -> dict:
        with self.sessions() as session:
            statement = select(Container)
            if not actor.is_admin:
                statement = statement.where(Container.user_id == actor.user_id)
            elif query.user_id is not None:
                statement = statement.where(Container.user_id == query.user_id)
            if query.server_id is not None:
                statement = statement.where(Container.server_id == query.server_id)
            total = session.scalar(select(func.count()).select_from(statement.subquery()))
            rows = session.scalars(statement.order_by(Container.id)
                                   .limit(query.limit).offset(query.offset))
            return {"containers": [container_row(c) for c in rows], "total": total}

    def status(self, actor: Actor, name: str) -> dict:
        """The engine's view now (503 if the engine does not answer)."""
        with self.sessions() as session:
            container = self._owned(session, actor, name)
            server = session.get(Server, container.server_id)
            endpoint = Endpoint.of(server)
        if container.status == "creating":
            status, exit_code = "creating", None
        else:
            status, exit_code = self.ops.state(endpoint, container.engine_id)
        row = container_row(container)
        row.update(status=status, exit_code=exit_code, server_name=server.name,
                   server_status=server.status)
        return row

    def info(self, container_id: int) -> dict:
        """The row, with what the alerts check needs: ``died_at`` (an open incident) and
        whether its server is in ``maintenance``."""
        with self.sessions() as session:
            container = self._by_id(session, container_id)
            server = session.get(Server, container.server_id)
            return {**container_row(container), "died_at": isoformat(container.died_at),
                    "maintenance": bool(server is not None and server.maintenance)}

    def stop(self, actor: Actor, name: str) -> dict:
        """Record the wish first, then stop the copy: the reconciler never mistakes a stop
        in progress for a crash. An unreachable engine is a 503 before anything changes."""
        with self.sessions() as session:
            container = self._owned(session, actor, name)
            if container.status == "creating":
                raise Conflict(f"Container {name} is still being created")
            endpoint = Endpoint.of(session.get(Server, container.server_id))
        self.pool.ping(endpoint, self.ping_timeout)
        reason = "owner" if container.user_id == actor.user_id else "admin"
        stopped = self._stop(container.id, reason, actor.user_id)
        if not stopped:
            raise ServiceUnavailable(f"Docker host {endpoint.name} did not stop the container;"
                                     f" Berth will stop it when the host answers")
        return {"message": "Container stopped successfully", "container_id": container.id,
                "status": "stopped"}

    def _stop(self, container_id: int, reason: str, actor_id: int | None = None) -> bool:
        with self.sessions() as session:
            container = session.get(Container, container_id)
            was_running = container.desired_state == "running"
            container.desired_state, container.stopped_reason = "stopped", reason
            container.died_at, container.restarts, container.restarted_at = None, 0, None
            container.deaths = 0  # a stop ends an open incident (container_stopped says so)
            if was_running:
                self.record(session, ContainerStopped.new(
                    **_event_fields(container), reason=reason, actor_id=actor_id))
            session.commit()
            endpoint = Endpoint.of(session.get(Server, container.server_id))
        try:
            if container.engine_id:
                self.ops.stop(endpoint, container.engine_id)
        except (EngineUnavailable, ServiceUnavailable) as exc:
            log.warning("stop of %s deferred: %s", container.name, exc)
            return False
        self._observe(container_id, "stopped" if container.engine_id else "missing")
        return True

    def _start(self, container_id: int, reason: str) -> bool:
        with self.sessions() as session:
            container = session.get(Container, container_id)
            container.desired_state, container.stopped_reason = "running", None
            self.record(session, ContainerStarted.new(**_event_fields(container),
                                                      reason=reason))
            session.commit()
            endpoint = Endpoint.of(session.get(Server, container.server_id))
        if not container.engine_id:
            return False
        try:
            self.ops.start(endpoint, container.engine_id)
        except Exception as exc:  # noqa: BLE001 - the reconciler retries on the next tick
            log.warning("start of %s deferred: %s", container.name, _reason(exc))
            return False
        self._observe(container_id, "running")
        return True

    def _observe(self, container_id: int, status: str, exit_code: int | None = None) -> None:
        with self.sessions() as session:
            session.execute(update(Container).where(Container.id == container_id).values(
                status=status, exit_code=exit_code, observed_at=self.now()))
            session.commit()

    def stop_for_rental(self, user_id: int) -> list[int]:
        """The user's rental expired: stop every container of theirs that runs."""
        with self.sessions() as session:
            ids = list(session.scalars(select(Container.id).where(
                Container.user_id == user_id, Container.desired_state == "running",
                Container.status != "creating")))
        for container_id in ids:
            self._stop(container_id, "rental_expired")
        return ids

    def start_for_rental(self, user_id: int, reason: str) -> list[int]:
        """The rental runs again: start what expiry stopped (not what people stopped)."""
        with self.sessions() as session:
            ids = list(session.scalars(select(Container.id).where(
                Container.user_id == user_id, Container.desired_state == "stopped",
                Container.stopped_reason == "rental_expired")))
        for container_id in ids:
            self._start(container_id, reason)
        return ids

    def delete(self, actor_id: int, name: str) -> dict:
        """Remove the row, then the copy; a copy on an unreachable host is removed as stale
        when the host returns."""
        with self.sessions() as session:
            container = self._by_name(session, name)
            server = session.get(Server, container.server_id)
            self.record(session, ContainerRemoved.new(**_event_fields(container),
                                                      actor_id=actor_id))
            session.delete(container)
            session.commit()
        removed = False
        if container.engine_id:
            try:
                self.ops.remove(Endpoint.of(server), container.engine_id)
                removed = True
            except (EngineUnavailable, ServiceUnavailable) as exc:
                log.warning("copy of deleted container %s left for later: %s", name, exc)
        return {"message": "Container deleted successfully", "container_id": container.id,
                "engine_copy_removed": removed}

    def require_free_name(self, name: str) -> None:
        with self.sessions() as session:
            if session.scalar(select(Container.id).where(Container.name == name)):
                raise Conflict(f"Container name {name} is already taken")

    def rename(self, name: str, new_name: str) -> int:
        """Rename in place (the copy too); returns the container's id."""
        self.require_free_name(new_name)
        with self.sessions() as session:
            container = self._by_name(session, name)
            endpoint = Endpoint.of(session.get(Server, container.server_id))
        if container.engine_id:
            self.ops.rename(endpoint, container.engine_id, new_name)
        with self.sessions() as session:
            session.execute(update(Container).where(Container.id == container.id)
                            .values(name=new_name))
            try:
                session.commit()
            except Exception:
                if container.engine_id:
                    self.ops.rename(endpoint, container.engine_id, name)
                raise
        return container.id

    def container_id_for(self, name: str) -> int:
        with self.sessions() as session:
            return self._by_name(session, name).id

    # --- recreating: update, replace and every HA operation ----------------------------------

    def recreate(self, container_id: int, reason: str, target_id: int | None = None,
                 changes: dict | None = None) -> dict:
        """Build the next generation of a container from its stored spec (with ``changes``)
        on ``target_id`` (default: its own server if online, else the least-loaded one).

        On its own server the old copy is renamed aside, the new one created, and the old
        one removed only once the new one runs; any failure puts the old one back. On another
        server the new copy is made first, then the old one removed if its host answers (if
        not, the reconciler removes it, as stale, when the host returns).
        """
        with self.sessions() as session:
            container = self._by_id(session, container_id)
            if container.status == "creating":
                raise Conflict(f"Container {container.name} is still being created")
            source = session.get(Server, container.server_id)
            if target_id is None and source.status == "online":
                target = source
            else:
                target = self._place(session, target_id, exclude={source.id})
        spec = _Spec.of(container, changes or {})
        generation = container.generation + 1
        want_running = container.desired_state == "running"
        src, dst = Endpoint.of(source), Endpoint.of(target)
        old_id = container.engine_id
        if target.id == source.id:
            new_id = self._recreate_in_place(src, target.ip_address, spec, generation, old_id,
                                             container.name, want_running)
        else:
            new_id = self.ops.create(dst, target.ip_address, spec, generation, spec.name,
                                     start=want_running)
            if old_id:
                try:
                    self.ops.remove(src, old_id)
                except (EngineUnavailable, ServiceUnavailable):
                    log.info("old copy of %s stays on %s until it answers", spec.name,
                             source.name)
        with self.sessions() as session:
            row = session.get(Container, container_id)
            if row is None:  # deleted meanwhile: its new copy must not outlive it
                try:
                    self.ops.remove(dst, new_id)
                except Exception:  # noqa: BLE001 - the reconciler removes it as stale
                    log.warning("could not remove the new copy of deleted %s", spec.name)
                raise Conflict(f"Container {spec.name} was deleted while being recreated")
            row.name, row.image, row.command = spec.name, spec.image, spec.command
            row.environment, row.ports = spec.environment, spec.ports
            row.server_id, row.engine_id, row.generation = target.id, new_id, generation
            row.status = "running" if want_running else "stopped"
            row.observed_at, row.exit_code = self.now(), None
            row.restarts, row.restarted_at = 0, None  # a new copy starts with a clean slate
            if row.died_at is not None and want_running:
                # an open incident stays open: supervision ends it (container_recovered)
                # once the new copy has stayed up for the backoff's stable_after
                row.restarted_at = self.now()
            self.record(session, ContainerMoved.new(**_event_fields(row),
                                                    from_server_id=source.id, reason=reason))
            session.commit()
        log.info("container %s recreated (generation %d, %s) on %s", spec.name, generation,
                 reason, target.name)
        return {"container_id": container_id, "container_name": spec.name,
                "server_id": target.id, "from_server_id": source.id,
                "old_engine_id": old_id, "engine_id": new_id}

    def _recreate_in_place(self, endpoint: Endpoint, ip_address: str, spec, generation: int,
                           old_id: str | None, old_name: str, want_running: bool) -> str:
        aside = f"{old_name}-berth-g{generation - 1}"
        old_status = "missing"
        if old_id:
            old_status, _ = self.ops.state(endpoint, old_id)
        if old_status != "missing":
            self.ops.rename(endpoint, old_id, aside)

        def restore():
            if old_status != "missing":
                self.ops.rename(endpoint, old_id, old_name)
                if old_status == "running":
                    self.ops.start(endpoint, old_id)

        try:
            new_id = self.ops.create(endpoint, ip_address, spec, generation, spec.name,
                                     start=False)
        except Exception:
            restore()
            raise
        if old_status == "running":
            self.ops.stop(endpoint, old_id)
        if want_running:
            try:
                self.ops.start(endpoint, new_id)
            except Exception:
                self.ops.remove(endpoint, new_id)
                restore()
                raise
        if old_status != "missing":
            self.ops.remove(endpoint, old_id)
        return new_id

    MOVES_AT_ONCE = 8  # recreates in flight together (engines create in parallel well)

    def _each(self, plan: list[tuple[Container, int | None]], reason: str, kind: str
              ) -> list[dict]:
        """Recreate each planned container on its target, several at once; each outcome is
        reported, and one failure does not stop the others."""
        def one(step: tuple[Container, int | None]) -> dict:
            container, target_id = step
            try:
                done = self.recreate(container.id, reason, target_id)
                return action(container, kind, done["from_server_id"], done["server_id"])
            except Exception as exc:  # noqa: BLE001 - reported per container, others go on
                log.warning("%s of %s failed: %s", reason, container.name, _reason(exc))
                return action(container, "failed", container.server_id, target_id,
                              _reason(exc))
        return list(eventlet.GreenPool(self.MOVES_AT_ONCE).imap(one, plan))

    def failover(self, only_down_for: dt.timedelta | None = None) -> list[dict]:
        """Recreate the containers of offline servers on the least-loaded online ones (not in
        maintenance). Servers in maintenance are left alone, by the automatic failover
        (``only_down_for``) and the manual one: their downtime is planned, and drain is the
        tool that moves their containers."""
        with self.sessions() as session:
            query = select(Server.id).where(Server.status == "offline",
                                            Server.maintenance.is_(False))
            if only_down_for is not None:
                query = query.where(Server.down_since <= self.now() - only_down_for)
            offline = list(session.scalars(query))
            moving = session.scalars(
                select(Container).where(Container.server_id.in_(offline),
                                        Container.status != "creating")
                .order_by(Container.desired_state, Container.id)).all() if offline else []
            online = session.scalars(select(Server.id).where(*PLACEABLE)).all()
            load = self._load(session)
            load = {server_id: load.get(server_id, 0) for server_id in online}
        plan = []  # targets chosen up front, so moves made at once still spread evenly
        for container in moving:
            target = placement.least_loaded(load)
            if target is not None:
                load[target] += 1
            plan.append((container, target))
        return self._each(plan, "failover", "moved")

    def load_balance(self) -> list[dict]:
        """Even out container counts across online servers outside maintenance (stopped
        containers move first)."""
        with self.sessions() as session:
            online = list(session.scalars(select(Server.id).where(*PLACEABLE)
                                          .order_by(Server.id)))
            rows = session.scalars(select(Container).where(
                Container.server_id.in_(online), Container.status != "creating")
                .order_by(Container.desired_state.desc(), Container.id.desc())).all()
        assignments = {sid: [c.id for c in rows if c.server_id == sid] for sid in online}
        by_id = {c.id: c for c in rows}
        plan = [(by_id[cid], to) for cid, _from, to in placement.balance_moves(assignments)]
        return self._each(plan, "load_balance", "moved")

    def disaster_recovery(self) -> list[dict]:
        """Every container that should run but that no engine runs: start the copy if it
        exists, recreate it if its engine lacks it, move it if its server is offline."""
        with self.sessions() as session:
            servers = {s.id: s for s in session.scalars(select(Server))}
            wanted = session.scalars(select(Container).where(
                Container.desired_state == "running", Container.status != "creating")
                .order_by(Container.id)).all()
        actions = []
        for container in wanted:
            server = servers[container.server_id]
            if server.status != "online":
                actions += self._each([(container, None)], "disaster_recovery", "moved")
                continue
            try:
                status, _ = self.ops.state(Endpoint.of(server), container.engine_id)
            except (EngineUnavailable, ServiceUnavailable) as exc:
                actions.append(action(container, "failed", server.id, None, _reason(exc)))
                continue
            if status == "running":
                continue
            if status == "missing":
                actions += self._each([(container, server.id)], "disaster_recovery",
                                      "recreated")
                continue
            try:
                self.ops.start(Endpoint.of(server), container.engine_id)
                self._observe(container.id, "running")
                actions.append(action(container, "started", server.id, server.id))
            except Exception as exc:  # noqa: BLE001
                actions.append(action(container, "failed", server.id, server.id,
                                      _reason(exc)))
        return actions

    def replace(self, container_id: int) -> dict:
        done = self.recreate(container_id, "replace")
        return {"message": "Docker container replaced successfully", **done}

    # --- supervision -----------------------------------------------------------------------

    def reconcile(self) -> dict:
        """Compare every online engine with the database (see the module's docstring)."""
        with self.sessions() as session:
            servers = session.scalars(select(Server).where(Server.status == "online")).all()
            self._drop_abandoned_creates(session)
        results = list(eventlet.GreenPool(max(1, min(len(servers), 50))).imap(
            self._reconcile_server, servers))
        return {"servers": len(servers), "stale_removed": sum(r[0] for r in results),
                "restarted": sum(r[1] for r in results)}

    def _drop_abandoned_creates(self, session) -> None:
        cutoff = self.now() - STUCK_AFTER
        stuck = session.execute(delete(Container).where(
            Container.status == "creating", Container.created_at < cutoff)).rowcount
        if stuck:
            log.warning("dropped %d container rows abandoned while creating", stuck)
        session.commit()

    def _reconcile_server(self, server: Server) -> tuple[int, int]:
        endpoint = Endpoint.of(server)
        try:
            copies = self.pool.managed(endpoint, self.installation())  # engine, then db
        except Exception as exc:  # noqa: BLE001 - the next probe marks it offline
            log.warning("reconcile: %s did not answer: %s", server.name, _reason(exc))
            return 0, 0
        ids = {_label_int(c, LABEL_CONTAINER_ID) for c in copies} - {None}
        with self.sessions() as session:
            rows = {c.id: c for c in session.scalars(select(Container).where(
                (Container.server_id == server.id) | Container.id.in_(ids)))}
        current, stale = {}, 0
        now_epoch = self.now().timestamp()
        for copy in copies:
            if _label_int(copy, LABEL_SERVER_ID) != server.id:
                continue  # another server row points at this engine: not ours to judge
            row = rows.get(_label_int(copy, LABEL_CONTAINER_ID))
            generation = _label_int(copy, LABEL_GENERATION) or 0
            if row is not None and row.server_id == server.id and row.status == "creating":
                continue
            if row is not None and row.server_id == server.id and \
                    generation == row.generation:
                current[row.id] = copy
                continue
            newer = row is not None and generation > row.generation
            if newer and now_epoch - (copy.get("Created") or 0) < STUCK_AFTER.total_seconds():
                continue  # a recreate in flight
            try:
                self.ops.remove(endpoint, copy["Id"])
                stale += 1
                log.warning("removed stale copy %s (container %s, generation %s) from %s",
                            copy["Id"][:12], row.id if row else "deleted", generation,
                            server.name)
            except Exception as exc:  # noqa: BLE001
                log.warning("could not remove stale copy %s: %s", copy["Id"][:12],
                            _reason(exc))
        restarted = 0
        for row in rows.values():
            if row.server_id != server.id or row.status == "creating":
                continue
            restarted += self._supervise(endpoint, row, current.get(row.id),
                                         server.maintenance)
        return stale, restarted

    def _supervise(self, endpoint: Endpoint, row: Container, copy: dict | None,
                   maintenance: bool = False) -> int:
        """One container on one tick. A container that should run but does not opens an
        incident, reported once (``container_died``; later deaths in it only count in
        ``deaths``), and is started again: at once the first time, then on the backoff
        while it keeps dying. The incident ends (``container_recovered``) only once the
        container has stayed up for the backoff's ``stable_after``: a crash loop is one
        incident."""
        observed = berth_state(copy.get("State")) if copy else "missing"
        exit_code = exit_code_of(copy) if copy and observed == "stopped" else None
        events, restarted = [], 0
        now = self.now()
        died_at, deaths = row.died_at, row.deaths
        restarts, restarted_at = row.restarts, row.restarted_at
        if row.desired_state == "running" and observed != "running":
            if died_at is None:
                events.append(ContainerDied.new(**_event_fields(row), status=observed,
                                                exit_code=exit_code, maintenance=maintenance))
                log.warning("container %s is %s (exit code %s)", row.name, observed,
                            exit_code)
                died_at, deaths = now, 1
            elif row.status in ("running", "restarting"):  # up again since, and died again
                deaths += 1
            if observed == "stopped" and self.backoff.due(restarts, restarted_at, now):
                try:
                    self.ops.start(endpoint, copy["Id"])
                    restarted = 1
                except Exception as exc:  # noqa: BLE001 - tried again on the next tick
                    log.warning("could not restart %s: %s", row.name, _reason(exc))
                restarts, restarted_at = restarts + 1, now  # a failed start counts too
                if restarts > 1:
                    log.warning("container %s restarted %d times since it last stayed up",
                                row.name, restarts)
        elif row.desired_state == "stopped" and observed in ("running", "restarting"):
            try:
                self.ops.stop(endpoint, copy["Id"])
                observed = "stopped"
            except Exception as exc:  # noqa: BLE001
                log.warning("could not stop %s: %s", row.name, _reason(exc))
            died_at, deaths, restarts, restarted_at = None, 0, 0, None
        elif observed == "running" and self.backoff.stable(restarted_at, now):
            if died_at is not None:
                events.append(ContainerRecovered.new(**_event_fields(row)))
                log.info("container %s recovered after %d deaths", row.name, deaths)
            died_at, deaths, restarts, restarted_at = None, 0, 0, None
        if restarted:
            observed = "restarting"  # the next tick tells if it held
        with self.sessions() as session:
            values = {"status": observed, "exit_code": exit_code, "observed_at": now,
                      "died_at": died_at, "deaths": deaths,
                      "engine_id": copy["Id"] if copy else row.engine_id,
                      "restarts": restarts, "restarted_at": restarted_at}
            changed = session.execute(update(Container).where(
                Container.id == row.id, Container.generation == row.generation,
                Container.server_id == row.server_id,
                Container.desired_state == row.desired_state).values(**values)).rowcount
            if changed:  # else a user or a recreate changed it meanwhile: theirs wins
                for event in events:
                    self.record(session, event)
            session.commit()
        return restarted

    # --- for other services ------------------------------------------------------------------

    def sampling_targets(self) -> dict:
        """What the traffic sampler reads: online servers (how to reach their engines) and
        the containers on them that have an engine copy, with their owners."""
        with self.sessions() as session:
            servers = session.scalars(select(Server).where(Server.status == "online")
                                      .order_by(Server.id)).all()
            rows = session.scalars(select(Container).where(
                Container.server_id.in_([s.id for s in servers]),
                Container.engine_id.is_not(None)).order_by(Container.id)).all()
        return {"servers": [{"server_id": s.id, "server_name": s.name,
                             "docker_url": s.docker_url, "tls_ca_cert": s.tls_ca_cert,
                             "tls_client_cert": s.tls_client_cert,
                             "tls_client_key": s.tls_client_key} for s in servers],
                "containers": [{"container_id": c.id, "container_name": c.name,
                                "user_id": c.user_id, "server_id": c.server_id,
                                "engine_id": c.engine_id, "status": c.status} for c in rows]}

    def fleet_summary(self) -> dict:
        """What the alerts service sweeps: every server, and the containers not as desired.
        A container in an open incident (``died_at`` set) is listed even while it runs
        between two crashes: until it has stayed up, the incident is not over."""
        servers = self.servers()
        in_maintenance = {s["server_id"] for s in servers if s["maintenance"]}
        with self.sessions() as session:
            by_status = dict(session.execute(select(Container.status, func.count())
                                             .group_by(Container.status)).all())
            off = session.scalars(select(Container).where(
                ((Container.desired_state == "running") & (Container.status != "running")
                 & (Container.status != "creating"))
                | ((Container.desired_state == "running") & Container.died_at.is_not(None))
                | ((Container.desired_state == "stopped") & (Container.status == "running")))
                .order_by(Container.id).limit(200))
            return {"servers": servers,
                    "containers": {"total": sum(by_status.values()), "by_status": by_status,
                                   "not_as_desired": [
                                       {"container_id": c.id, "container_name": c.name,
                                        "status": c.status, "desired_state": c.desired_state,
                                        "server_id": c.server_id,
                                        "maintenance": c.server_id in in_maintenance,
                                        "died_at": isoformat(c.died_at),
                                        "deaths": c.deaths, "restarts": c.restarts}
                                       for c in off]}}


@dataclass
class _Spec:
    """What a copy is built from: the row's spec with an update's changes applied."""
    id: int
    user_id: int
    name: str
    image: str
    command: list | None
    environment: dict
    ports: dict

    @classmethod
    def of(cls, c: Container, changes: dict) -> _Spec:
        return cls(id=c.id, user_id=c.user_id, name=changes.get("container_name") or c.name,
                   image=changes.get("image") or c.image,
                   command=_command(changes["command"]) if "command" in changes else c.command,
                   environment=changes.get("environment", c.environment) or {},
                   ports=changes.get("ports", c.ports) or {})


def _command(command) -> list | None:
    """The stored form of a command: a list of arguments (a string is split like a shell)."""
    if command is None:
        return None
    if isinstance(command, str):
        return shlex.split(command)
    return list(command)


def _transition(session, server_id: int, expected: str, **values) -> bool:
    return session.execute(update(Server).where(Server.id == server_id,
                                                Server.status == expected)
                           .values(**values)).rowcount == 1


def _label_int(copy: dict, label: str) -> int | None:
    try:
        return int((copy.get("Labels") or {}).get(label))
    except (TypeError, ValueError):
        return None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
