"""Audit log retention, on SQLite and PostgreSQL: rows older than BERTH_AUDIT_RETENTION_DAYS
go, in batches, until none is left; 0 keeps everything; through the service, the RPC prunes at
once and the timer prunes in the replica that holds the lease."""
from __future__ import annotations

import datetime as dt
import time

import pytest
from pydantic import ValidationError
from sqlalchemy import event, func, insert, select, update
from sqlalchemy.orm import sessionmaker

from berth.db import make_engine, utcnow
from berth.settings import reload_settings
from services.alerts import audit
from services.alerts.models import AlertNotice, AuditLog, Base, Lease
from services.alerts.service import AlertsService
from tests.support import poll

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


@pytest.fixture
def sessions(databases):
    """A scratch alerts schema on this backend (not the service's own database)."""
    with databases.scratch_sessions("alerts_retention", Base) as factory:
        yield factory


_serial = iter(range(10**9))


def add_rows(session_factory, count: int, occurred_at: dt.datetime) -> None:
    rows = []
    for _ in range(count):
        n = next(_serial)
        rows.append({"source_key": f"api:retention-{n}", "source": "api",
                     "action": "POST /api/x", "occurred_at": occurred_at,
                     "recorded_at": occurred_at, "actor_type": "system",
                     "message": f"row {n}", "details": {}})
    with session_factory() as session:
        session.execute(insert(AuditLog), rows)
        session.commit()


def occurrences(session_factory) -> list[dt.datetime]:
    with session_factory() as session:
        return sorted(session.scalars(select(AuditLog.occurred_at)))


def count(session_factory) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(AuditLog))


# --- the domain function ----------------------------------------------------------------------

def test_rows_older_than_the_retention_are_deleted_and_newer_ones_kept(sessions):
    now = T0
    add_rows(sessions, 2, now - 400 * DAY)
    add_rows(sessions, 1, now - 30 * DAY - dt.timedelta(seconds=1))  # just past it
    add_rows(sessions, 1, now - 30 * DAY + dt.timedelta(seconds=1))  # just inside it
    add_rows(sessions, 2, now - DAY)
    assert audit.prune(sessions, now, 30) == 3
    assert occurrences(sessions) == [now - 30 * DAY + dt.timedelta(seconds=1),
                                     now - DAY, now - DAY]
    assert audit.prune(sessions, now, 30) == 0  # nothing left to do


def test_zero_days_keeps_every_row(sessions):
    add_rows(sessions, 3, T0 - 5000 * DAY)
    add_rows(sessions, 1, T0)
    assert audit.prune(sessions, T0, 0) == 0
    assert count(sessions) == 4


def test_a_backlog_larger_than_a_batch_goes_in_several_bounded_statements(sessions):
    add_rows(sessions, 11, T0 - 400 * DAY)
    add_rows(sessions, 2, T0 - DAY)
    deleted_per_statement = []
    engine = sessions.kw["bind"]

    def watch(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("DELETE"):
            deleted_per_statement.append(cursor.rowcount)

    event.listen(engine, "after_cursor_execute", watch)
    try:
        assert audit.prune(sessions, T0, 365, batch=4) == 11
    finally:
        event.remove(engine, "after_cursor_execute", watch)
    assert deleted_per_statement == [4, 4, 3]  # never more than a batch at once, until done
    assert occurrences(sessions) == [T0 - DAY, T0 - DAY]


def test_a_negative_retention_is_refused(monkeypatch):
    monkeypatch.setenv("BERTH_AUDIT_RETENTION_DAYS", "-1")
    with pytest.raises(ValidationError, match="audit_retention_days"):
        reload_settings()


# --- through the service ----------------------------------------------------------------------

@pytest.fixture
def alerts_db(databases):
    engine = make_engine(databases.url("alerts"))
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def test_the_rpc_prunes_past_the_configured_retention_beyond_one_batch(
        make_service, rpc, alerts_db, monkeypatch):
    monkeypatch.setenv("BERTH_AUDIT_RETENTION_DAYS", "30")
    reload_settings()
    make_service(AlertsService)
    now = utcnow()
    add_rows(alerts_db, audit.RETENTION_BATCH + 7, now - 31 * DAY)  # more than one batch
    add_rows(alerts_db, 3, now - 29 * DAY)
    reply = rpc.alerts.prune_audit_log_now()
    assert reply == {"removed": audit.RETENTION_BATCH + 7, "notices_removed": 0,
                     "retention_days": 30.0}
    assert count(alerts_db) == 3
    assert rpc.alerts.system_logs({})["total"] == 3


def test_the_rpc_keeps_everything_when_retention_is_zero(make_service, rpc, alerts_db,
                                                         monkeypatch):
    monkeypatch.setenv("BERTH_AUDIT_RETENTION_DAYS", "0")
    reload_settings()
    make_service(AlertsService)
    add_rows(alerts_db, 2, utcnow() - 3650 * DAY)
    assert rpc.alerts.prune_audit_log_now() == {"removed": 0, "notices_removed": 0,
                                                "retention_days": 0.0}
    assert count(alerts_db) == 2


def test_the_default_retention_is_a_year(make_service, rpc, alerts_db):
    make_service(AlertsService)
    now = utcnow()
    add_rows(alerts_db, 1, now - 366 * DAY)
    add_rows(alerts_db, 1, now - 364 * DAY)
    assert rpc.alerts.prune_audit_log_now() == {"removed": 1, "notices_removed": 0,
                                                "retention_days": 365.0}
    assert count(alerts_db) == 1


def test_the_timer_prunes_only_in_the_replica_holding_the_lease(make_service, alerts_db,
                                                                monkeypatch):
    monkeypatch.setenv("BERTH_AUDIT_RETENTION_DAYS", "30")
    reload_settings()
    make_service(AlertsService, AUDIT_RETENTION_INTERVAL=1.0)
    with alerts_db() as session:  # another replica took this tick's lease
        session.add(Lease(name="alerts-audit-retention", holder="another-replica",
                          expires_at=utcnow() + dt.timedelta(hours=1)))
        session.commit()
    add_rows(alerts_db, 2, utcnow() - 31 * DAY)
    add_rows(alerts_db, 1, utcnow() - DAY)
    time.sleep(2.5)  # two ticks: both find the lease taken
    assert count(alerts_db) == 3
    with alerts_db() as session:  # its lease runs out: the next tick here prunes
        session.execute(update(Lease).where(Lease.name == "alerts-audit-retention")
                        .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
        session.commit()
    poll(lambda: count(alerts_db), until=lambda left: left == 1, timeout=15,
         what="the rows past the retention pruned")
    assert count(alerts_db) == 1


def test_handled_alert_notices_past_the_retention_go_and_queued_ones_never_do(
        make_service, rpc, alerts_db, monkeypatch):
    monkeypatch.setenv("BERTH_AUDIT_RETENTION_DAYS", "30")
    reload_settings()
    make_service(AlertsService)
    old, recent = utcnow() - 31 * DAY, utcnow() - DAY
    rows = [("mailed", old), ("suppressed", old), ("mailed", recent), ("queued", None)]
    with alerts_db() as session:
        session.add_all(AlertNotice(alert_id=1, subject_key="server:1", kind="raised",
                                    status=status, created_at=old, handled_at=handled)
                        for status, handled in rows)
        session.commit()
    reply = rpc.alerts.prune_audit_log_now()
    assert reply["notices_removed"] == 2
    with alerts_db() as session:
        left = sorted(session.scalars(select(AlertNotice.status)))
    assert left == ["mailed", "queued"]  # the recent one, and the one still waiting
