"""Fixtures for the alerts tests: settings read afresh around each test (tests change
``BERTH_*`` variables), and a fresh SQLite database per domain test."""
import pytest
from sqlalchemy.orm import sessionmaker

from berth.db import make_engine
from berth.settings import reload_settings
from services.alerts.models import Base


@pytest.fixture(autouse=True)
def _fresh_settings():
    reload_settings()
    yield
    reload_settings()


@pytest.fixture
def session_factory(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/alerts.sqlite3")
    Base.metadata.create_all(engine)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()
