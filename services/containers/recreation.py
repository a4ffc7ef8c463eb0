"""Recreating containers: update, replace, and every HA operation: failover, load balance,
disaster recovery and drain (no nameko).

``Recreation`` is mixed into ``Fleet`` (services.containers.fleet). Whatever recreates a
container builds a new copy with the next generation, then points the row at it; the
reconciler removes the older copies (services.containers.supervision). The callers hold the
``containers-fleet`` lease, so one replica moves containers at a time.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from berth.concurrency import Pool
from berth.docker.engines import Endpoint, EngineUnavailable
from berth.errors import Conflict, ServiceUnavailable
from berth.events import ContainerMoved
from berth.settings import get_settings
from services.containers import placement
from services.containers.models import Container, Server
from services.containers.servers import PLACEABLE, flag_maintenance
from services.containers.shapes import action, event_fields, failure_reason, stored_command

log = logging.getLogger(__name__)


@dataclass
class Spec:
    """What a copy is built from: the row's spec with an update's changes applied."""
    id: int
    user_id: int
    name: str
    image: str
    command: list | None
    environment: dict
    ports: dict
    limits: dict | None = None  # the plan's, fixed at creation (engine_ops.Confinement)

    @classmethod
    def of(cls, c: Container, changes: dict) -> Spec:
        return cls(id=c.id, user_id=c.user_id, name=changes.get("container_name") or c.name,
                   image=changes.get("image") or c.image,
                   command=stored_command(changes["command"]) if "command" in changes
                   else c.command,
                   environment=changes.get("environment", c.environment) or {},
                   ports=changes.get("ports", c.ports) or {}, limits=c.limits)


class Recreation:
    """Building a container's next generation, and the HA operations made of that (a mixin
    of ``Fleet``)."""

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
            else:  # another host: it must hold the container's limits
                target = self._place(session, target_id, exclude={source.id},
                                     needs=self._needs(container))
        spec = Spec.of(container, changes or {})
        generation = container.generation + 1
        want_running = container.desired_state == "running"
        src, dst = Endpoint.of(source), Endpoint.of(target)
        old_id = container.engine_id
        if target.id == source.id:
            new_id = self._recreate_in_place(src, target.ip_address, spec, generation, old_id,
                                             container.name, want_running)
        else:
            try:
                new_id = self.ops.create(dst, target.ip_address, spec, generation, spec.name,
                                         start=want_running)
            except Exception:
                self.ops.discard_copies(dst, container_id, generation)
                raise
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
            self.record(session, ContainerMoved.new(**event_fields(row),
                                                    from_server_id=source.id, reason=reason))
            session.commit()
        log.info("container %s recreated (generation %d, %s) on %s", spec.name, generation,
                 reason, target.name)
        return {"container_id": container_id, "container_name": spec.name,
                "server_id": target.id, "from_server_id": source.id,
                "old_engine_id": old_id, "engine_id": new_id}

    def update(self, name: str, changes: dict, exclusive: Callable) -> dict:
        """Apply an update's ``changes`` (the fields it set). A rename alone renames in place;
        anything else recreates the container under ``exclusive()`` (the fleet lease). The
        container keeps its limits (``Container.limits``): new ports are held to the plan's
        ports per container it was created under."""
        changes = dict(changes)
        new_name = changes.get("container_name")
        if new_name == name:
            changes.pop("container_name")
        if set(changes) <= {"container_name"}:
            if new_name and new_name != name:
                container_id = self.rename(name, new_name)
            else:
                container_id = self.container_id_for(name)  # 404 for an unknown name
            return {"container_id": container_id, "container_name": new_name or name,
                    "recreated": False}
        container_id = self.container_id_for(name)
        if new_name:
            self.require_free_name(new_name)
        if "ports" in changes:  # the owner's plan's ports per container, fixed at creation
            self.hold_ports(name, changes["ports"])
        with exclusive():
            done = self.recreate(container_id, "update", changes=changes)
        return {"recreated": True, **done}

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
            self.ops.discard_copies(endpoint, spec.id, generation)
            restore()
            raise
        try:  # anything failing from here removes the new copy and puts the old one back
            if old_status == "running":
                self.ops.stop(endpoint, old_id)
            if want_running:
                self.ops.start(endpoint, new_id)
        except Exception:
            try:
                self.ops.remove(endpoint, new_id)
            except Exception:  # noqa: BLE001 - a newer copy with no row is the reconciler's
                log.warning("could not remove the new copy of %s", spec.name)
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
                log.warning("%s of %s failed: %s", reason, container.name, failure_reason(exc))
                return action(container, "failed", container.server_id, target_id,
                              failure_reason(exc))
        return Pool(self.MOVES_AT_ONCE).map(one, plan)

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
            online = session.scalars(select(Server).where(*PLACEABLE)).all()
            load = self._load(session)
        return self._each(self._targets(moving, online, load), "failover", "moved")

    def _needs(self, container) -> tuple[float, int]:
        """The CPUs and MiB a copy of ``container`` asks of its host."""
        settings = get_settings()
        return placement.needs_of(container.limits, settings.container_cpus,
                                  settings.container_memory_mib)

    def _targets(self, moving: list[Container], servers: list[Server],
                 load: dict[int, int]) -> list[tuple[Container, int | None]]:
        """Each container's target, chosen up front so moves made at once still spread
        evenly: the least-loaded of ``servers`` that holds its limits (None: none does; its
        recreate then says why)."""
        load = {s.id: load.get(s.id, 0) for s in servers}
        plan = []
        for container in moving:
            needs = self._needs(container)
            fitting = {s.id: load[s.id] for s in servers
                       if not placement.misfits(needs, s.cpus, s.memory_mib, s.name)}
            target = placement.least_loaded(fitting)
            if target is not None:
                load[target] += 1
            plan.append((container, target))
        return plan

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
        with self.sessions() as session:
            size = {s.id: s for s in session.scalars(select(Server).where(
                Server.id.in_(online)))}
        plan = [(by_id[cid], to) for cid, _from, to in placement.balance_moves(assignments)
                if not placement.misfits(self._needs(by_id[cid]), size[to].cpus,
                                         size[to].memory_mib, size[to].name)]
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
                actions.append(action(container, "failed", server.id, None, failure_reason(exc)))
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
                                      failure_reason(exc)))
        return actions

    def drain(self, server_id: int, actor_id: int | None) -> dict:
        """Maintenance on, then every container moved to the least-loaded eligible servers
        (online, not in maintenance), as failover moves them."""
        with self.sessions() as session:
            server = self._server(session, server_id)
            moving = session.scalars(
                select(Container).where(Container.server_id == server_id,
                                        Container.status != "creating")
                .order_by(Container.desired_state, Container.id)).all()
            targets = session.scalars(select(Server).where(
                Server.status == "online", Server.maintenance.is_(False),
                Server.id != server_id)).all()
            if moving and not targets:
                raise Conflict(f"No other server is online and out of maintenance to take "
                               f"the containers of {server.name}")
            _, event = flag_maintenance(session, server_id, True, actor_id)
            if event is not None:
                self.record(session, event)
            session.commit()
            load = self._load(session)
        actions = self._each(self._targets(moving, targets, load), "drain", "moved")
        with self.sessions() as session:
            left = session.scalar(select(func.count(Container.id)).where(
                Container.server_id == server_id))
        return {"server_id": server_id, "maintenance": True, "containers_left": left,
                "actions": actions}
