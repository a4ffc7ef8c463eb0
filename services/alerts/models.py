"""Tables owned by the alerts service (database ``alerts``)."""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import JSON, BigInteger, Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from berth.db import LeaseMixin, ProcessedEventMixin, UTCDateTime, utcnow


class Base(DeclarativeBase):
    pass


class MailMessage(Base):
    """The mail outbox: every message Berth sends, kept after delivery as a record.

    A message goes to ``to_address``, to a user (``to_user_id``, address looked up when
    sending) or to everyone with a role (``to_role``: expanded when sending into one message
    per address, the parent then ``expanded``).
    """
    __tablename__ = "mail_outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    message_uuid: Mapped[str] = mapped_column(String(36), default=lambda: str(uuid.uuid4()))
    kind: Mapped[str] = mapped_column(String(48))
    to_user_id: Mapped[int | None] = mapped_column()  # address looked up when sending
    to_role: Mapped[str | None] = mapped_column(String(16))  # every user with this role
    parent_id: Mapped[int | None] = mapped_column(index=True)  # the to_role message expanded
    to_address: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, sent, expanded
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(36))  # the delivery pass holding it
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_mail_outbox_due", "status", "next_attempt_at"),)


class WebhookDelivery(Base):
    """The webhook outbox: one signed JSON POST per notification, retried until a 2xx."""
    __tablename__ = "webhook_outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_uuid: Mapped[str] = mapped_column(String(36), unique=True,
                                               default=lambda: str(uuid.uuid4()))
    kind: Mapped[str] = mapped_column(String(48))  # alert_raised, alert_resolved
    payload: Mapped[str] = mapped_column(Text)  # the exact JSON body sent on every attempt
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, sent
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_webhook_outbox_due", "status", "next_attempt_at"),)


class AlertId(Base):
    """One id sequence for rules and alerts, so an ``alert_id`` names exactly one of them
    (``DELETE /api/alerts/delete/<id>`` takes the id ``add`` returned or a listed alert's)."""
    __tablename__ = "alert_ids"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # rule, alert


class AlertRule(Base):
    """``POST /api/alerts/add``: what to watch (alert_type), from when (threshold), and the
    text alerts it raises start with (message)."""
    __tablename__ = "alert_rules"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    alert_type: Mapped[str] = mapped_column(String(32), index=True)
    threshold: Mapped[int] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[int | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Alert(Base):
    """A raised alert. While open, ``open_key`` (unique) holds its condition's dedupe key, so
    one condition has at most one open alert however often it is seen; resolving clears it."""
    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    alert_type: Mapped[str] = mapped_column(String(32))
    condition: Mapped[str] = mapped_column(String(32))  # server_down, container_down, ...
    dedupe_key: Mapped[str] = mapped_column(String(160), index=True)
    open_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    rule_id: Mapped[int | None] = mapped_column(index=True)
    subject_type: Mapped[str] = mapped_column(String(16))  # server, container, user
    subject_id: Mapped[int] = mapped_column()
    subject_name: Mapped[str | None] = mapped_column(String(128))
    user_id: Mapped[int | None] = mapped_column(index=True)  # the user it concerns, if any
    message: Mapped[str] = mapped_column(String(1000))
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open, resolved
    occurrences: Mapped[int] = mapped_column(default=1)
    raised_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (Index("ix_alerts_status_raised", "status", "raised_at"),)


class AlertNotice(Base):
    """An alert raised or resolved, waiting to be mailed in the next digest
    (``services.alerts.digest``): ``queued``, then ``mailed`` (in digest ``mail_id``) or
    ``suppressed`` (a flap inside its subject's mail window; ``mail_id`` is then the digest
    that reported it as a flap, if any)."""
    __tablename__ = "alert_notices"
    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(index=True)
    subject_key: Mapped[str] = mapped_column(String(48))  # "<subject type>:<id>"
    kind: Mapped[str] = mapped_column(String(16))  # raised, resolved
    status: Mapped[str] = mapped_column(String(16), default="queued")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    handled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    mail_id: Mapped[int | None] = mapped_column()

    __table_args__ = (Index("ix_alert_notices_status", "status", "id"),
                      Index("ix_alert_notices_subject", "subject_key", "kind", "status"))


class AuditLog(Base):
    """The platform's audit trail: every state-changing API call and every domain event.

    ``source_key`` (``api:<record id>``, the gateway's random id for the request, or
    ``event:<event id>``) is unique, so a redelivered
    message never makes a second row. ``user_id`` is the user the row concerns (the subject's
    user, else the actor), which ``GET /api/logs/user_by_time`` selects on with the actor.
    """
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    source_key: Mapped[str] = mapped_column(String(48), unique=True)
    source: Mapped[str] = mapped_column(String(8))  # api, event
    action: Mapped[str] = mapped_column(String(96), index=True)  # "POST /api/x" or event type
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_type: Mapped[str] = mapped_column(String(16))  # user, anonymous, system
    actor_user_id: Mapped[int | None] = mapped_column(index=True)
    actor_username: Mapped[str | None] = mapped_column(String(64))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    subject_type: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(index=True)
    status_code: Mapped[int | None] = mapped_column()
    message: Mapped[str] = mapped_column(String(1000))
    original_message: Mapped[str | None] = mapped_column(String(1000))  # before an edit
    edited_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    edited_by: Mapped[int | None] = mapped_column()
    details: Mapped[dict] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_audit_log_subject", "subject_type", "subject_id", "action",
                            "occurred_at"),
                      # a deleted row's id is never given to a new one (SQLite reuses the
                      # highest rowid otherwise): a repeated DELETE must stay a 404
                      {"sqlite_autoincrement": True})


class AppliedEvent(Base):
    """The newest event of each kind this service has applied about a subject: when it
    occurred (the event's clock) and when it was applied here (this service's clock). Events
    of different types travel on different queues, so a ``server_came_back`` may be applied
    before the ``server_went_down`` it follows; ``services.alerts.ordering`` asks this table,
    not the audit log (which an admin may edit and retention prunes), whether an event is
    older than the last opposite one. Written in the transaction of the event's effect."""
    __tablename__ = "applied_events"
    subject_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(48), primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    applied_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_applied_events_kind_applied", "subject_type", "kind",
                            "applied_at"),)


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class Lease(LeaseMixin, Base):
    pass
