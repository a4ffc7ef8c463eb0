"""Shapes of the billing API (serials, rentals), with the seed's field names."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from berth.schemas import Body, Message, Reply

Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
SerialText = Annotated[str, Field(min_length=1, max_length=64)]
# A rental's state, the one word every route reports (README "Rental states"): ``active``
# (running: its containers may run), ``expired`` (its end date passed, or an admin ended it),
# ``cancelled`` (an admin withdrew it). Having been renewed is a fact beside the state:
# ``renewed_at``.
RENTAL_STATES = ("active", "expired", "cancelled")
RUNNING = "active"
RentalStatus = Literal[RENTAL_STATES]


class GenerateSerial(Body):
    user_id: Id | None = Field(None, description="the assignee; omit for a bearer code")
    type: Literal["rental", "distributor"]
    expiry_date: dt.date


class SerialGenerated(Message):
    serial_code: str
    serial_id: int


class SerialCheck(Reply):
    serial_code: str
    status: Literal["valid", "used", "expired", "revoked"]
    issued_to: str | None
    serial_id: int
    type: Literal["rental", "distributor"]
    expiry_date: str


class SerialRow(SerialCheck):
    distributor_id: int | None
    used_by: int | None
    created_at: str


class SerialList(Reply):
    serials: list[SerialRow]
    total: int


class UpdateSerial(Body):
    serial_code: SerialText | None = Field(None, description="replace the code (well-formed)")
    expiry_date: dt.date | None = None
    status: Literal["valid", "revoked"] | None = Field(None, description="revoke or reinstate")


class RedeemSerial(Body):
    serial_code: SerialText


class Redeemed(Message):
    rental_id: int
    serial_id: int
    rental_status: RentalStatus
    rental_expiry: str
    renewed: bool = Field(description="true when the serial extended a running rental")


class ApplyDistributor(Body):
    user_id: Id
    distributor_code: SerialText


class ExpiredRental(Reply):
    rental_id: int
    user_id: int
    expiry_date: str


class ExpiredRentals(Reply):
    expired_rentals: list[ExpiredRental]


class ExpiryNotification(Body):
    user_id: Id
    expiry_date: dt.date


class RenewRental(Body):
    rental_id: Id
    new_expiry_date: dt.date


class RentalRow(Reply):
    rental_id: int
    status: RentalStatus
    start_date: str
    end_date: str
    serial_id: int | None
    renewed_at: str | None = Field(description="when it was last renewed (its end date moved "
                                   "later, or it was made to run again); null: never")


class RentalHistory(Reply):
    user_id: int
    rental_history: list[RentalRow]


class UserHistory(Reply):
    user_id: int
    history: list[RentalRow]


class UpdateRentalHistory(Body):
    status: Literal[(*RENTAL_STATES, "renewed")] | None = Field(
        None, description="active, expired or cancelled; the seed's \"renewed\" is taken "
        "as active (the rental runs)")
    start_date: dt.date | None = None
    end_date: dt.date | None = None


class RentalInfo(Reply):
    user_id: int
    rental_status: Literal["active", "expired", "none"]
    rental_expiry: str | None
    rental_id: int | None
