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
| password_reset_requested        | users   | alerts      | mail this address a single-use password reset link |
| two_factor_locked               | users   | alerts      | wrong two-factor codes reached the limit: mail the owner that their password is known |
| distributor_code_redeemed       | billing | users, alerts | make this user a distributor (billing has already asked users to, synchronously; the event is the audit and a second chance) |
| rental_started                  | billing | alerts, containers | a user's new rental runs until end_date         |
| rental_renewed                  | billing | alerts, containers | a rental now ends later (and is active again)   |
| rental_expired                  | billing | alerts, containers | a rental passed its end_date (stop containers)  |
| rental_expiry_reminder_due      | billing | alerts      | remind the user: days_left days to end_date     |
| rental_expiry_notice_requested  | billing | alerts      | an admin asked to notify a user of expiry_date  |
| rental_suspended                | billing | alerts, containers | a rental's containers must stop: reason says why (the plan's traffic quota) |
| rental_resumed                  | billing | alerts, containers | a suspension ended (limit raised, new month, an admin) |
| rental_plan_changed             | billing | alerts      | an admin moved a rental to another plan         |
| allotment_changed               | billing | alerts      | an admin granted or took back a distributor's allotment |
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
| traffic_quota_exceeded          | traffic | alerts, billing | a user's month in+out passed their quota      |
| traffic_quota_cleared           | traffic | alerts, billing | a user over quota is within it again (limit raised, new month) |

The containers service also consumes rental_expired and rental_suspended (it stops the user's
containers) and rental_started / rental_renewed / rental_resumed (it starts again the containers
that expiry or a suspension stopped, unless the rental is still suspended). Billing consumes
traffic_quota_exceeded (a plan whose quota action is ``suspend`` suspends the rental) and
traffic_quota_cleared (the suspension ends).

Not in this catalogue: the alerts service's *live notices* ``alert_raised`` and
``alert_resolved`` (the alert as the API shows it, on ``alerts.events``), published after the
commit for the gateway's live streams only (``gateway.live``): best effort, no outbox, not
mandatory, consumed by nothing that must not miss one.
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


@catalogued("users", "password_reset_requested", 1)
class PasswordResetRequested(Event):
    """Someone asked to reset the password of the account with this address (POST
    /api/password/forgot): mail it a single-use link that expires at ``expires_at``."""
    SENSITIVE: ClassVar[bool] = True
    user_id: int
    username: str
    email: str
    reset_url: str
    expires_at: str


@catalogued("users", "two_factor_locked", 1)
class TwoFactorLocked(Event):
    """``failures`` wrong two-factor codes for this user within the window: their code steps
    are refused for up to ``minutes`` minutes. Whoever typed them had the password: mail the
    owner to change it."""
    user_id: int
    username: str
    email: str
    failures: int
    minutes: int


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
    made a stopped rental run again. ``suspended``: the rental is suspended (its containers
    stay stopped until ``rental_resumed``)."""
    previous_end_date: str
    suspended: bool = False


@catalogued("billing", "rental_expired", 1)
class RentalExpired(RentalEvent):
    """The expiry sweep found the rental past its end_date, or an admin stopped (edited to
    expired or cancelled) or deleted a running rental."""


@catalogued("billing", "rental_expiry_reminder_due", 1)
class RentalExpiryReminderDue(RentalEvent):
    """Sent once per rental, end date and threshold (7, 3, 1 days by default)."""
    days_left: int


@catalogued("billing", "rental_suspended", 1)
class RentalSuspended(RentalEvent):
    """The rental's containers must stop and stay stopped: ``reason`` is the sentence the
    customer reads (``traffic quota reached on 2026-12-14``); ``month``: the quota's month."""
    reason: str
    month: str | None = None
    used_bytes: int | None = None
    limit_bytes: int | None = None


@catalogued("billing", "rental_resumed", 1)
class RentalResumed(RentalEvent):
    """A suspension ended: ``cause`` is ``limit_raised`` (the quota now covers the month's
    traffic), ``new_month`` or ``admin`` (``actor_id``). ``running``: the rental is active, so
    the containers the suspension stopped start again."""
    cause: str
    running: bool
    actor_id: int | None = None


@catalogued("billing", "rental_plan_changed", 1)
class RentalPlanChanged(RentalEvent):
    """An admin moved a rental to another plan: new containers and copies run under the new
    plan's limits, the quota and its action are the new plan's from the next sweep."""
    from_plan_id: int | None
    plan_id: int
    actor_id: int | None = None


@catalogued("billing", "rental_expiry_notice_requested", 1)
class RentalExpiryNoticeRequested(Event):
    """An admin asked Berth to tell a user their rental expires on expiry_date."""
    user_id: int
    expiry_date: str


@catalogued("billing", "allotment_changed", 1)
class AllotmentChanged(Event):
    """An admin changed what distributor ``distributor_id`` may sell of plan ``plan_id``:
    ``unit`` is ``serials`` or ``days``, ``change`` what was added (negative: taken back),
    ``balance`` what is left after it, ``actor_id`` the admin. Spending the allotment by
    generating a serial is not an event (the serial is the record of it)."""
    distributor_id: int
    plan_id: int
    unit: str
    change: int
    balance: int
    actor_id: int | None = None


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
    """Berth stopped it: reason is ``owner``, ``admin``, ``rental_expired`` or
    ``suspended: <why>`` (the rental's suspension reason)."""
    reason: str
    actor_id: int | None = None


@catalogued("containers", "container_started", 1)
class ContainerStarted(ContainerEvent):
    """Berth started it again: reason is ``rental_renewed``, ``rental_started`` or
    ``rental_resumed``."""
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
    sent once each time they pass it (once a month, unless a raised limit cleared it and
    they passed the new one too)."""
    user_id: int
    month: str
    used_bytes: int
    limit_bytes: int


@catalogued("traffic", "traffic_quota_cleared", 1)
class TrafficQuotaCleared(Event):
    """A user over their quota in ``month`` is no longer: ``cause`` is ``limit_raised`` (their
    quota now covers ``used_bytes``; ``limit_bytes`` is None for no quota) or ``new_month``
    (``month`` ended)."""
    user_id: int
    month: str
    cause: str
    used_bytes: int
    limit_bytes: int | None


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
