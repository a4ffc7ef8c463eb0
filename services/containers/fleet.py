"""The fleet: servers, containers, supervision and high availability (no nameko here).

One mechanism runs everything: a ``Container`` row holds the spec and the desired state; the
engine copy carries labels (installation, container id, server id, generation). Whatever
recreates a container (update, replace, failover, load balance, disaster recovery, drain)
builds a new copy with the next generation, then points the row at it; the reconciler, run on
every health tick, removes the copies that are stale and restarts what should run.

``Fleet`` is the front the service calls; each of its five jobs lives in its own module:

- ``servers.py``: servers and their health (probes, add, edit, maintenance, delete);
- ``lifecycle.py``: containers created, read, stopped, started, renamed, deleted;
- ``recreation.py``: recreate, and the HA operations (failover, load balance, disaster
  recovery, replace, drain);
- ``supervision.py``: the reconciler and the restart backoff;
- ``views.py``: the read views other services use (sampling targets, fleet summary).

Work that recreates or moves containers runs under the ``containers-fleet`` lease, so only
one replica acts at a time (berth.lease).
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from berth.db import utcnow
from berth.docker.engines import EnginePool
from services.containers.engine_ops import EngineOps
from services.containers.lifecycle import ContainerLifecycle
from services.containers.models import Installation
from services.containers.recreation import Recreation
from services.containers.servers import Servers
from services.containers.supervision import Backoff, Supervision
from services.containers.views import ReadViews

__all__ = ["Backoff", "Fleet"]


class Fleet(Servers, ContainerLifecycle, Recreation, Supervision, ReadViews):
    """Domain operations. ``sessions`` makes SQLAlchemy sessions; ``record(session, event)``
    puts an event in the service's outbox (same transaction)."""

    def __init__(self, sessions, pool: EnginePool, record: Callable, *, stop_timeout: int = 3,
                 ping_timeout: float = 2.0, now: Callable[[], dt.datetime] = utcnow,
                 backoff: Backoff = Backoff(), memo: dict | None = None):
        self.sessions = sessions
        self.pool = pool
        self.ops = EngineOps(pool, self.installation, stop_timeout)
        self.backoff = backoff
        self.memo = {} if memo is None else memo  # kept by the caller across Fleets
        self.record = record
        self.ping_timeout = ping_timeout
        self.now = now

    def installation(self) -> str:
        """This installation's key (``berth.managed`` on every copy), made on first use."""
        if "installation" not in self.memo:
            with self.sessions() as session:
                key = session.scalar(select(Installation.key).where(Installation.id == 1))
                if key is None:
                    try:
                        session.add(Installation(id=1, key=uuid.uuid4().hex))
                        session.commit()
                    except IntegrityError:  # another replica made it first
                        session.rollback()
                    key = session.scalar(select(Installation.key).where(Installation.id == 1))
            self.memo["installation"] = key
        return self.memo["installation"]
