"""Leases in the service's own database: ``@every`` timers fire in every replica, and work that
must happen once per tick (an expiry sweep, a traffic sweep, a failover) takes one first.

Acquiring is a conditional UPDATE (or the INSERT of a missing row), so of two replicas racing
for an expired lease exactly one wins on SQLite and on PostgreSQL alike.
"""
from __future__ import annotations

import datetime as dt
import os
import socket
import time
import uuid
from contextlib import contextmanager

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from berth.concurrency import sleep
from berth.db import utcnow
from berth.errors import Conflict

HOLDER = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def try_acquire(session_factory, model, name: str, ttl_seconds: float,
                holder: str = HOLDER, now: dt.datetime | None = None) -> bool:
    """True if ``holder`` now holds lease ``name`` until now + ttl (renewing its own)."""
    now = now or utcnow()
    until = now + dt.timedelta(seconds=ttl_seconds)
    with session_factory() as session:
        result = session.execute(
            update(model).where(model.name == name,
                                or_(model.expires_at < now, model.holder == holder))
            .values(holder=holder, expires_at=until))
        if result.rowcount == 1:
            session.commit()
            return True
        if session.get(model, name) is not None:
            session.rollback()
            return False
        session.add(model(name=name, holder=holder, expires_at=until))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return False
        return True



def release(session_factory, model, name: str, holder: str) -> None:
    """Give up lease ``name`` if ``holder`` still holds it."""
    with session_factory() as session:
        session.execute(update(model).where(model.name == name, model.holder == holder)
                        .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
        session.commit()


@contextmanager
def held(session_factory, model, name: str, ttl_seconds: float, wait: float = 0.0,
         busy: str = "Another operation is in progress; try again shortly"):
    """Hold lease ``name`` for the block, waiting up to ``wait`` seconds for it; Conflict
    (409) with ``busy`` if it stays taken. Each use is its own holder, so two greenthreads
    of one process exclude each other too."""
    holder = f"{HOLDER[:50]}-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + wait
    while not try_acquire(session_factory, model, name, ttl_seconds, holder=holder):
        if time.monotonic() >= deadline:
            raise Conflict(busy)
        sleep(0.2)
    try:
        yield
    finally:
        release(session_factory, model, name, holder)
