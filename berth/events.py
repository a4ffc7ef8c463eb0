"""The catalogue of every event Berth dispatches: name, source service, version and payload.

Every event travels as a JSON envelope: ``event_id`` (uuid4), ``occurred_at`` (ISO-8601 UTC),
``version`` and the payload fields below. Events are recorded in the source service's outbox in
the same transaction as the change they describe (``berth.outbox``), published with mandatory
routing, and handled idempotently by consumers (``first_delivery``). Consumers ignore fields
they do not know, so adding a field is not a breaking change; removing or retyping one bumps
``version``.

| event                           | source  | consumed by | meaning                                         |
|---------------------------------|---------|-------------|-------------------------------------------------|
| verification_email_requested    | users   | alerts      | mail this address a link that verifies it       |
| distributor_code_redeemed       | billing | users       | make this user a distributor                    |
| rental_started                  | billing | alerts      | a user's new rental runs until end_date         |
| rental_renewed                  | billing | alerts      | a rental now ends later (and is active again)   |
| rental_expired                  | billing | alerts      | a rental passed its end_date (stop containers)  |
| rental_expiry_reminder_due      | billing | alerts      | remind the user: days_left days to end_date     |
| rental_expiry_notice_requested  | billing | alerts      | an admin asked to notify a user of expiry_date  |

Rental events are also what the containers service will react to (stop on rental_expired,
start on rental_started / rental_renewed) once it consumes them.
"""
from __future__ import annotations

import logging
import uuid
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from berth.db import insert_once, isoformat, utcnow

log = logging.getLogger(__name__)

CATALOGUE: dict[str, type[Event]] = {}


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

    @classmethod
    def new(cls, **fields) -> Event:
        return cls(event_id=str(uuid.uuid4()), occurred_at=isoformat(utcnow()),
                   version=cls.VERSION, **fields)


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
    """A rental's end moved later (by renewal or by redeeming another serial)."""
    previous_end_date: str


@catalogued("billing", "rental_expired", 1)
class RentalExpired(RentalEvent):
    """The expiry sweep found the rental past its end_date."""


@catalogued("billing", "rental_expiry_reminder_due", 1)
class RentalExpiryReminderDue(RentalEvent):
    """Sent once per rental, end date and threshold (7, 3, 1 days by default)."""
    days_left: int


@catalogued("billing", "rental_expiry_notice_requested", 1)
class RentalExpiryNoticeRequested(Event):
    """An admin asked Berth to tell a user their rental expires on expiry_date."""
    user_id: int
    expiry_date: str


def receive(cls: type[Event], payload) -> Event | None:
    """Parse an incoming event; a malformed one is logged and dropped (``None``)."""
    try:
        return cls.model_validate(payload)
    except ValidationError as exc:
        log.error("dropping malformed %s event: %s", cls.TYPE, exc)
        return None


def first_delivery(session, processed_model, event: Event) -> bool:
    """Record that ``event`` is being handled; False if it already was (a redelivery).

    Call inside the transaction that applies the event's effect, so both commit together.
    Of two replicas racing on one event, the second waits for the first and gets False.
    """
    return insert_once(session, processed_model, event_id=event.event_id,
                       event_type=event.TYPE, handled_at=utcnow())
