"""SQLite's write lock is waited for cooperatively (berth.db.CooperativeSQLite): while one
connection holds it, a greenthread whose statement needs it sleeps in Python, so the rest of
the process (an RPC reply being consumed, in production) goes on. SQLite's C busy handler
would stop the whole process for up to 30 s instead: in CI, a containers replica waiting for
the other's lock missed the billing reply it was waiting for and answered 503."""
import sqlite3
import time

import eventlet
import pytest
from sqlalchemy import text

from berth import db


@pytest.fixture
def engines(tmp_path):
    url = f"sqlite:///{tmp_path / 'lock.sqlite3'}"
    first, second = db.make_engine(url), db.make_engine(url)
    with first.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield first, second
    first.dispose()
    second.dispose()


def test_a_statement_waiting_for_the_lock_lets_the_other_greenthreads_run(engines):
    first, second = engines
    holder = first.connect()
    holder.execute(text("INSERT INTO t VALUES (1)"))  # the write lock, held uncommitted

    def insert():
        with second.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
        return time.monotonic()

    waiter = eventlet.spawn(insert)
    ticks, started = 0, time.monotonic()
    while time.monotonic() - started < 0.5:  # the waiter must not stop this loop
        eventlet.sleep(0.01)
        ticks += 1
    holder.commit()
    holder.close()
    finished = waiter.wait()
    assert ticks >= 20 and finished >= started + 0.5
    with second.connect() as conn:
        assert sorted(conn.scalars(text("SELECT n FROM t"))) == [1, 2]


def test_the_wait_is_bounded_and_then_the_lock_error_is_raised(engines, monkeypatch):
    first, second = engines
    monkeypatch.setattr(db, "SQLITE_LOCK_WAIT", 0.3)
    with first.connect() as holder:
        holder.execute(text("INSERT INTO t VALUES (1)"))
        started = time.monotonic()
        with pytest.raises(Exception, match="database is locked"), second.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
        assert 0.3 <= time.monotonic() - started < 2
        holder.rollback()


def test_a_stale_snapshot_is_not_retried(tmp_path):
    """Within a transaction that has read, SQLite cannot wait for the lock (its snapshot would
    be stale): that error is raised at once, as before."""
    path = tmp_path / "snap.sqlite3"
    a = sqlite3.connect(path, timeout=0, factory=db.CooperativeSQLite, isolation_level=None)
    b = sqlite3.connect(path, timeout=0, factory=db.CooperativeSQLite, isolation_level=None)
    a.execute("PRAGMA journal_mode=WAL")
    a.execute("CREATE TABLE t (n INTEGER)")
    b.execute("BEGIN")
    b.execute("SELECT count(*) FROM t").fetchall()  # b's snapshot
    a.execute("INSERT INTO t VALUES (1)")  # a commits after it
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError) as caught:
        b.execute("INSERT INTO t VALUES (2)")
    assert caught.value.sqlite_errorcode != sqlite3.SQLITE_BUSY  # SQLITE_BUSY_SNAPSHOT
    assert time.monotonic() - started < 1
    b.execute("ROLLBACK")
    a.close()
    b.close()
