"""Tables owned by the alerts service (database ``alerts``)."""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from berth.db import ProcessedEventMixin, UTCDateTime, utcnow


class Base(DeclarativeBase):
    pass


class MailMessage(Base):
    """The mail outbox: every message Berth sends, kept after delivery as a record."""
    __tablename__ = "mail_outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    message_uuid: Mapped[str] = mapped_column(String(36), default=lambda: str(uuid.uuid4()))
    kind: Mapped[str] = mapped_column(String(48))
    to_user_id: Mapped[int | None] = mapped_column()  # address looked up when sending
    to_address: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, sent
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(36))  # the delivery pass holding it
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_mail_outbox_due", "status", "next_attempt_at"),)


class ProcessedEvent(ProcessedEventMixin, Base):
    pass
