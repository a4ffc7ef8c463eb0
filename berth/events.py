"""The catalogue of every event Berth dispatches: name, source service, version and payload.

Every event travels as a JSON envelope: ``event_id`` (uuid4), ``occurred_at`` (ISO-8601 UTC),
``version`` and the payload fields below. Events are recorded in the source service's outbox in
the same transaction as the change they describe (``berth.outbox``), published with mandatory
routing, and handled idempotently by consumers (``first_delivery``). Consumers ignore fields
they do not know, so adding a field is not a breaking change; removing or retyping one bumps
``version``.

| event                          | source | consumed by | meaning                                        |
|--------------------------------|--------|-------------|------------------------------------------------|
| verification_email_requested   | users  | alerts      | mail this address a link that verifies it      |
"""
from __future__ import annotations

import logging
import uuid
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from berth.db import isoformat, utcnow

log = logging.getLogger(__name__)

CATALOGUE: dict[str, type[Event]] = {}


class Event(BaseModel):
    """Envelope fields shared by every event."""
    model_config = ConfigDict(extra="ignore", frozen=True)

    TYPE: ClassVar[str] = ""
    SOURCE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

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
    user_id: int
    username: str
    email: str
    verification_url: str
    expires_at: str


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
    Two replicas racing on one event both pass here, and the second commit fails on the
    primary key; its handler raises, the message is requeued and then skipped.
    """
    if session.get(processed_model, event.event_id) is not None:
        return False
    session.add(processed_model(event_id=event.event_id, event_type=event.TYPE))
    return True
