"""Becoming a distributor by redeeming a distributor serial (no nameko).

The role itself belongs to the users service: billing claims the serial and records
``distributor_code_redeemed``, which users applies. ``Accounts`` is the one thing asked of the
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


def apply(session: Session, accounts: Accounts, user_id: int, code: str, today: dt.date,
          now: dt.datetime) -> tuple[Serial, DistributorCodeRedeemed]:
    """Claim the distributor serial ``code`` for ``user_id``, a plain user. Returns the claimed
    serial and the event that grants the role."""
    contact = accounts.contact(user_id)
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
    if serials.used_distributor_serial(session, user_id) is not None:
        # the role is granted by an event; until it lands, refuse a second code
        raise Conflict(f"User {user_id} has already redeemed a distributor serial")
    if not serials.claim(session, serial, user_id, now):
        raise Conflict("Serial already used")
    return serial, DistributorCodeRedeemed.new(user_id=user_id, serial_id=serial.id)
