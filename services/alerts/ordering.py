"""Event order from this service's own state: the last time each kind of event about a
subject occurred and was applied (``models.AppliedEvent``), written in the effect's
transaction. Events of different types travel on different queues, so an older event may be
handled after a newer opposite one (a ``server_went_down`` after the ``server_came_back``
that ended it); it must then change nothing. No nameko here.

Kinds are event types, plus ``server_maintenance`` (a ``server_updated`` that put the server
into maintenance).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, case, literal, select, update
from sqlalchemy.orm import Session

from berth.db import UTCDateTime, insert_once
from services.alerts.models import AppliedEvent

SERVER_MAINTENANCE = "server_maintenance"


def note(session: Session, subject_type: str, subject_id: int, kind: str,
         occurred: dt.datetime, now: dt.datetime) -> None:
    """Record that an event of ``kind`` about the subject, which occurred at ``occurred``,
    is applied now: the newest occurrence is kept (an older one arriving late lowers
    nothing), and the application time is ``now``."""
    if insert_once(session, AppliedEvent, subject_type=subject_type, subject_id=subject_id,
                   kind=kind, occurred_at=occurred, applied_at=now):
        return
    when = literal(occurred, type_=UTCDateTime())
    session.execute(
        update(AppliedEvent)
        .where(and_(AppliedEvent.subject_type == subject_type,
                    AppliedEvent.subject_id == subject_id, AppliedEvent.kind == kind))
        .values(occurred_at=case((AppliedEvent.occurred_at < when, when),
                                 else_=AppliedEvent.occurred_at),
                applied_at=now)
        .execution_options(synchronize_session=False))


def occurred_since(session: Session, subject_type: str, subject_id: int,
                   kinds: tuple[str, ...], since: dt.datetime) -> bool:
    """Whether an event of one of ``kinds`` about the subject occurred after ``since``."""
    return session.scalar(
        select(AppliedEvent.kind).where(AppliedEvent.subject_type == subject_type,
                                        AppliedEvent.subject_id == subject_id,
                                        AppliedEvent.kind.in_(kinds),
                                        AppliedEvent.occurred_at > since).limit(1)) is not None


def applied_since(session: Session, subject_type: str, kinds: tuple[str, ...],
                  since: dt.datetime) -> set[int]:
    """The subjects with an event of one of ``kinds`` applied here (this service's clock)
    after ``since``: what a read of a peer made at ``since`` may not show yet."""
    return set(session.scalars(
        select(AppliedEvent.subject_id).where(AppliedEvent.subject_type == subject_type,
                                              AppliedEvent.kind.in_(kinds),
                                              AppliedEvent.applied_at > since).distinct()))
