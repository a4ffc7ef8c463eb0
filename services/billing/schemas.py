"""Shapes of the billing API (serials, rentals), with the seed's field names."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from berth.schemas import Body, Message, PageQuery, Reply

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
    plan_id: Id | None = Field(None, description="the plan a rental serial sells (default: "
                                                 "the default plan); not for distributor serials")


class SerialGenerated(Message):
    serial_code: str
    serial_id: int
    plan_id: int | None = Field(None, description="the plan it sells (rental serials)")


class SerialCheck(Reply):
    serial_code: str
    status: Literal["valid", "used", "expired", "revoked"]
    issued_to: str | None
    serial_id: int
    type: Literal["rental", "distributor"]
    expiry_date: str
    plan_id: int | None = Field(None, description="the plan it sells (rental serials)")


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


class ExpiringQuery(PageQuery):
    days: int = Field(7, ge=0, le=366, description="rentals ending from today to this many "
                                                   "days ahead (0: today only)")


class ExpiringRental(Reply):
    rental_id: int
    user_id: int
    username: str | None = Field(description="null: the account was deleted since")
    end_date: str
    days_left: int = Field(description="0: it ends today")
    plan_id: int | None
    suspended_at: str | None


class ExpiringRentals(Reply):
    rentals: list[ExpiringRental]
    total: int
    days: int


class ExpiryNotification(Body):
    user_id: Id
    expiry_date: dt.date


class RenewRental(Body):
    rental_id: Id
    new_expiry_date: dt.date


class Suspension(Reply):
    suspended_at: str | None = Field(None, description="when the rental was suspended (its "
                                     "containers stopped); null: it is not")
    suspension_reason: str | None = Field(None, description="why, e.g. \"traffic quota "
                                          "reached on 2026-12-14\"; null: not suspended")


class RentalRow(Suspension):
    rental_id: int
    status: RentalStatus
    start_date: str
    end_date: str
    serial_id: int | None
    renewed_at: str | None = Field(description="when it was last renewed (its end date moved "
                                   "later, or it was made to run again); null: never")
    plan_id: int | None = Field(None, description="the plan it runs on")


class ResumeRental(Body):
    user_id: Id


class Resumed(Message):
    rental: RentalRow


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
    plan_id: Id = Field(None, description="move the rental to this plan (a retired plan "
                                          "too: it keeps what it has)")


class RentalInfo(Suspension):
    user_id: int
    rental_status: Literal["active", "expired", "none"]
    rental_expiry: str | None
    rental_id: int | None
    plan: PlanRow | None = Field(None, description="what the rental buys (none: no rental)")
    used: RentalUsage | None = Field(None, description="what is used of the plan (none: no "
                                                       "rental)")


class RentalUsage(Reply):
    containers: int | None = Field(description="containers held (null: containers did not "
                                               "answer)")
    traffic_month: str | None = Field(description="the calendar month (UTC) of traffic_bytes")
    traffic_bytes: int | None = Field(description="in+out this month (null: traffic did not "
                                                  "answer)")
    unavailable: list[str] = Field(description="services that did not answer")


# --- distributors: allotments and sales --------------------------------------------------------

AllotmentUnit = Literal["serials", "days"]


class ChangeAllotment(Body):
    """Exactly one of ``serials`` and ``days``, not zero (services.billing.allotments)."""
    plan_id: Id = Field(description="the plan the allotment sells")
    serials: int | None = Field(None, ge=-1_000_000, le=1_000_000,
                                description="rental serials to add (negative: take back)")
    days: int | None = Field(None, ge=-100_000_000, le=100_000_000,
                             description="rental-days to add (negative: take back); a serial "
                                         "takes the days from its generation to its "
                                         "expiry_date")


class AllotmentRow(Reply):
    plan_id: int
    plan_name: str
    unit: AllotmentUnit = Field(description="what the balance counts: serials or days")
    serials_left: int | None = Field(description="serials left (unit serials), else null")
    days_left: int | None = Field(description="rental-days left (unit days), else null")
    updated_at: str | None


class AllotmentReply(Message):
    distributor_id: int
    allotment: AllotmentRow


class AllotmentList(Reply):
    distributor_id: int
    allotments: list[AllotmentRow]


class SalesQuery(PageQuery):
    distributor_id: Id | None = Field(None, description="admins: one distributor's sales "
                                      "(default: every distributor's); a distributor may "
                                      "name only themselves")


class Customer(Reply):
    user_id: int | None
    username: str | None = Field(description="null: the user no longer exists")


class SaleRental(Reply):
    rental_id: int
    status: RentalStatus
    end_date: str


class SaleRow(Reply):
    serial_id: int
    serial_code: str
    distributor_id: int
    plan_id: int | None
    plan_name: str | None
    expiry_date: str
    used_at: str | None
    customer: Customer
    rental: SaleRental | None = Field(description="the rental it started or extended, as it "
                                                  "is now (null: that rental was deleted)")


class SalesSummary(Reply):
    issued: int = Field(description="rental serials issued, redeemed or not")
    redeemed: int
    customers: int = Field(description="distinct users who redeemed one")
    active_rentals: int = Field(description="running rentals their serials started or "
                                            "extended")


class SalesList(Reply):
    sales: list[SaleRow]
    total: int
    summary: SalesSummary


# --- plans and the image catalogue -------------------------------------------------------------

PlanName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\w][\w .+-]*$",
                                description="letters, digits, space, . + - _")]
ImageReference = Annotated[str, Field(
    min_length=1, max_length=255,
    pattern=r"^[a-z0-9]+([._/:-][a-z0-9]+)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$",
    description="an image reference as `docker pull` takes it, e.g. nginx:1.27")]
QuotaAction = Literal["alert", "suspend"]


class PlanLimits(Body):
    """A plan's entitlements (every field of a new plan; any of them in an update)."""
    cpus: float = Field(ge=0.01, le=256, description="CPUs, fractional (0.5: half a core)")
    memory_mib: int = Field(ge=6, le=1_048_576, description="memory in MiB; swap equal to it")
    pids_limit: int = Field(ge=8, le=4_194_304, description="processes (and threads) at most")
    max_containers: int = Field(ge=1, le=1000, description="containers a rental may hold")
    max_ports: int = Field(ge=0, le=64, description="published ports per container")
    log_max_mib: int = Field(ge=1, le=10_240, description="container log kept, in MiB")
    traffic_quota_bytes: int | None = Field(
        None, ge=0, le=2**62, description="monthly in+out; null: the operator's default quota")
    quota_action: QuotaAction = Field(
        "alert", description="at the quota: alert (raise an alert) or suspend (stop the "
                             "rental's containers until the quota allows again)")
    customer_ports: bool = Field(False, description="may customers choose their host ports")
    image_ids: list[Id] = Field(default_factory=list, max_length=200,
                                description="the catalogue images customers may run")


class CreatePlan(PlanLimits):
    name: PlanName
    is_default: bool = Field(False, description="make it the plan unnamed serials sell")


class Changes(Body):
    """A partial update: the fields given change; at least one must be."""
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    @model_validator(mode="after")
    def _something(self):
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


class UpdatePlan(Changes):
    """Any of a plan's fields; only ``traffic_quota_bytes`` may be null (the default quota)."""

    name: PlanName = None
    cpus: float = Field(None, ge=0.01, le=256)
    memory_mib: int = Field(None, ge=6, le=1_048_576)
    pids_limit: int = Field(None, ge=8, le=4_194_304)
    max_containers: int = Field(None, ge=1, le=1000)
    max_ports: int = Field(None, ge=0, le=64)
    log_max_mib: int = Field(None, ge=1, le=10_240)
    traffic_quota_bytes: int | None = Field(None, ge=0, le=2**62)
    quota_action: QuotaAction = None
    customer_ports: bool = None
    image_ids: list[Id] = Field(None, max_length=200)
    is_default: bool = None


class CatalogueImageRow(Reply):
    image_id: int
    reference: str
    display_name: str
    default_command: str | None
    container_port: int | None
    created_at: str | None


class PlanRow(Reply):
    plan_id: int
    name: str
    cpus: float
    memory_mib: int
    pids_limit: int
    max_containers: int
    max_ports: int
    log_max_mib: int
    traffic_quota_bytes: int | None
    quota_action: QuotaAction
    customer_ports: bool
    is_default: bool
    retired: bool
    retired_at: str | None
    created_at: str | None
    image_ids: list[int]
    images: list[CatalogueImageRow]


class PlanReply(Message):
    plan: PlanRow


class PlanList(Reply):
    plans: list[PlanRow]
    total: int


class PlanQuery(PageQuery):
    include_retired: bool = Field(False, description="list retired plans too")


class AddImage(Body):
    reference: ImageReference
    display_name: Annotated[str, Field(min_length=1, max_length=64)]
    default_command: str | None = Field(None, min_length=1, max_length=1024,
                                        description="the command customers get by default")
    container_port: int | None = Field(None, ge=1, le=65535,
                                       description="the TCP port the image serves on")


class UpdateImage(Changes):

    reference: ImageReference = None
    display_name: Annotated[str, Field(min_length=1, max_length=64)] = None
    default_command: str | None = Field(None, min_length=1, max_length=1024,
                                        description="null: no default command")
    container_port: int | None = Field(None, ge=1, le=65535, description="null: none")


class ImageReply(Message):
    image: CatalogueImageRow


class ImageList(Reply):
    images: list[CatalogueImageRow]
    total: int
