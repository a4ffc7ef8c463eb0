"""Fixtures for the alerts domain tests: a fresh SQLite database per test."""
import pytest
from sqlalchemy.orm import sessionmaker

from berth.db import make_engine
from services.alerts.models import Base


@pytest.fixture
def session_factory(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/alerts.sqlite3")
    Base.metadata.create_all(engine)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()
