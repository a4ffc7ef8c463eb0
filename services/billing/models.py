"""Tables owned by the billing service (database ``billing``)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from berth.db import LeaseMixin, OutboxEventMixin, ProcessedEventMixin, UTCDateTime, utcnow
from services.billing.schemas import RUNNING  # the state of a running rental: "active"

_RUNNING_SQL = f"status = '{RUNNING}'"


class Base(DeclarativeBase):
    pass


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
    rental_id: Mapped[int | None] = mapped_column(
        ForeignKey("rentals.id", ondelete="SET NULL", use_alter=True))  # created or extended


class Rental(Base):
    __tablename__ = "rentals"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(index=True)
    serial_id: Mapped[int | None] = mapped_column()  # the serial that started it
    status: Mapped[str] = mapped_column(String(16), default=RUNNING)  # schemas.RENTAL_STATES
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    renewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # last rental_renewed
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


class OutboxEvent(OutboxEventMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class Lease(LeaseMixin, Base):
    pass
