"""Containers service: servers, containers, supervision and HA. Entrypoints only.

The domain lives in ``fleet.py`` (what happens) and ``engine_ops.py`` (how an engine is told).
Who may own a container is asked of users and billing by RPC, with a timeout: a customer's
container needs a running rental.

The health timer (``BERTH_HEALTH_INTERVAL``) pings every engine, records online/offline with
``server_went_down`` / ``server_came_back``, then (one replica at a time) reconciles engines with
the database and fails over servers offline for longer than ``BERTH_FAILOVER_AFTER``.
"""
from __future__ import annotations

import datetime as dt
import logging

from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy
from sqlalchemy import select

from berth.engines import EnginePool
from berth.errors import Conflict
from berth.events import RentalExpired, RentalRenewed, RentalStarted, first_delivery, receive
from berth.lease import held, try_acquire
from berth.outbox import EventOutbox
from berth.service import ServiceBase, call_with_timeout, event_handler, every, rpc
from berth.settings import get_settings
from berth.validation import parse
from services.containers.fleet import Actor, Backoff, Fleet
from services.containers.metrics import FAMILIES as METRIC_FAMILIES
from services.containers.models import Lease, OutboxEvent, ProcessedEvent
from services.containers.schemas import (AddServer, ContainerQuery, CreateContainer,
                                         Maintenance, ReplaceContainer, UpdateContainer,
                                         UpdateServer)

log = logging.getLogger(__name__)

FLEET_LEASE = "containers-fleet"
FLEET_LEASE_SECONDS = 300  # released when the work ends; the TTL only covers a crash
BUSY = "Another fleet operation is in progress; try again shortly"


class FleetProvider(DependencyProvider):
    """``self.fleet``: the domain, bound to this worker's database and outbox.

    The engine clients (one per server, with their connection pools) live as long as the
    service."""

    def setup(self):
        settings = get_settings()
        self.pool = EnginePool(settings.var_dir / "tls", timeout=settings.docker_timeout)
        self.memo = {}  # what a Fleet reads once per process (the installation's key)

    def stop(self):
        self.pool.close()

    def kill(self):
        self.pool.close()

    def get_dependency(self, worker_ctx):
        service = worker_ctx.service  # its db and outbox are injected in no set order
        settings = get_settings()
        return Fleet(lambda: service.db(), self.pool,
                     lambda session, event: service.outbox.add(session, event),
                     stop_timeout=settings.container_stop_timeout,
                     ping_timeout=settings.docker_ping_timeout, memo=self.memo,
                     backoff=Backoff(settings.container_restart_backoff,
                                     settings.container_restart_backoff_max,
                                     settings.container_stable_after))


class ContainersService(ServiceBase):
    name = "containers"
    metric_families = METRIC_FAMILIES  # gauges from this database, per scrape
    outbox = EventOutbox(OutboxEvent)
    fleet = FleetProvider()
    users_rpc = RpcProxy("users")
    billing_rpc = RpcProxy("billing")

    def _exclusive(self, wait: float | None = None):
        """The fleet lease: one replica (and one operation) recreates containers at a time."""
        wait = get_settings().rpc_timeout / 4 if wait is None else wait
        return held(self.db, Lease, FLEET_LEASE, FLEET_LEASE_SECONDS, wait=wait, busy=BUSY)

    # --- servers ---------------------------------------------------------------------------

    @rpc
    def add_server(self, data: dict) -> dict:
        return self.fleet.add_server(parse(AddServer, data, "Invalid server data"))

    @rpc
    def update_server(self, actor: dict, server_id: int, data: dict) -> dict:
        body = parse(UpdateServer, data, "Invalid server data")
        return self.fleet.update_server(server_id, body, Actor.of(actor).user_id)

    @rpc
    def set_server_maintenance(self, actor: dict, server_id: int, data: dict) -> dict:
        body = parse(Maintenance, data, "Invalid data")
        return self.fleet.set_maintenance(server_id, body.maintenance, Actor.of(actor).user_id)

    @rpc
    def drain_server(self, actor: dict, server_id: int) -> dict:
        """Maintenance on, and every container moved to other servers (like failover)."""
        self.fleet.server(server_id)  # 404 before waiting for the lease
        with self._exclusive():
            return self.fleet.drain(server_id, Actor.of(actor).user_id)

    @rpc
    def delete_server(self, actor: dict, server_id: int) -> dict:
        self.fleet.server(server_id)
        with self._exclusive():  # no move lands on it while it goes
            return self.fleet.delete_server(server_id, Actor.of(actor).user_id)

    @rpc
    def servers(self) -> dict:
        return {"servers": self.fleet.servers()}

    @rpc
    def server_status(self, server_id: int) -> dict:
        return self.fleet.server(server_id)

    @rpc
    def server_health(self, server_id: int) -> dict:
        """A live ping of one server (recorded like the timer's)."""
        return self.fleet.server_health(server_id)

    @rpc
    def ha_health(self) -> dict:
        return self.fleet.ha_health()

    # --- containers ------------------------------------------------------------------------

    @rpc
    def create_container(self, actor: dict, data: dict) -> dict:
        body = parse(CreateContainer, data, "Invalid container data")
        caller = Actor.of(actor)
        owner = body.user_id or caller.user_id
        role = caller.role
        if owner != caller.user_id:
            contact = call_with_timeout(self.users_rpc.contact, owner)  # 404 if unknown
            if contact["disabled"]:
                raise Conflict(f"User {owner} is disabled")
            role = contact["role"]
        if role != "admin":
            rental = call_with_timeout(self.billing_rpc.rental_info, owner)
            if rental["rental_status"] != "active":
                raise Conflict(f"User {owner} has no active rental")
        return self.fleet.create(caller.user_id, owner, body)

    @rpc
    def list_containers(self, actor: dict, query: dict) -> dict:
        return self.fleet.listing(Actor.of(actor), parse(ContainerQuery, query,
                                                         "Invalid query"))

    @rpc
    def container_status(self, actor: dict, name: str) -> dict:
        return self.fleet.status(Actor.of(actor), name)

    @rpc
    def stop_container(self, actor: dict, name: str) -> dict:
        return self.fleet.stop(Actor.of(actor), name)

    @rpc
    def update_container(self, name: str, data: dict) -> dict:
        body = parse(UpdateContainer, data, "Invalid container data")
        changes = body.model_dump(include=body.model_fields_set)
        new_name = changes.get("container_name")
        if new_name == name:
            changes.pop("container_name")
        if set(changes) <= {"container_name"}:
            if new_name and new_name != name:
                container_id = self.fleet.rename(name, new_name)
            else:
                container_id = self.fleet.container_id_for(name)  # 404 for an unknown name
            return {"message": "Container updated successfully", "container_id": container_id,
                    "container_name": new_name or name, "recreated": False}
        container_id = self.fleet.container_id_for(name)
        if new_name:
            self.fleet.require_free_name(new_name)
        with self._exclusive():
            done = self.fleet.recreate(container_id, "update", changes=changes)
        return {"message": "Container updated successfully", "recreated": True, **done}

    @rpc
    def delete_container(self, actor: dict, name: str) -> dict:
        return self.fleet.delete(Actor.of(actor).user_id, name)

    @rpc
    def container_info(self, container_id: int) -> dict:
        return self.fleet.info(container_id)

    @rpc
    def fleet_summary(self) -> dict:
        return self.fleet.fleet_summary()

    @rpc
    def sampling_targets(self) -> dict:
        """For the traffic sampler: online engines and the Berth containers on them."""
        return self.fleet.sampling_targets()

    # --- high availability -----------------------------------------------------------------

    @rpc
    def failover(self) -> dict:
        """Move what offline servers hold, except servers in maintenance (drain those)."""
        with self._exclusive():
            actions = self.fleet.failover()
        message = "Failover operation successful"
        left = self.fleet.offline_in_maintenance()
        if left:
            message += (f"; servers in maintenance were left alone (drain them to move "
                        f"their containers): {', '.join(left)}")
        return {"message": message, "actions": actions}

    @rpc
    def load_balance(self) -> dict:
        with self._exclusive():
            actions = self.fleet.load_balance()
        return {"message": "Load balance operation successful", "actions": actions}

    @rpc
    def disaster_recovery(self) -> dict:
        with self._exclusive():
            actions = self.fleet.disaster_recovery()
        return {"message": "Disaster recovery operation successful", "actions": actions}

    @rpc
    def replace_container(self, data: dict) -> dict:
        body = parse(ReplaceContainer, data, "Invalid data")
        container_id = body.container_id or self.fleet.container_id_for(body.container_name)
        with self._exclusive():
            return self.fleet.replace(container_id)

    # --- supervision -----------------------------------------------------------------------

    @every("health_interval")
    def supervise(self):
        """Probe every engine; then, in one replica, reconcile and fail over."""
        settings = get_settings()
        if not try_acquire(self.db, Lease, "containers-health", settings.health_interval * 0.8):
            return
        self.fleet.probe_all()
        try:
            with self._exclusive(wait=0):
                self.fleet.reconcile()
                if settings.failover_after > 0:
                    self.fleet.failover(dt.timedelta(seconds=settings.failover_after))
        except Conflict:
            log.info("supervision skipped: %s", BUSY)

    @rpc
    def run_supervision(self) -> dict:
        """One probe + reconcile pass now (operators, tests)."""
        probes = self.fleet.probe_all()
        with self._exclusive():
            result = self.fleet.reconcile()
        return {"servers": probes, **result}

    # --- reactions to rentals --------------------------------------------------------------

    @event_handler("billing", RentalExpired.TYPE)
    def on_rental_expired(self, payload):
        self._react(RentalExpired, payload, lambda e: self.fleet.stop_for_rental(e.user_id))

    @event_handler("billing", RentalRenewed.TYPE)
    def on_rental_renewed(self, payload):
        self._react(RentalRenewed, payload,
                    lambda e: self.fleet.start_for_rental(e.user_id, "rental_renewed"))

    @event_handler("billing", RentalStarted.TYPE)
    def on_rental_started(self, payload):
        self._react(RentalStarted, payload,
                    lambda e: self.fleet.start_for_rental(e.user_id, "rental_started"))

    def _react(self, event_cls, payload, effect) -> None:
        """Apply an event's effect once: skipped if already recorded as processed; recorded
        after the effect, which is itself idempotent (a redelivery after a crash re-applies
        it harmlessly)."""
        event = receive(event_cls, payload)
        if event is None:
            return
        with self.db() as session:
            if session.scalar(select(ProcessedEvent.event_id).where(
                    ProcessedEvent.event_id == event.event_id)):
                return
        ids = effect(event)
        with self.db() as session:
            first_delivery(session, ProcessedEvent, event)
            session.commit()
        log.info("%s for user %d: containers %s", event.TYPE, event.user_id, ids)

