"""Shapes of the billing API (serials, rentals), with the seed's field names."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from berth.schemas import Body, Message, Reply

Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
SerialText = Annotated[str, Field(min_length=1, max_length=64)]
RentalStatus = Literal["active", "renewed", "expired", "cancelled"]


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
    rental_status: str
    rental_expiry: str


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


class RentalHistory(Reply):
    user_id: int
    rental_history: list[RentalRow]


class UserHistory(Reply):
    user_id: int
    history: list[RentalRow]


class UpdateRentalHistory(Body):
    status: RentalStatus | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None


class RentalInfo(Reply):
    user_id: int
    rental_status: Literal["active", "expired", "none"]
    rental_expiry: str | None
    rental_id: int | None
