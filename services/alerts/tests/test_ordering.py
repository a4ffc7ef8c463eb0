"""Event order from the alerts database's own state (``services.alerts.ordering``), not from
audit rows: an older event handled after a newer opposite one changes nothing even when an
admin deleted the newer one's audit row or retention pruned it. Domain tests on SQLite, no
broker."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select

from berth.db import isoformat
from berth.events import (ContainerDied, ContainerRecovered, ServerCameBack, ServerUpdated,
                          ServerWentDown, handle_once)
from services.alerts import ordering, reactions
from services.alerts.models import Alert, AppliedEvent, AuditLog, ProcessedEvent
from services.alerts.webhook import WebhookConfig

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
NO_HOOK = WebhookConfig(None, None)


def at(minutes: int) -> str:
    return isoformat(NOW + dt.timedelta(minutes=minutes))


def apply(session_factory, event, now=NOW):
    """As the service's handler does: once per event id, in one transaction."""
    return handle_once(session_factory, ProcessedEvent, type(event), event.model_dump(),
                       lambda session, e: reactions.apply_event(session, e, now, NO_HOOK))


def forget_the_audit_log(session_factory):
    """What an admin deleting rows, or retention, does to the audit log."""
    with session_factory() as session:
        session.execute(delete(AuditLog))
        session.commit()


def open_alerts(session_factory):
    with session_factory() as session:
        return session.scalars(select(Alert).where(Alert.status == "open")).all()


def went_down(minutes: int, server_id: int = 8) -> ServerWentDown:
    return ServerWentDown.new(server_id=server_id, server_name="web-8", ip_address="10.0.0.8",
                              last_seen_at=at(minutes - 1), reason="ping timed out"
                              ).model_copy(update={"occurred_at": at(minutes)})


def test_an_outage_older_than_a_comeback_whose_audit_row_is_gone_raises_nothing(
        session_factory):
    apply(session_factory, ServerCameBack.new(server_id=8, server_name="web-8",
                                              ip_address="10.0.0.8", down_since=at(-5)
                                              ).model_copy(update={"occurred_at": at(1)}))
    forget_the_audit_log(session_factory)
    apply(session_factory, went_down(0))
    assert open_alerts(session_factory) == []
    apply(session_factory, went_down(2))  # a newer outage is an alert
    assert len(open_alerts(session_factory)) == 1


def test_an_outage_older_than_maintenance_raises_nothing_and_other_edits_do_not_count(
        session_factory):
    def updated(server_id, maintenance, minutes):
        return ServerUpdated.new(server_id=server_id, server_name="s", ip_address="10.0.0.9",
                                 changed=["maintenance"], maintenance=maintenance
                                 ).model_copy(update={"occurred_at": at(minutes)})
    apply(session_factory, updated(8, True, 1))
    apply(session_factory, updated(9, False, 1))  # an edit that is not maintenance
    forget_the_audit_log(session_factory)
    apply(session_factory, went_down(0, server_id=8))
    apply(session_factory, went_down(0, server_id=9))
    assert [a.subject_id for a in open_alerts(session_factory)] == [9]


def test_a_death_older_than_a_recovery_whose_audit_row_is_gone_raises_nothing(
        session_factory):
    fields = dict(container_id=5, container_name="app", user_id=42, server_id=1)
    apply(session_factory, ContainerRecovered.new(**fields).model_copy(
        update={"occurred_at": at(1)}))
    forget_the_audit_log(session_factory)
    apply(session_factory, ContainerDied.new(**fields, status="stopped", exit_code=1,
                                             reason="exited").model_copy(
        update={"occurred_at": at(0)}))
    assert open_alerts(session_factory) == []


def test_the_newest_occurrence_is_kept_and_the_last_application_time_moves_on(
        session_factory):
    with session_factory() as session:
        ordering.note(session, "container", 5, "container_recovered", NOW, NOW)
        ordering.note(session, "container", 5, "container_recovered",
                      NOW - dt.timedelta(hours=1), NOW + dt.timedelta(seconds=30))
        session.commit()
        [row] = session.scalars(select(AppliedEvent)).all()
        assert row.occurred_at == NOW  # an older event arriving late lowers nothing
        assert row.applied_at == NOW + dt.timedelta(seconds=30)
        kinds = ("container_recovered", "container_removed")
        assert ordering.occurred_since(session, "container", 5, kinds,
                                       NOW - dt.timedelta(seconds=1))
        assert not ordering.occurred_since(session, "container", 5, kinds, NOW)
        assert ordering.applied_since(session, "container", kinds, NOW) == {5}
        assert ordering.applied_since(session, "container", kinds,
                                      NOW + dt.timedelta(minutes=1)) == set()
        assert ordering.applied_since(session, "server", kinds, NOW) == set()
