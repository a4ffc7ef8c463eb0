"""Fixtures for the users domain tests: a fresh in-memory SQLite session per test
(``session``), or a file-backed one (``db``, whose commits are real) with a user ``alice``."""
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from berth.db import make_engine
from services.users import accounts
from services.users.models import Base


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine, expire_on_commit=False) as session:
        yield session
    engine.dispose()


@pytest.fixture
def db(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/users.sqlite3")
    Base.metadata.create_all(engine)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as session:
        yield session
    engine.dispose()


@pytest.fixture
def alice(db):
    """The user every ``db`` test starts with (tests on ``session`` make their own)."""
    user = accounts.create_user(db, "alice", "alice@example.com", "hash")
    db.commit()
    return user
