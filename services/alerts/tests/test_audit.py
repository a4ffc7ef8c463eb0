"""The audit trail without a broker: event rows, API-call rows, redaction, queries, edits."""
import datetime as dt

from berth.actor import Actor
from berth.events import (CATALOGUE, AllotmentChanged, ContainerCreated, ContainerRemoved, ContainerStopped,
                          DistributorCodeRedeemed, RentalExpired, ServerWentDown,
                          VerificationEmailRequested)
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


def test_an_allotment_change_is_about_the_distributor_and_by_the_admin(session_factory):
    event = AllotmentChanged.new(distributor_id=12, plan_id=3, unit="days", change=-30,
                                 balance=60, actor_id=1)
    with session_factory() as session:
        assert audit.record_event(session, event, T0)
        session.commit()
        row = session.query(AuditLog).one()
    assert (row.subject_type, row.subject_id, row.user_id) == ("user", "12", 12)
    assert (row.actor_type, row.actor_user_id) == ("user", 1)
    assert row.message == "Allotment of distributor 12 for plan 3: -30 days, 60 left"


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
    # a sign-in concerns the user who signed in, by id (the actor the gateway read from the
    # token it answered), like every other row about a user
    bob = Actor(7, "user", "Bob")
    assert audit.api_subject("/api/login", {}, {"username": "bob"}, {}, bob) == ("user", "7")
    assert audit.api_subject("/api/login", {}, {"username": "bob"}, {}) == (None, None)
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


def test_every_row_about_a_container_has_subject_container_and_its_id(session_factory):
    """Create, stop, update (by name in the path) and delete calls, and the events about the
    container, are all found by ``subject_type=container&subject_id=<id>``."""
    actor = {"user_id": 1, "username": "root", "role": "admin"}
    calls = [
        ("POST", "/api/containers", {}, {"container_id": 31, "server_id": 2}),
        ("POST", "/api/containers/<container_name>/stop", {"container_name": "web"},
         {"container_id": 31}),
        ("PUT", "/api/containers/<container_name>", {"container_name": "web"},
         {"container_id": 31, "server_id": 2}),
        ("DELETE", "/api/containers/<container_name>", {"container_name": "web"},
         {"container_id": 31}),
    ]
    fields = {"container_id": 31, "container_name": "web", "user_id": 5, "server_id": 2}
    events = [ContainerCreated.new(**fields, image="busybox", actor_id=1),
              ContainerStopped.new(**fields, reason="user", actor_id=1),
              ContainerRemoved.new(**fields, actor_id=1)]
    with session_factory() as session:
        for n, (method, route, params, reply_ids) in enumerate(calls):
            audit.record_api_call(session, api_record(
                request_id=f"c{n}", method=method, route=route, path_params=params,
                actor=actor, body={"image": "busybox", "user_id": 5}, reply_ids=reply_ids), T0)
        for event in events:
            audit.record_event(session, event, T0)
        session.commit()
        rows, total = audit.query(session, 50, 0, subject_type="container", subject_id="31")
        assert total == 7, [(r.action, r.subject_type, r.subject_id)
                            for r in session.query(AuditLog)]
        assert session.query(AuditLog).filter(AuditLog.subject_type != "container").count() == 0
    # a route that only has the name and a reply without the id still says "container", and
    # never puts the name where an id goes (the name stays in the row's details)
    assert audit.api_subject("/api/containers/<container_name>", {"container_name": "web"},
                             {}, {}) == ("container", None)
    with session_factory() as session:
        audit.record_api_call(session, api_record(
            request_id="no-id", method="PUT", route="/api/containers/<container_name>",
            path_params={"container_name": "web"}, actor=actor, body={}, reply_ids={}), T0)
        session.commit()
        row = session.query(AuditLog).filter_by(source_key="api:no-id").one()
    assert (row.subject_type, row.subject_id) == ("container", None)
    assert row.details["path_params"] == {"container_name": "web"}
    assert row.message == "root (admin): PUT /api/containers/<container_name> [container] -> 200"


def test_a_sign_in_row_is_about_the_user_by_id(session_factory):
    record = api_record(route="/api/login", path="/api/login",
                        body={"username": "timely", "password": "[redacted]"},
                        actor={"user_id": 12, "username": "timely", "role": "user"},
                        reply_ids={})
    with session_factory() as session:
        audit.record_api_call(session, record, T0)
        session.commit()
        row = session.query(AuditLog).one()
    assert (row.subject_type, row.subject_id, row.user_id) == ("user", "12", 12)


def test_a_serial_id_is_an_id_not_a_secret(session_factory):
    summary = redact({"serial_id": 9, "serial_code": "ABCDE", "nested": {"serial_id": 3},
                      "serial_id_text": "ABCDE", "code_id": "ABCDE"})
    assert summary == {"serial_id": 9, "serial_code": "[redacted]", "nested": {"serial_id": 3},
                       "serial_id_text": "[redacted]", "code_id": "[redacted]"}
    record = api_record(method="DELETE", route="/api/rental/delete/<int:serial_id>",
                        path="/api/rental/delete/9", path_params={"serial_id": 9}, body=None,
                        reply_ids={"rental_id": 4, "user_id": 5})
    redeemed = api_record(request_id="req-2", route="/api/serial/redeem",
                          body={"serial_code": "[redacted]"},
                          reply_ids={"rental_id": 4, "serial_id": 9})
    with session_factory() as session:
        audit.record_api_call(session, record, T0)
        audit.record_api_call(session, redeemed, T0)
        audit.record_event(session, DistributorCodeRedeemed.new(user_id=5, serial_id=9), T0)
        session.commit()
        deleted, redeem, event = session.query(AuditLog).order_by(AuditLog.id).all()
    # the serial in the path only finds the rental: the row is about the rental deleted
    assert (deleted.subject_type, deleted.subject_id, deleted.user_id) == ("rental", "4", 5)
    assert deleted.details["path_params"] == {"serial_id": 9}
    assert redeem.details["reply_ids"] == {"rental_id": 4, "serial_id": 9}
    assert event.message == "User 5 redeemed distributor serial 9"
    assert event.details["payload"]["serial_id"] == 9


def test_deleting_a_rental_by_serial_is_about_the_rental_like_its_event(session_factory):
    """``DELETE /api/rental/delete/<serial_id>`` and the ``rental_expired`` event of that
    deletion are both found by ``subject_type=rental&subject_id=<rental id>``."""
    call = api_record(method="DELETE", route="/api/rental/delete/<int:serial_id>",
                      path="/api/rental/delete/9", path_params={"serial_id": 9}, body=None,
                      reply_ids={"rental_id": 4, "user_id": 5})
    with session_factory() as session:
        audit.record_api_call(session, call, T0)
        audit.record_event(session, RentalExpired.new(rental_id=4, user_id=5,
                                                      end_date="2024-06-01"), T0)
        session.commit()
        rows, total = audit.query(session, 50, 0, subject_type="rental", subject_id="4")
        assert total == 2, [(r.action, r.subject_type, r.subject_id)
                            for r in session.query(AuditLog)]
    # a reply that names no rental leaves the path's serial as the subject
    assert audit.api_subject("/api/rental/delete/<int:serial_id>", {"serial_id": 9}, {},
                             {}) == ("serial", "9")


def test_a_users_own_log_hides_who_acted_on_them_from_where(session_factory):
    """Issue 16 item 7: an admin's address (and any other detail of theirs) never reaches the
    user they acted on; the admin sees it, and so does the user for their own calls."""
    admin, alice = Actor(1, "admin", "root"), Actor(42, "user", "alice")
    by_admin = api_record(request_id="by-admin", remote_addr="198.51.100.7",
                          method="PUT", route="/api/users/<int:user_id>",
                          path="/api/users/42", path_params={"user_id": 42},
                          body={"role": "distributor"}, reply_ids={})
    by_alice = api_record(request_id="by-alice", remote_addr="203.0.113.5",
                          actor=alice.to_wire(), route="/api/serial/redeem",
                          path="/api/serial/redeem", body={}, reply_ids={})
    with session_factory() as session:
        for record in (by_admin, by_alice):
            audit.record_api_call(session, record, T0)
        session.commit()
        rows = {row.details["request_id"]: row for row in session.query(AuditLog)}
    admins_row = rows["by-admin"]
    assert admins_row.user_id == 42 and admins_row.details["remote_addr"] == "198.51.100.7"

    seen_by_alice = audit.to_dict_for(admins_row, alice)
    assert "remote_addr" not in seen_by_alice["details"]
    assert "198.51.100.7" not in repr(seen_by_alice)
    # what was done stays visible
    assert seen_by_alice["details"]["body"] == {"role": "distributor"}
    assert seen_by_alice["details"]["path"] == "/api/users/42"
    assert seen_by_alice["actor"]["role"] == "admin"
    # the admin sees everything; alice sees her own address on her own calls
    assert audit.to_dict_for(admins_row, admin) == audit.to_dict(admins_row)
    assert audit.to_dict_for(rows["by-alice"], alice)["details"]["remote_addr"] == \
        "203.0.113.5"
