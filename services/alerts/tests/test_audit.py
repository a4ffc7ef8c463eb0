"""The audit trail without a broker: event rows, API-call rows, redaction, queries, edits."""
import datetime as dt

from berth.events import CATALOGUE, ServerWentDown, VerificationEmailRequested
from services.alerts import audit
from services.alerts.audit_wire import redact
from services.alerts.models import AuditLog

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


def api_record(**overrides):
    record = {"v": 1, "request_id": "req-1", "occurred_at": "2024-05-01T12:00:00Z",
              "method": "POST", "route": "/api/serial/generate", "path": "/api/serial/generate",
              "path_params": {}, "status": 200,
              "actor": {"user_id": 1, "username": "root", "role": "admin"},
              "body": {"type": "rental", "user_id": 42}, "reply_ids": {"serial_id": 9}}
    record.update(overrides)
    return record


def test_every_catalogued_event_has_a_message():
    assert set(audit.EVENT_MESSAGES) == set(CATALOGUE)


def test_an_event_becomes_one_row_naming_subject_and_system_actor(session_factory):
    event = ServerWentDown.new(server_id=7, server_name="web-1", ip_address="10.0.0.5",
                               last_seen_at=None, reason="ping timed out")
    with session_factory() as session:
        assert audit.record_event(session, event, T0)
        assert not audit.record_event(session, event, T0)  # a redelivery adds nothing
        session.commit()
        [row] = session.query(AuditLog).all()
    assert row.source == "event" and row.action == "server_went_down"
    assert row.actor_type == "system" and row.actor_user_id is None
    assert (row.subject_type, row.subject_id) == ("server", "7")
    assert row.message == "Server web-1 (10.0.0.5) went down: ping timed out"
    assert row.details["payload"]["reason"] == "ping timed out"


def test_a_verification_link_never_reaches_the_audit_log(session_factory):
    event = VerificationEmailRequested.new(
        user_id=4, username="alice", email="alice@example.com",
        verification_url="http://h/api/verify_email/SECRET-TOKEN", expires_at="2024-05-02")
    with session_factory() as session:
        audit.record_event(session, event, T0)
        session.commit()
        row = session.query(AuditLog).one()
        assert "SECRET-TOKEN" not in repr(audit.to_dict(row))
        assert row.user_id == 4 and row.subject_type == "user"


def test_redact_hides_secret_fields_at_any_depth_and_shortens():
    summary = redact({"username": "alice", "password": "hunter22", "nested": {
        "api_token": "t", "serial_code": "ABCDE", "keep": 1}, "long": "x" * 500,
        "many": list(range(30))})
    assert summary["password"] == "[redacted]"
    assert summary["nested"] == {"api_token": "[redacted]", "serial_code": "[redacted]",
                                 "keep": 1}
    assert len(summary["long"]) < 210 and summary["long"].endswith("...")
    assert len(summary["many"]) == 21


def test_an_api_call_row_has_actor_subject_and_concerned_user(session_factory):
    with session_factory() as session:
        assert audit.record_api_call(session, api_record(), T0)
        assert not audit.record_api_call(session, api_record(), T0)
        session.commit()
        row = session.query(AuditLog).one()
    assert row.action == "POST /api/serial/generate" and row.status_code == 200
    assert (row.actor_user_id, row.actor_username, row.actor_role) == (1, "root", "admin")
    assert (row.subject_type, row.subject_id) == ("serial", "9")  # what it created
    assert row.user_id == 42
    assert row.message == "root (admin): POST /api/serial/generate [serial 9] -> 200"


def test_api_subject_prefers_path_parameters():
    assert audit.api_subject("/api/serial/update/<int:id>", {"id": 5}, {}, {}) == ("serial", "5")
    assert audit.api_subject("/api/users/<int:user_id>", {"user_id": 3}, {}, {}) == ("user", "3")
    assert audit.api_subject("/api/logs/delete/<int:id>", {"id": 8}, {}, {}) == ("log", "8")
    assert audit.api_subject("/api/acl/generate", {}, {"user_id": 2}, {}) == ("user", "2")
    assert audit.api_subject("/api/login", {}, {"username": "bob"}, {}) == ("user", "bob")
    assert audit.api_subject("/api/x", {}, {}, {}) == (None, None)


def test_secrets_in_a_record_are_redacted_again_on_arrival(session_factory):
    record = api_record(route="/api/add_user", body={"username": "eve", "password": "p4ss!"},
                        actor=None, reply_ids={"user_id": 12})
    with session_factory() as session:
        audit.record_api_call(session, record, T0)
        session.commit()
        row = session.query(AuditLog).one()
    assert "p4ss!" not in repr(audit.to_dict(row))
    assert row.actor_type == "anonymous" and row.user_id == 12


def test_query_filters_by_user_time_and_action_and_pages(session_factory):
    with session_factory() as session:
        for n in range(6):
            audit.record_api_call(session, api_record(
                request_id=f"r{n}", occurred_at=f"2024-05-0{n + 1}T08:00:00Z",
                actor={"user_id": 10 + n % 2, "username": "u", "role": "user"},
                body={}, reply_ids={}), T0)
        session.commit()
        rows, total = audit.query(session, 2, 0, involving_user=10)
        assert total == 3 and [r.occurred_at.day for r in rows] == [5, 3]
        rows, total = audit.query(session, 50, 0, since=T0.replace(day=2, hour=0),
                                  until=T0.replace(day=4, hour=0))
        assert total == 2
        assert audit.query(session, 50, 0, action="/api/serial/generate")[1] == 6
        assert audit.query(session, 50, 0, action="POST /api/serial/generate")[1] == 6
        assert audit.query(session, 50, 0, source="event")[1] == 0


def test_editing_keeps_the_original_message(session_factory):
    with session_factory() as session:
        audit.record_api_call(session, api_record(), T0)
        row = session.query(AuditLog).one()
        original = row.message
        audit.edit(session, row.id, "first edit", 1, T0)
        audit.edit(session, row.id, "second edit", 1, T0)
        session.commit()
        assert row.message == "second edit" and row.original_message == original


def test_a_deleted_rows_id_is_never_reused(session_factory):
    with session_factory() as session:
        audit.record_api_call(session, api_record(request_id="a"), T0)
        session.commit()
        row = session.query(AuditLog).one()
        session.delete(row)
        session.commit()
        audit.record_api_call(session, api_record(request_id="b"), T0)
        session.commit()
        assert session.query(AuditLog).one().id != row.id
