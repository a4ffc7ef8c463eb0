"""Becoming a distributor by redeeming a distributor serial (no nameko).

The role itself belongs to the users service. Billing claims the serial (and records
``distributor_code_redeemed`` in the same transaction), then asks users to grant the role
before it answers, so the caller's next login carries it. If that second step fails the
caller gets a 503 and the serial stays claimed with ``role_granted_at`` unset: the same
user applying again with the same code completes the grant (and the event grants it within
seconds anyway; users grants at most once per serial). ``Accounts`` is what is asked of the
users service, so the rules run against a fake in unit tests.
"""
from __future__ import annotations

import datetime as dt
from typing import Protocol

from sqlalchemy.orm import Session

from berth.errors import BadRequest, Conflict, Forbidden
from berth.events import DistributorCodeRedeemed
from services.billing import serials
from services.billing.models import Serial


class Accounts(Protocol):
    def contact(self, user_id: int) -> dict:
        """The user's ``role`` (and address); NotFound for an unknown user."""

    def grant_distributor(self, user_id: int, serial_id: int) -> str:
        """Grant the role for this serial (once per serial); the user's role afterwards."""


def apply(session: Session, accounts: Accounts, user_id: int, code: str, today: dt.date,
          now: dt.datetime) -> tuple[Serial, DistributorCodeRedeemed | None]:
    """Claim the distributor serial ``code`` for ``user_id``, a plain user. Returns the claimed
    serial and the event to record; the event is None when this is a retry of an application
    whose serial was claimed but whose grant was not confirmed (``grant`` completes it)."""
    contact = accounts.contact(user_id)
    used = serials.used_distributor_serial(session, user_id)
    if used is not None and used.role_granted_at is None \
            and serials.codes.normalise(code) == used.code:
        return used, None  # the same application again: complete its grant
    if contact["role"] != "user":
        raise Conflict(f"User {user_id} is already a {contact['role']}")
    try:
        serial = serials.find(session, code)
    except BadRequest:
        raise BadRequest("Invalid distributor data", [
            {"field": "distributor_code", "message": "not a well-formed serial code"}]
        ) from None
    serials.refuse_unusable(serial, today, "distributor", "Invalid distributor data")
    if serial.issued_to_user_id not in (None, user_id):
        raise Forbidden("This serial was issued to another user")
    if used is not None:
        raise Conflict(f"User {user_id} has already redeemed a distributor serial")
    if not serials.claim(session, serial, user_id, now):
        raise Conflict("Serial already used")
    return serial, DistributorCodeRedeemed.new(user_id=user_id, serial_id=serial.id)


def grant(session: Session, accounts: Accounts, serial: Serial, now: dt.datetime) -> None:
    """Ask users for the role the claimed ``serial`` grants and record that it is granted.
    Conflict if the user is not a distributor afterwards (the serial's grant was used
    before and an admin has changed the role since)."""
    role = accounts.grant_distributor(serial.used_by, serial.id)
    if role != "distributor":
        raise Conflict(f"User {serial.used_by} is a {role} now; this serial was used")
    serial.role_granted_at = now
