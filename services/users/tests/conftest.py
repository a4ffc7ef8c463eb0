"""Fixtures for the users domain tests: a fresh in-memory SQLite session per test."""
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from services.users.models import Base


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine, expire_on_commit=False) as session:
        yield session
    engine.dispose()
