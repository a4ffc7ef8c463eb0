"""The catalogue of every event Berth dispatches: name, source service, version and payload.

Every event travels as a JSON envelope: ``event_id`` (uuid4), ``occurred_at`` (ISO-8601 UTC),
``version``, ``request_id`` (the request or tick that caused it; also sent as the message's
``nameko.request_id`` header) and the payload fields below. Events are recorded in the source service's outbox in
the same transaction as the change they describe (``berth.outbox``), published with mandatory
routing, and handled idempotently by consumers (``first_delivery``). Consumers ignore fields
they do not know, so adding a field is not a breaking change; removing or retyping one bumps
``version``.

| event                           | source  | consumed by | meaning                                         |
|---------------------------------|---------|-------------|-------------------------------------------------|
| verification_email_requested    | users   | alerts      | mail this address a link that verifies it       |
| distributor_code_redeemed       | billing | users, alerts | make this user a distributor                  |
| rental_started                  | billing | alerts, containers | a user's new rental runs until end_date         |
| rental_renewed                  | billing | alerts, containers | a rental now ends later (and is active again)   |
| rental_expired                  | billing | alerts, containers | a rental passed its end_date (stop containers)  |
| rental_expiry_reminder_due      | billing | alerts      | remind the user: days_left days to end_date     |
| rental_expiry_notice_requested  | billing | alerts      | an admin asked to notify a user of expiry_date  |
| server_went_down                | containers | alerts   | a Docker host stopped answering its health ping |
| server_came_back                | containers | alerts   | a host that was down answers again              |
| server_updated                  | containers | alerts   | an admin edited a server or its maintenance flag|
| server_removed                  | containers | alerts   | an admin deleted a server (it held no containers)|
| container_created               | containers | alerts   | a container was created for user_id             |
| container_removed               | containers | alerts   | a container was deleted (its engine copy too)   |
| container_stopped               | containers | alerts   | Berth stopped a container (reason says why)     |
| container_started               | containers | alerts   | Berth started a stopped container again         |
| container_died                  | containers | alerts   | a container that should run is not running      |
| container_recovered             | containers | alerts   | a container that had died runs again            |
| container_moved                 | containers | alerts   | recreated on another server (failover, ...)     |
| traffic_quota_exceeded          | traffic | alerts      | a user's month in+out passed their quota (once) |

The containers service also consumes rental_expired (it stops the user's containers) and
rental_started / rental_renewed (it starts again the containers that expiry stopped).
"""
from __future__ import annotations

import logging
import uuid
from typing import Any, Callable, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from berth.context import current as current_request_id
from berth.db import insert_once, isoformat, utcnow

log = logging.getLogger(__name__)

CATALOGUE: dict[str, type[Event]] = {}
E = TypeVar("E", bound="Event")
T = TypeVar("T")


class Event(BaseModel):
    """Envelope fields shared by every event."""
    model_config = ConfigDict(extra="ignore", frozen=True)

    TYPE: ClassVar[str] = ""
    SOURCE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    # carries a secret (e.g. a one-time link): the outbox keeps only the envelope once sent
    SENSITIVE: ClassVar[bool] = False

    event_id: str
    occurred_at: str
    version: int
    # the request (or timer tick) that caused it, for the logs of everything it triggers
    request_id: str | None = None

    @classmethod
    def new(cls, **fields) -> Event:
        return cls(event_id=str(uuid.uuid4()), occurred_at=isoformat(utcnow()),
                   version=cls.VERSION, request_id=current_request_id(), **fields)


def catalogued(source: str, name: str, version: int = 1):
    def register(cls):
        cls.TYPE, cls.SOURCE, cls.VERSION = name, source, version
        CATALOGUE[name] = cls
        return cls
    return register


@catalogued("users", "verification_email_requested", 1)
class VerificationEmailRequested(Event):
    """A user asked for (or registration triggered) a mail that verifies their address."""
    SENSITIVE: ClassVar[bool] = True
    user_id: int
    username: str
    email: str
    verification_url: str
    expires_at: str


@catalogued("billing", "distributor_code_redeemed", 1)
class DistributorCodeRedeemed(Event):
    """A valid distributor serial was redeemed: the user becomes a distributor."""
    user_id: int
    serial_id: int


class RentalEvent(Event):
    rental_id: int
    user_id: int
    end_date: str


@catalogued("billing", "rental_started", 1)
class RentalStarted(RentalEvent):
    """A user without an active rental redeemed a serial."""
    start_date: str


@catalogued("billing", "rental_renewed", 1)
class RentalRenewed(RentalEvent):
    """A rental's end moved later (by renewal or by redeeming another serial), or an admin
    made a stopped rental run again."""
    previous_end_date: str


@catalogued("billing", "rental_expired", 1)
class RentalExpired(RentalEvent):
    """The expiry sweep found the rental past its end_date, or an admin stopped (edited to
    expired or cancelled) or deleted a running rental."""


@catalogued("billing", "rental_expiry_reminder_due", 1)
class RentalExpiryReminderDue(RentalEvent):
    """Sent once per rental, end date and threshold (7, 3, 1 days by default)."""
    days_left: int


@catalogued("billing", "rental_expiry_notice_requested", 1)
class RentalExpiryNoticeRequested(Event):
    """An admin asked Berth to tell a user their rental expires on expiry_date."""
    user_id: int
    expiry_date: str


# --- containers ---------------------------------------------------------------------------

class ServerEvent(Event):
    server_id: int
    server_name: str
    ip_address: str


@catalogued("containers", "server_went_down", 1)
class ServerWentDown(ServerEvent):
    """A health ping failed on a server that was online (once per outage). ``maintenance``:
    the server is in maintenance (alerts stay muted)."""
    last_seen_at: str | None
    reason: str
    maintenance: bool = False


@catalogued("containers", "server_came_back", 1)
class ServerCameBack(ServerEvent):
    """A server that was offline answers its health ping again (once per outage)."""
    down_since: str | None


@catalogued("containers", "server_updated", 1)
class ServerUpdated(ServerEvent):
    """An admin edited a server: ``changed`` names the fields (``name``, ``ip_address``,
    ``docker_url``, ``tls``, ``maintenance``); ``maintenance`` is the flag after the edit
    (true: no new placements, alerts about it and its containers muted and resolved)."""
    changed: list[str]
    maintenance: bool
    actor_id: int | None = None


@catalogued("containers", "server_removed", 1)
class ServerRemoved(ServerEvent):
    """An admin deleted a server that held no containers; its open alerts resolve."""
    actor_id: int | None = None


class ContainerEvent(Event):
    container_id: int
    container_name: str
    user_id: int
    server_id: int | None


@catalogued("containers", "container_created", 1)
class ContainerCreated(ContainerEvent):
    image: str
    actor_id: int | None = None


@catalogued("containers", "container_removed", 1)
class ContainerRemoved(ContainerEvent):
    actor_id: int | None = None


@catalogued("containers", "container_stopped", 1)
class ContainerStopped(ContainerEvent):
    """Berth stopped it: reason is ``owner``, ``admin`` or ``rental_expired``."""
    reason: str
    actor_id: int | None = None


@catalogued("containers", "container_started", 1)
class ContainerStarted(ContainerEvent):
    """Berth started it again: reason is ``rental_renewed`` or ``rental_started``."""
    reason: str


@catalogued("containers", "container_died", 1)
class ContainerDied(ContainerEvent):
    """Should be running but is not: ``status`` is stopped, restarting, paused or missing.
    Sent once per incident; Berth then tries to start it again. ``maintenance``: its server
    is in maintenance (alerts stay muted). ``reason``: ``oom`` (killed by the kernel for
    going over its memory limit), ``exited``, ``missing``, ``paused`` or ``restarting``."""
    status: str
    exit_code: int | None
    maintenance: bool = False
    reason: str | None = None


@catalogued("containers", "container_recovered", 1)
class ContainerRecovered(ContainerEvent):
    """A container that died runs again and has stayed up ``BERTH_CONTAINER_STABLE_AFTER``
    seconds (restarted, replaced or recovered): a crash loop is one incident."""


@catalogued("containers", "container_moved", 1)
class ContainerMoved(ContainerEvent):
    """Recreated from its stored spec on ``server_id`` (reason: failover, load_balance,
    disaster_recovery, replace or update); ``from_server_id`` was its previous server."""
    from_server_id: int | None
    reason: str


# --- traffic ------------------------------------------------------------------------------

@catalogued("traffic", "traffic_quota_exceeded", 1)
class TrafficQuotaExceeded(Event):
    """A user's in+out bytes this calendar month (``month`` = YYYY-MM) passed their quota;
    sent once per user and month."""
    user_id: int
    month: str
    used_bytes: int
    limit_bytes: int


def receive(cls: type[Event], payload) -> Event | None:
    """Parse an incoming event; a malformed one is logged and dropped (``None``)."""
    try:
        return cls.model_validate(payload)
    except ValidationError as exc:
        log.error("dropping malformed %s event: %s", cls.TYPE, exc)
        return None


def first_delivery(session, processed_model, event: Event) -> bool:
    """Record that ``event`` is being handled; False if it already was (a redelivery).

    Call inside the transaction that applies the event's effect, so both commit together
    (``handle_once`` does). Of two replicas racing on one event, the second waits for the
    first and gets False.
    """
    return insert_once(session, processed_model, event_id=event.event_id,
                       event_type=event.TYPE, handled_at=utcnow())


def handle_once(sessions, processed_model, event_cls: type[E], payload,
                effect: Callable[[Any, E], T]) -> T | None:
    """The one way a service handles an event: parse ``payload``, then in ONE transaction
    record the event id (``processed_model``) and apply ``effect(session, event)``; both
    commit or neither does. Returns what the effect returned, or None when the event was
    malformed (dropped) or handled before (nothing written).

    The effect changes only this service's database (events it causes go to its outbox in the
    same session). Work outside the database (telling a Docker engine, sending mail) happens
    after the commit, driven by what the effect returned, and must be safe to redo or be
    converged later by the service's own loops: a crash after the commit does not replay it.
    """
    event = receive(event_cls, payload)
    if event is None:
        return None
    with sessions() as session:
        if not first_delivery(session, processed_model, event):
            log.info("%s %s was handled before; skipped", event.TYPE, event.event_id)
            return None
        result = effect(session, event)
        session.commit()
    return result
