"""Every service's event bookkeeping stays bounded: the outbox relay deletes published outbox
rows and handled event ids older than BERTH_EVENT_RETENTION_DAYS (berth.outbox), on SQLite
and PostgreSQL, and never an event still waiting to be published."""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select

from berth.db import utcnow
from berth.outbox import prune_bookkeeping
from services.users.models import Base, OutboxEvent, ProcessedEvent
from services.users.service import UsersService
from tests.support import poll

DAY = dt.timedelta(days=1)


def fill(session_factory, now: dt.datetime) -> None:
    """Published 40 and 10 days ago, unpublished since 40 days; handled 40 and 10 days ago."""
    with session_factory() as session:
        for name, created, published in (("old-published", 40, 40), ("new-published", 10, 10),
                                         ("old-waiting", 40, None)):
            session.add(OutboxEvent(event_id=str(uuid.uuid4()), event_type=name, payload="{}",
                                    created_at=now - created * DAY,
                                    published_at=published and now - published * DAY))
        for name, age in (("old-handled", 40), ("new-handled", 10)):
            session.add(ProcessedEvent(event_id=str(uuid.uuid4()), event_type=name,
                                       handled_at=now - age * DAY))
        session.commit()


def left(session_factory) -> set[str]:
    with session_factory() as session:
        return set(session.scalars(select(OutboxEvent.event_type))) | set(
            session.scalars(select(ProcessedEvent.event_type)))


def test_old_published_rows_and_handled_ids_go_and_waiting_events_stay(databases):
    now = utcnow()
    with databases.scratch_sessions("bookkeeping", Base) as sessions:
        fill(sessions, now)
        assert prune_bookkeeping(sessions, OutboxEvent, now, 0) == {}  # 0 keeps everything
        assert len(left(sessions)) == 5
        removed = prune_bookkeeping(sessions, OutboxEvent, now, 30)
        assert removed == {"event_outbox": 1, "processed_events": 1}
        assert left(sessions) == {"new-published", "old-waiting", "new-handled"}


def test_the_relay_of_a_running_service_prunes(make_service, databases):
    container = make_service(UsersService, OUTBOX_RELAY_INTERVAL=0.1,
                             EVENT_RETENTION_INTERVAL=0.2, EVENT_RETENTION_DAYS=30)
    sessions = next(d for d in container.dependencies if hasattr(d, "sessionmaker")
                    ).sessionmaker
    fill(sessions, utcnow())
    kept = {"new-published", "old-waiting", "new-handled"}
    poll(lambda: left(sessions), until=lambda now_left: now_left == kept, timeout=10,
         what="the old bookkeeping pruned by the relay")
