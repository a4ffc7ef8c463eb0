"""Migration 0002: one word for a running rental. Rows written under 0001 (``renewed`` by the
renew route, ``active`` but extended by a second serial) come out ``active`` with
``renewed_at``; the one-running-rental index holds on the new word; the downgrade restores."""
from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from berth import migrations
from berth.db import make_engine
from tests.support import DatabaseSet

T1, T2, T3 = "2026-01-01 10:00:00", "2026-02-01 10:00:00", "2026-03-01 10:00:00"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    dbs = DatabaseSet(request.param, tmp_path)
    yield dbs.url("billing")
    dbs.drop()


def rentals(engine) -> dict:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, status, renewed_at FROM rentals").all()
    return {row[0]: (row[1], row[2] is not None) for row in rows}


def test_renewed_rows_become_active_with_renewed_at(url):
    migrations.upgrade("billing", url, "0001")
    engine = make_engine(url)
    rental = ("INSERT INTO rentals (id, user_id, serial_id, status, start_date, end_date, "
              "created_at, updated_at) VALUES ({}, {}, {}, '{}', '2026-01-01', '2026-12-31', "
              f"'{T1}', '{T2}')")
    serial = ("INSERT INTO serials (id, code, type, status, expiry_date, created_by, "
              "created_at, used_at, used_by, rental_id) VALUES ({0}, 'CODE{0}', 'rental', "
              "'used', '2026-12-31', 1, '" + T1 + "', '{1}', {2}, {3})")
    with engine.begin() as conn:
        for statement in (
                rental.format(1, 11, 1, "renewed"),   # renewed by the admin route
                rental.format(2, 12, 2, "active"),    # extended by redeeming serial 3
                rental.format(3, 13, 4, "active"),    # never renewed
                rental.format(4, 14, 5, "expired"),
                serial.format(1, T1, 11, 1), serial.format(2, T1, 12, 2),
                serial.format(3, T3, 12, 2), serial.format(4, T1, 13, 3),
                serial.format(5, T1, 14, 4)):
            conn.exec_driver_sql(statement)
    migrations.upgrade("billing", url)
    assert rentals(engine) == {1: ("active", True), 2: ("active", True), 3: ("active", False),
                               4: ("expired", False)}
    with engine.connect() as conn:
        assert str(conn.exec_driver_sql(
            "SELECT renewed_at FROM rentals WHERE id = 2").scalar_one()).startswith("2026-03-01")
    with pytest.raises(IntegrityError), engine.begin() as conn:  # one running rental a user
        conn.exec_driver_sql(rental.format(5, 11, "NULL", "active"))
    migrations.downgrade("billing", url, "0001")
    with engine.connect() as conn:
        assert dict(conn.exec_driver_sql("SELECT id, status FROM rentals").all()) == {
            1: "renewed", 2: "renewed", 3: "active", 4: "expired"}
    engine.dispose()
