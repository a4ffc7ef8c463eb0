"""Tables owned by the billing service (database ``billing``)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Date, Float, ForeignKey, Index,
                        String, Text, UniqueConstraint, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from berth.db import LeaseMixin, OutboxEventMixin, ProcessedEventMixin, UTCDateTime, utcnow
from services.billing.schemas import RUNNING  # the state of a running rental: "active"

_RUNNING_SQL = f"status = '{RUNNING}'"


class Base(DeclarativeBase):
    pass


class CatalogueImage(Base):
    """An image customers may be allowed to run (a plan lists which): the admin's catalogue."""
    __tablename__ = "catalogue_images"
    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(255), unique=True)  # e.g. nginx:1.27
    display_name: Mapped[str] = mapped_column(String(64))
    default_command: Mapped[str | None] = mapped_column(Text)
    container_port: Mapped[int | None] = mapped_column()  # the port the image serves (TCP)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Plan(Base):
    """What a rental buys: the limits every container of it runs under, how many containers
    and ports, the monthly traffic quota and what happens at it, and the images it may run."""
    __tablename__ = "plans"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    cpus: Mapped[float] = mapped_column(Float)
    memory_mib: Mapped[int] = mapped_column()  # swap equal to memory
    pids_limit: Mapped[int] = mapped_column()
    max_containers: Mapped[int] = mapped_column()
    max_ports: Mapped[int] = mapped_column()  # published ports per container
    log_max_mib: Mapped[int] = mapped_column()
    traffic_quota_bytes: Mapped[int | None] = mapped_column(BigInteger)  # None: the default
    quota_action: Mapped[str] = mapped_column(String(16), default="alert")  # alert, suspend
    customer_ports: Mapped[bool] = mapped_column(Boolean, default=False)  # may pick host ports
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                    onupdate=utcnow)

    __table_args__ = (
        # one default plan at most, even under concurrent updates
        Index("uq_plans_one_default", "is_default", unique=True,
              sqlite_where=text("is_default"), postgresql_where=text("is_default")),
    )


class PlanImage(Base):
    __tablename__ = "plan_images"
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"),
                                         primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("catalogue_images.id"), primary_key=True)


class Serial(Base):
    __tablename__ = "serials"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)  # canonical, no hyphens
    type: Mapped[str] = mapped_column(String(16))  # rental, distributor
    status: Mapped[str] = mapped_column(String(16), default="valid")  # valid used expired revoked
    expiry_date: Mapped[dt.date] = mapped_column(Date)
    issued_to_user_id: Mapped[int | None] = mapped_column()
    issued_to_email: Mapped[str | None] = mapped_column(String(254))  # as it was at issue
    distributor_id: Mapped[int | None] = mapped_column(index=True)  # set when a distributor made it
    created_by: Mapped[int] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    used_by: Mapped[int | None] = mapped_column()
    # a distributor serial: when the users service confirmed the role it grants (until
    # then a retried application by the same user with the same code completes it)
    role_granted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    rental_id: Mapped[int | None] = mapped_column(
        ForeignKey("rentals.id", ondelete="SET NULL", use_alter=True))  # created or extended
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"))  # rental serials


class Rental(Base):
    __tablename__ = "rentals"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(index=True)
    serial_id: Mapped[int | None] = mapped_column()  # the serial that started it
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"))  # what it buys
    status: Mapped[str] = mapped_column(String(16), default=RUNNING)  # schemas.RENTAL_STATES
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    renewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # last rental_renewed
    # suspended (its containers stopped) until resumed: why, in the customer's words, and the
    # traffic month whose quota it passed (suspension.py)
    suspended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    suspension_reason: Mapped[str | None] = mapped_column(String(128))
    suspended_month: Mapped[str | None] = mapped_column(String(7))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                    onupdate=utcnow)

    __table_args__ = (
        # at most one running rental per user, even under concurrent redeems
        Index("uq_rentals_one_current", "user_id", unique=True,
              sqlite_where=text(_RUNNING_SQL), postgresql_where=text(_RUNNING_SQL)),
        Index("ix_rentals_status_end", "status", "end_date"),
    )


class RentalReminder(Base):
    """One row per reminder sent: the unique key is what makes each one go out once."""
    __tablename__ = "rental_reminders"
    id: Mapped[int] = mapped_column(primary_key=True)
    rental_id: Mapped[int] = mapped_column(ForeignKey("rentals.id", ondelete="CASCADE"))
    days_before: Mapped[int] = mapped_column()
    end_date: Mapped[dt.date] = mapped_column(Date)
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("rental_id", "days_before", "end_date"),)


class Allotment(Base):
    """What a distributor may still sell of one plan (services.billing.allotments). It is
    counted in exactly one unit: ``serials_left`` (each rental serial generated takes one) or
    ``days_left`` (each takes the days from the day it is generated to its expiry_date); the
    other column is NULL. Neither goes below zero (the conditional UPDATE that spends it, and
    these CHECKs)."""
    __tablename__ = "allotments"
    distributor_id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"), primary_key=True)
    serials_left: Mapped[int | None] = mapped_column(BigInteger)
    days_left: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                    onupdate=utcnow)

    __table_args__ = (
        CheckConstraint("(serials_left IS NULL) <> (days_left IS NULL)",
                        name="ck_allotments_one_unit"),
        CheckConstraint("serials_left >= 0", name="ck_allotments_serials_left"),
        CheckConstraint("days_left >= 0", name="ck_allotments_days_left"),
    )


class OutboxEvent(OutboxEventMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class Lease(LeaseMixin, Base):
    pass
