"""berth.events: the envelope, tolerant parsing and at-most-once handling."""
import datetime as dt
import re
import uuid

import pytest
from sqlalchemy import String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from berth.db import ProcessedEventMixin
from berth.events import (CATALOGUE, VerificationEmailRequested, first_delivery, handle_once,
                          receive)


class Base(DeclarativeBase):
    pass


class Processed(ProcessedEventMixin, Base):
    pass


class Effect(Base):
    """What a handler's effect writes, in the same database."""
    __tablename__ = "effects"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36))


FIELDS = {"user_id": 3, "username": "alice", "email": "alice@example.com",
          "verification_url": "http://127.0.0.1:8000/api/verify_email/abc",
          "expires_at": "2024-05-02T12:00:00Z"}


def payload(**overrides):
    event = VerificationEmailRequested.new(**FIELDS)
    data = event.model_dump()
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_new_fills_the_envelope():
    event = VerificationEmailRequested.new(**FIELDS)
    assert uuid.UUID(event.event_id).version == 4
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event.occurred_at)
    occurred = dt.datetime.strptime(event.occurred_at, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.timezone.utc)
    assert abs(dt.datetime.now(dt.timezone.utc) - occurred) < dt.timedelta(minutes=1)
    assert event.version == VerificationEmailRequested.VERSION == 1
    assert event.user_id == 3 and event.email == "alice@example.com"
    assert VerificationEmailRequested.new(**FIELDS).event_id != event.event_id


def test_the_event_is_catalogued_with_its_source():
    assert CATALOGUE["verification_email_requested"] is VerificationEmailRequested
    assert VerificationEmailRequested.TYPE == "verification_email_requested"
    assert VerificationEmailRequested.SOURCE == "users"


def test_receive_round_trips_a_dispatched_payload():
    data = payload()
    event = receive(VerificationEmailRequested, data)
    assert event is not None
    assert event.model_dump(exclude_none=True) == data


def test_new_events_carry_the_current_request_id():
    from berth import context
    context.bind("req-42")
    try:
        assert VerificationEmailRequested.new(**FIELDS).request_id == "req-42"
    finally:
        context.bind(None)
    assert VerificationEmailRequested.new(**FIELDS).request_id is None


@pytest.mark.parametrize("bad", [
    None, "a string", [], 42,
    {"user_id": 3},
    "missing-event-id",
    "user_id-not-an-int",
    "missing-email",
])
def test_receive_drops_malformed_payloads(bad):
    if bad == "missing-event-id":
        bad = payload(event_id=None)
    elif bad == "user_id-not-an-int":
        bad = payload(user_id="three")
    elif bad == "missing-email":
        bad = payload(email=None)
    assert receive(VerificationEmailRequested, bad) is None


def test_receive_ignores_unknown_extra_fields():
    event = receive(VerificationEmailRequested, payload(added_in_a_later_version="x"))
    assert event is not None
    assert event.username == "alice"
    assert "added_in_a_later_version" not in event.model_dump()


def test_first_delivery_is_true_once_per_event_id(session):
    event = receive(VerificationEmailRequested, payload())
    assert first_delivery(session, Processed, event) is True
    session.commit()
    redelivered = receive(VerificationEmailRequested, payload(event_id=event.event_id))
    assert first_delivery(session, Processed, redelivered) is False
    another = VerificationEmailRequested.new(**FIELDS)
    assert first_delivery(session, Processed, another) is True
    session.commit()
    row = session.get(Processed, event.event_id)
    assert row.event_type == "verification_email_requested"
    assert row.handled_at is not None


def test_first_delivery_rolled_back_with_its_transaction_can_be_handled_again(session):
    event = VerificationEmailRequested.new(**FIELDS)
    assert first_delivery(session, Processed, event) is True
    session.rollback()  # the handler failed: nothing was applied, so nothing is recorded
    assert first_delivery(session, Processed, event) is True


@pytest.fixture
def sessions():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    yield sessionmaker(engine)
    engine.dispose()


def write_effect(session, event):
    session.add(Effect(event_id=event.event_id))
    return f"applied {event.event_id}"


def counts(sessions):
    with sessions() as session:
        return (session.scalar(select(func.count()).select_from(Processed)),
                session.scalar(select(func.count()).select_from(Effect)))


def test_handle_once_applies_an_event_once_and_says_what_it_did(sessions):
    data = payload()
    assert handle_once(sessions, Processed, VerificationEmailRequested, data, write_effect) \
        == f"applied {data['event_id']}"
    assert handle_once(sessions, Processed, VerificationEmailRequested, data,
                       write_effect) is None  # the redelivery
    assert counts(sessions) == (1, 1)


def test_handle_once_commits_the_id_and_the_effect_together_or_neither(sessions):
    data = payload()

    def failing(session, event):
        write_effect(session, event)
        raise RuntimeError("the database went away mid-effect")

    with pytest.raises(RuntimeError):
        handle_once(sessions, Processed, VerificationEmailRequested, data, failing)
    assert counts(sessions) == (0, 0)  # so the retry is not taken for a redelivery
    handle_once(sessions, Processed, VerificationEmailRequested, data, write_effect)
    assert counts(sessions) == (1, 1)


def test_handle_once_drops_a_malformed_event_without_writing(sessions):
    assert handle_once(sessions, Processed, VerificationEmailRequested, payload(email=None),
                       write_effect) is None
    assert counts(sessions) == (0, 0)


def test_every_event_handler_goes_through_handle_once():
    """The one mechanism: no service records event ids any other way."""
    import inspect
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "services").glob("*/*.py")):
        text = path.read_text()
        assert "first_delivery" not in text, f"{path}: use berth.events.handle_once"
        if "@event_handler" in text or "event_handler(" in text:
            assert "handle_once" in text, f"{path} handles events without handle_once"
    assert "first_delivery" in inspect.getsource(handle_once)


def test_every_catalogued_event_knows_its_name_source_and_version():
    assert CATALOGUE
    for name, cls in CATALOGUE.items():
        assert cls.TYPE == name
        assert cls.SOURCE in {"users", "containers", "traffic", "billing", "alerts"}
        assert cls.VERSION >= 1
