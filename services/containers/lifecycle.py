"""Containers created, read, stopped, started, renamed and deleted (no nameko).

``ContainerLifecycle`` is mixed into ``Fleet`` (services.containers.fleet). A create reserves
the name with a ``creating`` row, makes and starts the copy, then marks the row running; a stop
records the wish before it tells the engine, so the reconciler never takes a stop in progress
for a crash. Rentals that expire stop their owner's containers; a rental that runs again starts
what expiry stopped.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from berth.actor import Actor
from berth.concurrency import run_all
from berth.db import insert_once, isoformat
from berth.docker.engines import Endpoint, EngineUnavailable
from berth.errors import Conflict, Forbidden, ServiceUnavailable
from berth.events import (ContainerCreated, ContainerRemoved, ContainerStarted,
                          ContainerStopped, Event)
from berth.queries import get_or_404, one_or_404, page
from berth.settings import get_settings
from services.containers.models import Container, OwnerLock, Server
from services.containers.placement import free_ports, needs_of
from services.containers.selfservice import Allowance, CustomerCreate, require_ports_within
from services.containers.shapes import (container_row, event_fields, failure_reason,
                                        stored_command)

log = logging.getLogger(__name__)

RENTAL_EXPIRED = "rental_expired"  # why Berth stopped a container: its rental ended
SUSPENDED = "suspended: "  # ... or was suspended (followed by the reason billing gives)


def stop_reason(rental: dict) -> str | None:
    """Why a user's containers must not run under ``rental`` (billing's rental_info), or None
    when they may: an active rental that is not suspended."""
    if rental["rental_status"] != "active":
        return RENTAL_EXPIRED  # expired, cancelled, deleted ("none")
    if rental.get("suspension_reason"):
        return f"{SUSPENDED}{rental['suspension_reason']}"
    return None


def _stopped_for_rental():
    return or_(Container.stopped_reason == RENTAL_EXPIRED,
               Container.stopped_reason.like(f"{SUSPENDED}%"))


def want_stopped(container: Container, reason: str, actor_id: int | None = None
                 ) -> tuple[Container, Event | None]:
    """Record the wish that ``container`` stop (and why); ``container_stopped`` if it was
    meant to run. A stop ends an open incident (the event says so)."""
    was_running = container.desired_state == "running"
    container.desired_state, container.stopped_reason = "stopped", reason
    container.died_at, container.restarts, container.restarted_at = None, 0, None
    container.deaths = 0
    event = ContainerStopped.new(**event_fields(container), reason=reason,
                                 actor_id=actor_id) if was_running else None
    return container, event


def want_running(container: Container, reason: str) -> tuple[Container, Event]:
    """Record the wish that ``container`` run again (``container_started``)."""
    container.desired_state, container.stopped_reason = "running", None
    return container, ContainerStarted.new(**event_fields(container), reason=reason)


class ContainerLifecycle:
    """A container's own operations (a mixin of ``Fleet``)."""

    def _by_name(self, session, name: str) -> Container:
        return one_or_404(session, select(Container).where(Container.name == name),
                          f"Container {name} not found")

    def _by_id(self, session, container_id: int) -> Container:
        return get_or_404(session, Container, container_id)

    def _owned(self, session, actor: Actor, name: str) -> Container:
        container = self._by_name(session, name)
        if not actor.is_admin and container.user_id != actor.user_id:
            raise Forbidden("You may only access your own containers")
        return container

    def create(self, actor_id: int, owner_id: int, body, limits: dict | None = None,
               customer: CustomerCreate | None = None,
               allowance: Allowance | None = None) -> dict:
        """Reserve the name (row ``creating``), create and start the copy, then mark it
        running. Any failure removes both, so nothing is left half-created. ``limits``: the
        owner's plan's (``ownership.limits_of``); None: the operator's defaults. The server
        must hold them (``placement.misfits``). ``customer``: what a customer's own create
        became under their plan (its command, and the container ports Berth publishes on
        free host ports of the chosen server). ``allowance``: the owner's plan's container
        count, checked under the owner's lock in the transaction that inserts the row."""
        command = customer.command if customer else stored_command(body.command)
        ports = (customer.ports or {}) if customer else (body.ports or {})
        settings = get_settings()
        needs = needs_of(limits, settings.container_cpus, settings.container_memory_mib)
        with self.sessions() as session:
            if allowance is not None:
                allowance.count(self._lock_owner(session, owner_id))
            server = self._place(session, body.server_id, needs=needs)
            if session.scalar(select(Container.id).where(
                    Container.name == body.container_name)):
                raise Conflict(f"Container name {body.container_name} is already taken")
            if customer and customer.published:
                ports = self._free_ports(session, server, customer.published)
            container = Container(
                name=body.container_name, user_id=owner_id, server_id=server.id,
                image=body.image, command=command,
                environment=body.environment or {}, ports=ports,
                limits=limits, status="creating", desired_state="running", generation=1)
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
            self.ops.discard_copies(endpoint, container.id, 1)  # one the engine made anyway
            with self.sessions() as session:
                session.execute(delete(Container).where(Container.id == container.id))
                session.commit()
            raise
        with self.sessions() as session:
            container = session.get(Container, container.id)
            container.engine_id, container.status = engine_id, "running"
            container.observed_at = self.now()
            self.record(session, ContainerCreated.new(**event_fields(container),
                                                      image=container.image,
                                                      actor_id=actor_id))
            session.commit()
        log.info("container %s (%d) created on %s", container.name, container.id,
                 endpoint.name)
        if container.desired_state == "stopped":  # its rental stopped while it was created
            self._stop_copy(container.id)
        return {"container_id": container.id, "container_name": container.name,
                "server_id": server.id, "status": "running"}

    def _lock_owner(self, session, owner_id: int) -> int:
        """Take ``owner_id``'s lock row for the rest of ``session``'s transaction, then count
        their containers. Concurrent creates of one owner, in this process or another
        replica, wait here in turn, and each counts what those before it committed: the
        UPDATE holds the row's lock (PostgreSQL) or the database's write lock (SQLite) until
        the commit that inserts the new row."""
        insert_once(session, OwnerLock, user_id=owner_id)
        session.execute(update(OwnerLock).where(OwnerLock.user_id == owner_id)
                        .values(locked_at=self.now()))
        return session.scalar(select(func.count()).select_from(Container)
                              .where(Container.user_id == owner_id))

    def hold_ports(self, name: str, ports: dict | None) -> None:
        """A 400 naming ``ports`` if ``name``'s owner's plan, as it was when the container was
        created, allows fewer published ports (an admin's update holds to it too)."""
        with self.sessions() as session:
            container = self._by_name(session, name)
        require_ports_within(ports, (container.limits or {}).get("max_ports"))

    def _free_ports(self, session, server: Server, published: list[str]) -> dict:
        """``published`` container ports mapped to host ports no container of ``server``
        holds, from the customers' range (BERTH_CUSTOMER_PORT_MIN.._MAX)."""
        settings = get_settings()
        used = {int(port) for ports in session.scalars(
            select(Container.ports).where(Container.server_id == server.id)) if ports
            for port in ports.values()}
        free = free_ports(used, len(published), settings.customer_port_min,
                          settings.customer_port_max)
        if len(free) < len(published):
            raise ServiceUnavailable(f"Server {server.name} has no free port for a new "
                                     f"container; try again later")
        return dict(zip(published, free))

    def count_of(self, user_id: int) -> int:
        """How many containers ``user_id`` holds."""
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(Container)
                                  .where(Container.user_id == user_id))

    def listing(self, actor: Actor, query) -> dict:
        with self.sessions() as session:
            statement = select(Container)
            if not actor.is_admin:
                statement = statement.where(Container.user_id == actor.user_id)
            elif query.user_id is not None:
                statement = statement.where(Container.user_id == query.user_id)
            if query.server_id is not None:
                statement = statement.where(Container.server_id == query.server_id)
            rows, total = page(session, statement, (Container.id,), query.limit, query.offset)
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

    def _made(self, actor: Actor, name: str) -> tuple[Container, Endpoint]:
        """The caller's own container (or any, for an admin), once its copy exists, and how
        to reach its engine: what stop and start act on."""
        with self.sessions() as session:
            container = self._owned(session, actor, name)
            if container.status == "creating":
                raise Conflict(f"Container {name} is still being created")
            return container, Endpoint.of(session.get(Server, container.server_id))

    def stop(self, actor: Actor, name: str) -> dict:
        """Record the wish first, then stop the copy: the reconciler never mistakes a stop
        in progress for a crash. An unreachable engine is a 503 before anything changes."""
        container, endpoint = self._made(actor, name)
        self.pool.ping(endpoint, self.ping_timeout)
        reason = "owner" if container.user_id == actor.user_id else "admin"
        stopped = self._stop(container.id, reason, actor.user_id)
        if not stopped:
            raise ServiceUnavailable(f"Docker host {endpoint.name} did not stop the container;"
                                     f" Berth will stop it when the host answers")
        return {"container_id": container.id, "status": "stopped"}

    def start(self, actor: Actor, name: str,
              may_run: Callable[[int], str | None] | None) -> dict:
        """Start a stopped container (owner or admin). ``may_run(owner)`` says why the
        owner's containers may not run now (their rental is not active), or None; an admin
        may start one anyway (``may_run`` None: the caller has asked already). An
        unreachable engine is a 503 before anything changes."""
        container, endpoint = self._made(actor, name)
        if not actor.is_admin and may_run is not None:
            refused = may_run(container.user_id)
            if refused is not None:
                raise Conflict(refused)
        self.pool.ping(endpoint, self.ping_timeout)
        with self.sessions() as session:
            row = session.get(Container, container.id)
            if row.desired_state != "running":
                reason = "owner" if container.user_id == actor.user_id else "admin"
                self.record(session, want_running(row, reason)[1])
            session.commit()
        if not self._start_copy(container.id):
            raise ServiceUnavailable(f"Docker host {endpoint.name} did not start the container;"
                                     f" Berth will start it when the host answers")
        return {"container_id": container.id, "status": "running"}

    def restart(self, actor: Actor, name: str, may_run: Callable[[int], str | None]) -> dict:
        """Stop, then start (each recorded like the routes of the same names). A customer
        whose containers may not run is refused before anything stops."""
        if not actor.is_admin:
            with self.sessions() as session:
                owner = self._owned(session, actor, name).user_id
            refused = may_run(owner)
            if refused is not None:
                raise Conflict(refused)
        self.stop(actor, name)
        return self.start(actor, name, None)  # asked above: billing once per restart

    def logs(self, actor: Actor, name: str, tail: int) -> dict:
        """The last ``tail`` lines the container wrote (owner or admin); 503 if its engine
        does not answer."""
        with self.sessions() as session:
            container = self._owned(session, actor, name)
            endpoint = Endpoint.of(session.get(Server, container.server_id))
        return {"container_id": container.id, "container_name": container.name, "tail": tail,
                "lines": self.ops.logs(endpoint, container.engine_id, tail)}

    def _stop(self, container_id: int, reason: str, actor_id: int | None = None) -> bool:
        with self.sessions() as session:
            self._want_stopped(session, session.get(Container, container_id), reason, actor_id)
            session.commit()
        return self._stop_copy(container_id)

    def _want_stopped(self, session, container: Container, reason: str,
                      actor_id: int | None = None) -> None:
        container, event = want_stopped(container, reason, actor_id)
        if event is not None:
            self.record(session, event)

    def _stop_copy(self, container_id: int) -> bool:
        """Tell the engine to stop the copy of a container that is meant to be stopped; False
        if it did not answer (the reconciler stops it when the host answers)."""
        with self.sessions() as session:
            container = session.get(Container, container_id)
            if container is None or container.desired_state != "stopped":
                return False
            endpoint = Endpoint.of(session.get(Server, container.server_id))
        try:
            if container.engine_id:
                self.ops.stop(endpoint, container.engine_id)
        except (EngineUnavailable, ServiceUnavailable) as exc:
            log.warning("stop of %s deferred: %s", container.name, exc)
            return False
        self._observe(container_id, "stopped" if container.engine_id else "missing")
        return True

    def _start_copy(self, container_id: int) -> bool:
        """Tell the engine to start the copy of a container that is meant to run; False if it
        did not (the reconciler starts it on a later tick)."""
        with self.sessions() as session:
            container = session.get(Container, container_id)
            if container is None or container.desired_state != "running":
                return False
            endpoint = Endpoint.of(session.get(Server, container.server_id))
        if not container.engine_id:
            return False
        try:
            self.ops.start(endpoint, container.engine_id)
        except Exception as exc:  # noqa: BLE001 - the reconciler retries on the next tick
            log.warning("start of %s deferred: %s", container.name, failure_reason(exc))
            return False
        self._observe(container_id, "running")
        return True

    def _observe(self, container_id: int, status: str, exit_code: int | None = None) -> None:
        with self.sessions() as session:
            session.execute(update(Container).where(Container.id == container_id).values(
                status=status, exit_code=exit_code, observed_at=self.now()))
            session.commit()

    def follow_rental(self, session, user_id: int, ask_rental: Callable[[], dict],
                      start_reason: str) -> tuple[list[int], list[int]]:
        """Make the user's containers follow their rental as it is NOW (``ask_rental()``:
        billing's rental_info, asked under the owner's lock): running while it is active and
        not suspended, stopped otherwise. Rental events of different types arrive in any order
        (each has its own queue), so a handler acts on the state, never on its event alone;
        the lock makes two handlers of one user take turns, the later one reading the later
        state. Records the wishes in ``session``; returns (ids to start, ids to stop) for
        ``start_copies`` / ``stop_copies`` after the commit."""
        self._lock_owner(session, user_id)
        why = stop_reason(ask_rental())
        if why is None:
            return self._start_for_rental(session, user_id, start_reason), []
        # what the rental stopped before stays stopped, under the reason it stops for now
        session.execute(update(Container).where(
            Container.user_id == user_id, Container.desired_state == "stopped",
            _stopped_for_rental()).values(stopped_reason=why)
            .execution_options(synchronize_session=False))
        containers = session.scalars(select(Container).where(
            Container.user_id == user_id, Container.desired_state == "running")).all()
        for container in containers:
            self._want_stopped(session, container, why)
        # one still being created is stopped by its create's last step (``create``)
        return [], [c.id for c in containers if c.status != "creating"]

    def _start_for_rental(self, session, user_id: int, reason: str) -> list[int]:
        """What the rental's expiry or suspension stopped (not what people stopped) is to
        run."""
        containers = session.scalars(select(Container).where(
            Container.user_id == user_id, Container.desired_state == "stopped",
            _stopped_for_rental())).all()
        for container in containers:
            self.record(session, want_running(container, reason)[1])
        return [c.id for c in containers]

    def stop_copies(self, container_ids: list[int]) -> None:
        """Bring the engines in line with recorded stops now, all at once; what an engine
        does not do now, the reconciler does on a later tick (services.containers.supervision)."""
        run_all([functools.partial(self._stop_copy, i) for i in container_ids])

    def start_copies(self, container_ids: list[int]) -> None:
        """All at once: until its copy starts, a container meant to run looks dead to the
        reconciler, so the window must stay one engine call long, not one per container."""
        run_all([functools.partial(self._start_copy, i) for i in container_ids])

    def delete(self, actor: Actor, name: str) -> dict:
        """Remove the row, then the copy (owner or admin); a copy on an unreachable host is
        removed as stale when the host returns."""
        actor_id = actor.user_id
        with self.sessions() as session:
            container = self._owned(session, actor, name)
            server = session.get(Server, container.server_id)
            self.record(session, ContainerRemoved.new(**event_fields(container),
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
        return {"container_id": container.id, "engine_copy_removed": removed}

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