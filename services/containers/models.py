"""Tables owned by the containers service (database ``containers``).

A ``Container`` row is the container's spec (image, command, environment, ports, owner) and
what Berth wants of it (``desired_state``); the engine is the truth about what runs. The
reconciler compares the two on every health tick (``services.containers.supervision``).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, Index, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from berth.db import LeaseMixin, OutboxEventMixin, ProcessedEventMixin, UTCDateTime, utcnow

# a server's status, set by the health probe; maintenance is a separate flag (an operator's
# choice: no new placements, alerts muted), so a server in maintenance is still probed
SERVER_STATUSES = ("online", "offline")
# a container's status, Berth's word for what the engine reports (DESIGN.md), plus
# ``creating`` while a create is in flight
CONTAINER_STATUSES = ("running", "stopped", "paused", "restarting", "missing", "creating")


class Base(DeclarativeBase):
    pass


class Server(Base):
    __tablename__ = "servers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    ip_address: Mapped[str] = mapped_column(String(45))  # published ports bind here
    docker_url: Mapped[str] = mapped_column(String(255))
    # PEM text of the TLS client material for a remote engine (all three or none)
    tls_ca_cert: Mapped[str | None] = mapped_column(Text)
    tls_client_cert: Mapped[str | None] = mapped_column(Text)
    tls_client_key: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="offline")
    maintenance: Mapped[bool] = mapped_column(default=False, server_default=false())
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # set whenever the server is offline: since when Berth has seen it down (first probe)
    down_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    engine_version: Mapped[str | None] = mapped_column(String(64))
    # the host's capacity as its engine reported it at the last good probe (docker info:
    # NCPU, MemTotal); None until one. A container whose limits exceed it is not placed here
    cpus: Mapped[int | None] = mapped_column()
    memory_mib: Mapped[int | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Container(Base):
    __tablename__ = "containers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(index=True)  # the owner
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id"), index=True)
    image: Mapped[str] = mapped_column(String(255))
    command: Mapped[list | None] = mapped_column(JSON)
    environment: Mapped[dict] = mapped_column(JSON, default=dict)
    ports: Mapped[dict] = mapped_column(JSON, default=dict)  # {"80/tcp": 18080}
    # the owner's plan's limits when it was created ({"memory_mib", "cpus", "pids_limit",
    # "log_max_mib"}); None: the operator's defaults. Every copy (failover too) gets them.
    limits: Mapped[dict | None] = mapped_column(JSON)
    # the engine's id of the current copy; None while creating or when the copy is gone
    engine_id: Mapped[str | None] = mapped_column(String(64))
    # bumped every time the container is recreated; the engine copy carries it as a label,
    # so a copy with an older generation is stale and is removed when its host is seen
    generation: Mapped[int] = mapped_column(default=1)
    desired_state: Mapped[str] = mapped_column(String(16), default="running")
    # why Berth stopped it: owner, admin or rental_expired (renewal restarts only the last)
    # owner, admin, rental_expired or "suspended: <billing's reason>"
    stopped_reason: Mapped[str | None] = mapped_column(String(160))
    status: Mapped[str] = mapped_column(String(16), default="creating")
    exit_code: Mapped[int | None] = mapped_column()
    died_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # open incident
    # times supervision saw it dead in the open incident (a crash loop is one incident)
    deaths: Mapped[int] = mapped_column(default=0, server_default="0")
    # supervision's restarts since the container last stayed up (the backoff's exponent)
    restarts: Mapped[int] = mapped_column(default=0, server_default="0")
    restarted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    observed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                    onupdate=utcnow)

    __table_args__ = (Index("ix_containers_user_desired", "user_id", "desired_state"),
                      # ids are never reused: an engine copy's label must not name a newcomer
                      {"sqlite_autoincrement": True})


class Installation(Base):
    """One row: this installation's key. Every engine copy carries it as ``berth.managed``,
    so two installations sharing a Docker host never take each other's containers for
    strays. Made on first use (``Fleet.installation``)."""
    __tablename__ = "installation"
    id: Mapped[int] = mapped_column(primary_key=True)  # always 1
    key: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OwnerLock(Base):
    """One row per owner who has created a container under a plan's container count. A
    create that counts takes the row's lock first (an UPDATE of it, in the transaction that
    counts and inserts the container): concurrent creates by one owner, in any replica, are
    serialised, so the count holds (SQLite: the UPDATE takes the database's write lock;
    PostgreSQL: the row's lock)."""
    __tablename__ = "owner_locks"
    user_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    locked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class OutboxEvent(OutboxEventMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class Lease(LeaseMixin, Base):
    pass
