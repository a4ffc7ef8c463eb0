"""Containers service: servers, containers, supervision and HA. Entrypoints only.

The domain lives behind ``fleet.py``'s ``Fleet`` (servers, lifecycle, recreation, supervision,
views: what happens), ``ownership.py`` (who may own a container) and ``engine_ops.py`` (how an
engine is told). Who may own a container is asked of users and billing by RPC, with a timeout
(``RpcAccounts``): a customer's container needs a running rental. The reply messages are here.

The health timer (``BERTH_HEALTH_INTERVAL``) pings every engine, records online/offline with
``server_went_down`` / ``server_came_back``, then (one replica at a time) reconciles engines with
the database and fails over servers offline for longer than ``BERTH_FAILOVER_AFTER``.
"""
from __future__ import annotations

import datetime as dt
import logging

from nameko.rpc import RpcProxy

from berth.actor import Actor
from berth.docker.provider import EnginePoolProvider
from berth.errors import Conflict, Forbidden
from berth.events import (RentalExpired, RentalRenewed, RentalResumed, RentalStarted,
                          RentalSuspended)
from berth.lease import held, try_acquire
from berth.outbox import EventOutbox
from berth.service import ServiceBase, call_with_timeout, event_handler, every, rpc
from berth.settings import get_settings
from berth.validation import parse
from services.containers.fleet import Backoff, Fleet
from services.containers.metrics import FAMILIES as METRIC_FAMILIES
from services.containers.models import Lease, OutboxEvent, ProcessedEvent
from services.containers.ownership import (limits_of, owner_of_new_container, rental_refusal,
                                           suspension_refusal)
from services.containers.selfservice import Allowance, customer_create
from services.containers.schemas import (AddServer, ContainerQuery, CreateContainer,
                                         LogsQuery, Maintenance, ReplaceContainer,
                                         UpdateContainer, UpdateServer)

log = logging.getLogger(__name__)

FLEET_LEASE = "containers-fleet"
FLEET_LEASE_SECONDS = 300  # released when the work ends; the TTL only covers a crash
BUSY = "Another fleet operation is in progress; try again shortly"


class FleetProvider(EnginePoolProvider):
    """``self.fleet``: the domain, bound to this worker's database and outbox.

    The engine clients (one per server, with their connection pools) live as long as the
    service."""

    def setup(self):
        super().setup()
        self.memo = {}  # what a Fleet reads once per process (the installation's key)

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


class RpcAccounts:
    """``ownership.Accounts`` over users' and billing's RPC, each call with a timeout."""

    def __init__(self, users_rpc, billing_rpc):
        self.users_rpc, self.billing_rpc = users_rpc, billing_rpc
        self._rentals: dict[int, dict] = {}
        self._contacts: dict[int, dict] = {}

    def contact(self, user_id: int) -> dict:
        """users' contact, asked once per user for this request."""
        if user_id not in self._contacts:
            self._contacts[user_id] = call_with_timeout(self.users_rpc.contact, user_id)
        return self._contacts[user_id]

    def rental_status(self, user_id: int) -> str:
        return self._rental(user_id)["rental_status"]

    def rental_plan(self, user_id: int) -> dict | None:
        return self._rental(user_id).get("plan")

    def rental_suspension(self, user_id: int) -> str | None:
        return self._rental(user_id).get("suspension_reason")

    def _rental(self, user_id: int) -> dict:
        """billing's rental_info, asked once per user for this request."""
        if user_id not in self._rentals:
            self._rentals[user_id] = call_with_timeout(self.billing_rpc.rental_info, user_id)
        return self._rentals[user_id]


class ContainersService(ServiceBase):
    name = "containers"
    processed_events = ProcessedEvent
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
        done = self.fleet.add_server(parse(AddServer, data, "Invalid server data"))
        return {"message": "Server added successfully", **done}

    @rpc
    def update_server(self, actor: dict, server_id: int, data: dict) -> dict:
        body = parse(UpdateServer, data, "Invalid server data")
        done = self.fleet.update_server(server_id, body, Actor.of(actor).user_id)
        message = "Server updated successfully" if done["changed"] else "Server unchanged"
        return {"message": message, **done}

    @rpc
    def set_server_maintenance(self, actor: dict, server_id: int, data: dict) -> dict:
        body = parse(Maintenance, data, "Invalid data")
        done = self.fleet.set_maintenance(server_id, body.maintenance, Actor.of(actor).user_id)
        return {"message": f"Maintenance {'on' if body.maintenance else 'off'}", **done}

    @rpc
    def drain_server(self, actor: dict, server_id: int) -> dict:
        """Maintenance on, and every container moved to other servers (like failover)."""
        self.fleet.server(server_id)  # 404 before waiting for the lease
        with self._exclusive():
            done = self.fleet.drain(server_id, Actor.of(actor).user_id)
        return {"message": "Server drained successfully", **done}

    @rpc
    def delete_server(self, actor: dict, server_id: int) -> dict:
        self.fleet.server(server_id)
        with self._exclusive():  # no move lands on it while it goes
            done = self.fleet.delete_server(server_id, Actor.of(actor).user_id)
        return {"message": "Server deleted successfully", **done}

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
        accounts = RpcAccounts(self.users_rpc, self.billing_rpc)
        if caller.is_admin:
            owner = owner_of_new_container(caller, body.user_id, accounts)
            owner_is_admin = owner == caller.user_id or accounts.contact(owner)["role"] == "admin"
            limits = limits_of(owner, owner_is_admin, accounts)
            # a customer's container, whoever creates it, is held to their plan's allowance
            allowance = Allowance.of(accounts.rental_plan(owner)) if limits else None
            if allowance is not None:
                allowance.ports(body.ports)
            done = self.fleet.create(caller.user_id, owner, body, limits, allowance=allowance)
        else:  # a customer, for themselves, under their plan
            if body.user_id not in (None, caller.user_id):
                raise Forbidden("You may only create containers for yourself")
            suspended = suspension_refusal(caller.user_id, accounts)
            if suspended is not None:
                raise Conflict(suspended)
            limits = limits_of(caller.user_id, False, accounts)
            plan = accounts.rental_plan(caller.user_id) if limits is not None else None
            settings = get_settings()
            wish = customer_create(body, plan, (settings.customer_port_min,
                                                settings.customer_port_max))
            done = self.fleet.create(caller.user_id, caller.user_id, body, limits, wish,
                                     allowance=Allowance.of(plan))
        return {"message": "Container created successfully", **done}

    @rpc
    def list_containers(self, actor: dict, query: dict) -> dict:
        return self.fleet.listing(Actor.of(actor), parse(ContainerQuery, query,
                                                         "Invalid query"))

    @rpc
    def container_status(self, actor: dict, name: str) -> dict:
        return self.fleet.status(Actor.of(actor), name)

    @rpc
    def stop_container(self, actor: dict, name: str) -> dict:
        done = self.fleet.stop(Actor.of(actor), name)
        return {"message": "Container stopped successfully", **done}

    @rpc
    def update_container(self, name: str, data: dict) -> dict:
        body = parse(UpdateContainer, data, "Invalid container data")
        done = self.fleet.update(name, body.model_dump(include=body.model_fields_set),
                                 exclusive=self._exclusive)
        return {"message": "Container updated successfully", **done}

    @rpc
    def start_container(self, actor: dict, name: str) -> dict:
        done = self.fleet.start(Actor.of(actor), name, self._why_not_running)
        return {"message": "Container started successfully", **done}

    @rpc
    def restart_container(self, actor: dict, name: str) -> dict:
        done = self.fleet.restart(Actor.of(actor), name, self._why_not_running)
        return {"message": "Container restarted successfully", **done}

    @rpc
    def container_logs(self, actor: dict, name: str, query: dict) -> dict:
        return self.fleet.logs(Actor.of(actor), name,
                               parse(LogsQuery, query, "Invalid query").tail)

    def _why_not_running(self, owner: int) -> str | None:
        """Why ``owner``'s containers may not be started by them now, or None."""
        return rental_refusal(owner, RpcAccounts(self.users_rpc, self.billing_rpc))

    @rpc
    def delete_container(self, actor: dict, name: str) -> dict:
        done = self.fleet.delete(Actor.of(actor), name)
        return {"message": "Container deleted successfully", **done}

    @rpc
    def container_info(self, container_id: int) -> dict:
        return self.fleet.info(container_id)

    @rpc
    def fleet_summary(self) -> dict:
        return self.fleet.fleet_summary()

    @rpc
    def capacity(self) -> dict:
        """The online hosts' CPUs and memory (billing checks a plan against them)."""
        return self.fleet.capacity()

    @rpc
    def user_usage(self, user_id: int) -> dict:
        return self.fleet.user_usage(int(user_id))

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
            done = self.fleet.recreate(container_id, "replace")
        return {"message": "Docker container replaced successfully", **done}

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

    # Each records the wish in one transaction with the event id (berth.events.handle_once),
    # then tells the engines; the reconciler finishes what an engine did not do at once.

    def _follow_rental(self, event_cls, payload) -> None:
        """Every rental event: the user's containers follow the rental's state as billing
        holds it now (services.containers.lifecycle.follow_rental), asked under the owner's
        lock inside the transaction that records the event id; billing away: the event is
        requeued and tried again."""
        done = self.handle_once(event_cls, payload, lambda session, e: self.fleet.follow_rental(
            session, e.user_id, lambda: call_with_timeout(self.billing_rpc.rental_info,
                                                          e.user_id), e.TYPE))
        if done is not None:
            self.fleet.start_copies(done[0])
            self.fleet.stop_copies(done[1])

    @event_handler("billing", RentalExpired.TYPE)
    def on_rental_expired(self, payload):
        self._follow_rental(RentalExpired, payload)

    @event_handler("billing", RentalRenewed.TYPE)
    def on_rental_renewed(self, payload):
        self._follow_rental(RentalRenewed, payload)

    @event_handler("billing", RentalStarted.TYPE)
    def on_rental_started(self, payload):
        self._follow_rental(RentalStarted, payload)

    @event_handler("billing", RentalSuspended.TYPE)
    def on_rental_suspended(self, payload):
        self._follow_rental(RentalSuspended, payload)

    @event_handler("billing", RentalResumed.TYPE)
    def on_rental_resumed(self, payload):
        self._follow_rental(RentalResumed, payload)

