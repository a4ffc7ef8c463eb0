"""Fixtures for the alerts tests: settings read afresh around each test (tests change
``BERTH_*`` variables), and a fresh SQLite database per domain test."""
import os

import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy.orm import sessionmaker

from berth.db import make_engine
from berth.settings import reload_settings
from services.alerts.models import Base


@pytest.fixture(autouse=True)
def _fresh_settings():
    # alert mail goes out as a digest once the batch has waited this long (default 60 s);
    # set by hand, not with monkeypatch, so a test's own monkeypatch is undone before the
    # settings are read again below
    before = os.environ.get("BERTH_ALERT_DIGEST_SECONDS")
    os.environ["BERTH_ALERT_DIGEST_SECONDS"] = "0.3"
    reload_settings()
    yield
    if before is None:
        os.environ.pop("BERTH_ALERT_DIGEST_SECONDS", None)
    else:
        os.environ["BERTH_ALERT_DIGEST_SECONDS"] = before
    reload_settings()


@pytest.fixture
def session_factory(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/alerts.sqlite3")
    Base.metadata.create_all(engine)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def dispatch(amqp_uri):
    """Publish a catalogue event on the test's broker, as its source service would."""
    send = event_dispatcher({"AMQP_URI": amqp_uri, "serializer": "json"})
    return lambda event: send(event.SOURCE, event.TYPE, event.model_dump())
