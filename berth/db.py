"""Databases: one per service, SQLite files by default, PostgreSQL via BERTH_DATABASE_URL.

Plain SQLAlchemy helpers, no nameko: engines, UTC columns, scratch databases, idempotent
inserts, batched deletes, the tables every service has. The nameko dependency that hands a
service its sessions is ``berth.db_provider.Database``.

SQLite gets one connection per process (greenthreads queue for it rather than blocking the
whole process on SQLite's file lock), and waits for another process's write lock by sleeping
in Python (``CooperativeSQLite``), never in SQLite's C busy handler, which would stop every
greenthread of the process; PostgreSQL gets a real pool and must be driven through psycogreen
under eventlet (``berth.run`` arranges that).
"""
from __future__ import annotations

import datetime as dt
import sqlite3
import time

from sqlalchemy import DateTime, String, create_engine, delete, event, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator



def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def isoformat(value: dt.datetime | None) -> str | None:
    """ISO-8601 UTC with a trailing Z, as every API timestamp is."""
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            value = value.astimezone(dt.timezone.utc)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value


SQLITE_LOCK_WAIT = 30.0  # seconds a statement waits for another connection's write lock


def _waiting_for_the_lock(connection: sqlite3.Connection, call, *args):
    """``call(*args)``, retried while SQLite answers SQLITE_BUSY (another connection holds
    the write lock), for up to SQLITE_LOCK_WAIT seconds. The sleep is ``time.sleep``, which
    eventlet's monkey-patching makes a yield: the process's other greenthreads (an RPC reply
    being consumed, a heartbeat) go on while this one waits. Only the plain SQLITE_BUSY is
    retried, the code SQLite gives when the statement could not start its transaction; an
    extended one (SQLITE_BUSY_SNAPSHOT: this transaction's snapshot is stale) is raised, and
    so is a BUSY that ended ``connection``'s transaction (a retry would run the statement in
    a new one, and a later commit would commit only part of the work)."""
    deadline = time.monotonic() + SQLITE_LOCK_WAIT
    pause = 0.001
    while True:
        in_transaction = connection.in_transaction
        try:
            return call(*args)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY \
                    or (in_transaction and not connection.in_transaction) \
                    or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


class _CooperativeCursor(sqlite3.Cursor):
    def execute(self, *args):
        return _waiting_for_the_lock(self.connection, super().execute, *args)

    def executemany(self, *args):
        return _waiting_for_the_lock(self.connection, super().executemany, *args)


class CooperativeSQLite(sqlite3.Connection):
    """A sqlite3 connection (``timeout=0``: SQLite's own busy handler never sleeps) whose
    statements and commits wait for a busy database in ``_waiting_for_the_lock``.
    ``executescript`` is not retried (it commits first and runs several statements): Berth
    does not use it on these connections."""

    def cursor(self, factory=_CooperativeCursor):
        return super().cursor(factory)

    def execute(self, *args):
        return self.cursor().execute(*args)

    def executemany(self, *args):
        return self.cursor().executemany(*args)

    def commit(self):
        return _waiting_for_the_lock(self, super().commit)


def normalise_url(url: str):
    """``postgresql://`` means psycopg2 here: the driver psycogreen makes eventlet-friendly
    (SQLAlchemy 2.1 would otherwise pick psycopg 3)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def make_engine(url: str) -> Engine:
    parsed = normalise_url(url)
    url = parsed
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed, pool_size=1, max_overflow=0, pool_timeout=30,
            connect_args={"check_same_thread": False, "timeout": 0,
                          "factory": CooperativeSQLite})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
        return engine
    # BERTH_DB_POOL_SIZE connections are kept once opened, BERTH_DB_POOL_OVERFLOW more are
    # opened at a peak and closed when they come back. An overflow connection is a
    # PostgreSQL backend forked and torn down per use: with 10 kept and 20 overflow (the
    # old defaults), 16 concurrent reads forked one for about every third request, and that
    # cost 0.4 cores and a fifth of the throughput (make bench-gateway --database
    # postgresql, issue 18 note). The default keeps 20 (five services: 100, a default
    # PostgreSQL's max_connections) and opens 10 more at a peak, the same cap of 30 as
    # before. A worker waits for a connection at most half the RPC timeout, then answers
    # 503 (berth.service.rpc), never 500.
    from berth.settings import get_settings
    settings = get_settings()
    engine = create_engine(url, pool_size=settings.db_pool_size,
                           max_overflow=settings.db_pool_overflow,
                           pool_timeout=settings.rpc_timeout / 2, pool_recycle=1800)
    ping_when_idle(engine)
    return engine


PING_AFTER_IDLE = 1.0  # seconds a pooled connection may rest before it is checked


def ping_when_idle(engine: Engine) -> None:
    """Check a connection with a ``SELECT 1`` before handing it out only when it has rested
    ``PING_AFTER_IDLE`` seconds or more; a dead one is replaced, as ``pool_pre_ping`` does
    (which pings at every checkout: a round trip per request, an eighth of the users
    service's samples under load, benchmarks.profile_hops). A connection used moments ago
    that the server has since dropped (a restart mid-load) fails its statement instead: the
    request is a 503 (``berth.service.rpc``) and SQLAlchemy, seeing a disconnect, retires
    every connection of the pool opened before it."""
    @event.listens_for(engine, "connect")
    def _fresh(dbapi_connection, record):
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection, record):
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_rested(dbapi_connection, record, proxy):
        if time.monotonic() - record.info.get("returned_at", 0.0) < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("a pooled connection failed its ping") from exc


def _on_server(url: str, statement) -> None:
    """Run ``statement(conn, name)`` on the PostgreSQL server of ``url`` (its ``postgres``
    database, autocommit), for the database ``name`` that ``url`` names. SQLite: nothing."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            statement(conn, parsed.database)
    finally:
        admin.dispose()


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` if it does not exist yet."""
    def create(conn, name):
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                              {"n": name}).scalar()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    _on_server(url, create)


def drop_database(url: str) -> None:
    """Drop the PostgreSQL database named in ``url`` (a scratch one), connections and all."""
    _on_server(url, lambda conn, name: conn.execute(
        text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))


def create_schema(base: type[DeclarativeBase], url: str) -> None:
    """``create_all`` on a scratch database (domain tests, benchmarks). A service's own
    database is migrated instead: ``berth.migrations.upgrade``, run by ``berth.manage init``."""
    ensure_database(url)
    engine = make_engine(url)
    try:
        base.metadata.create_all(engine)
    finally:
        engine.dispose()


def insert_once(session, model, **values) -> bool:
    """INSERT a row unless one with the same unique key exists; True if this call inserted it.

    ``INSERT ... ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite): of concurrent callers
    exactly one inserts, the others wait for it and get False, with no error to roll back.
    """
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    result = session.execute(insert(model).values(**values).on_conflict_do_nothing())
    return result.rowcount == 1


def delete_in_batches(session_factory, model, condition, batch: int = 5000) -> int:
    """Delete the ``model`` rows matching ``condition``, ``batch`` per statement, each in its
    own transaction, until none is left: a large backlog never holds one long lock or one
    huge transaction. Returns how many rows went."""
    key = model.__mapper__.primary_key[0]
    removed = 0
    while True:
        with session_factory() as session:
            ids = select(key).where(condition).order_by(key).limit(batch).scalar_subquery()
            count = session.execute(delete(model).where(key.in_(ids)).execution_options(
                synchronize_session=False)).rowcount
            session.commit()
        removed += count
        if count < batch:
            return removed


# --- tables every service has -------------------------------------------------------------

class OutboxEventMixin:
    """Events a service has committed to publish (transactional outbox, see berth.outbox)."""
    __tablename__ = "event_outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(String)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))


class ProcessedEventMixin:
    """Event ids a service has already handled, so redelivered events change nothing."""
    __tablename__ = "processed_events"
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    handled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LeaseMixin:
    """A named lease: periodic work that must run in one replica at a time (berth.lease)."""
    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
