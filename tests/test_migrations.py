"""Every service's Alembic migrations, on SQLite and PostgreSQL.

The no-difference test is the guard: it fails whenever a models.py changes without a migration
(``python -m berth.manage revision <service> -m "..."`` writes one).
"""
from __future__ import annotations

import logging
import uuid

import pytest
from sqlalchemy import inspect, select

import berth
from berth import migrations
from berth.db import create_schema, make_engine
from berth.manage import model_bases
from tests.support import DatabaseSet

SERVICES = sorted(model_bases())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def scratch(request, tmp_path_factory):
    """Fresh databases on one backend: ``scratch.url("users")`` is a new empty one each call."""
    dbs = DatabaseSet(request.param, tmp_path_factory.mktemp(f"migrations-{request.param}"))

    def url(service: str) -> str:
        return dbs.url(f"{service}_{uuid.uuid4().hex[:6]}")
    dbs.fresh = url
    yield dbs
    dbs.drop()


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_every_service_with_tables_has_one_baseline():
    assert SERVICES == sorted(berth.SERVICES)
    for service in SERVICES:
        assert migrations.baseline(service) == "0001"
        assert migrations.head(service)  # exactly one head: no unmerged branches


@pytest.mark.parametrize("service", SERVICES)
def test_upgrade_head_on_an_empty_database_matches_the_models(scratch, service):
    url = scratch.fresh(service)
    said = migrations.upgrade(service, url)
    assert migrations.current(service, url) == migrations.head(service)
    assert said == f"{service}: upgraded empty -> {migrations.head(service)}"
    assert tables(url) == set(model_bases()[service].metadata.tables) | {"alembic_version"}
    # models.py changed without a migration? python -m berth.manage revision <service> -m ...
    assert migrations.differences(service, url) == []

    before = tables(url)
    assert migrations.upgrade(service, url) == f"{service}: at {migrations.head(service)}"
    assert tables(url) == before


def test_partial_and_expression_indexes_survive(scratch):
    """The indexes autogenerate is weakest at really enforce uniqueness after migrating."""
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm import Session

    from services.billing.models import Rental
    from services.users.models import User

    billing = scratch.fresh("billing")
    migrations.upgrade("billing", billing)
    engine = make_engine(billing)
    row = {"user_id": 7, "start_date": berth.db.utcnow().date(),
           "end_date": berth.db.utcnow().date()}
    with Session(engine) as session:
        session.add_all([Rental(status="expired", **row), Rental(status="expired", **row),
                         Rental(status="active", **row)])
        session.commit()
        session.add(Rental(status="active", **row))
        with pytest.raises(IntegrityError):
            session.commit()
    engine.dispose()

    users = scratch.fresh("users")
    migrations.upgrade("users", users)
    engine = make_engine(users)
    with Session(engine) as session:
        session.add(User(username="Alice", email="a@example.com", password_hash="x"))
        session.commit()
        session.add(User(username="ALICE", email="b@example.com", password_hash="x"))
        with pytest.raises(IntegrityError):
            session.commit()
    engine.dispose()


@pytest.mark.parametrize("service", SERVICES)
def test_a_database_made_by_create_all_is_stamped_not_recreated(scratch, service, caplog):
    from services.users.models import User

    url = scratch.fresh(service)
    create_schema(model_bases()[service], url)
    if service == "users":
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(User.__table__.insert().values(
                username="kept", email="kept@example.com", password_hash="x", role="user",
                disabled=False, created_at=berth.db.utcnow(), updated_at=berth.db.utcnow()))
        engine.dispose()

    with caplog.at_level(logging.WARNING, logger="berth.migrations"):
        said = migrations.upgrade(service, url)
    head = migrations.head(service)  # today's models: already what head makes
    assert f"stamped at {head}" in said and f"stamping it at {head}" in caplog.text
    assert migrations.current(service, url) == migrations.head(service)
    assert migrations.differences(service, url) == []
    if service == "users":
        engine = make_engine(url)
        with engine.connect() as conn:
            assert conn.execute(select(User.username)).scalars().all() == ["kept"]
        engine.dispose()
    assert "stamped" not in migrations.upgrade(service, url)


def test_tables_from_before_a_revision_are_stamped_at_the_baseline_and_upgraded(scratch):
    """create_all with the baseline's tables (containers before its installation table)."""
    url = scratch.fresh("containers")
    migrations.upgrade("containers", url, "0001")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE alembic_version")
    engine.dispose()
    said = migrations.upgrade("containers", url)
    assert said == ("containers: tables made by create_all, stamped at 0001; "
                    f"upgraded 0001 -> {migrations.head('containers')}")
    assert migrations.differences("containers", url) == []


def installation_keys(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT key FROM installation").scalars().all()
    finally:
        engine.dispose()


def test_an_installation_with_containers_keeps_the_key_its_copies_carry(scratch):
    """Copies made before the installation table are labelled berth.managed=1: they stay
    this installation's. A database without containers gets its random key on first use."""
    url, empty = scratch.fresh("containers"), scratch.fresh("containers")
    migrations.upgrade("containers", url, "0001")
    migrations.upgrade("containers", empty, "0001")
    engine = make_engine(url)
    with engine.begin() as conn:  # rows as revision 0001 had them (not today's models)
        conn.exec_driver_sql(
            "INSERT INTO servers (id, name, ip_address, docker_url, status, created_at) "
            "VALUES (1, 'h', '127.0.0.1', 'unix:///x', 'online', '2026-01-01 00:00:00')")
        conn.exec_driver_sql(
            "INSERT INTO containers (name, user_id, server_id, image, environment, ports, "
            "generation, desired_state, status, created_at, updated_at) VALUES ('c', 1, 1, "
            "'i', '{}', '{}', 1, 'running', 'running', '2026-01-01 00:00:00', "
            "'2026-01-01 00:00:00')")
    engine.dispose()
    migrations.upgrade("containers", url)
    migrations.upgrade("containers", empty)
    assert installation_keys(url) == ["1"]
    assert installation_keys(empty) == []


def test_plaintext_tls_keys_are_sealed_by_the_upgrade_and_unsealed_by_the_downgrade(scratch):
    from berth.docker.sealing import is_sealed, unseal

    url = scratch.fresh("containers")
    migrations.upgrade("containers", url, "0003")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO servers (id, name, ip_address, docker_url, status, created_at, "
            "tls_client_cert, tls_client_key) VALUES (1, 'h', '127.0.0.1', 'tcp://x:2376', "
            "'online', '2026-01-01 00:00:00', 'CERT', 'PLAIN KEY')")

    def stored():
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT tls_client_key FROM servers").scalar_one()
    migrations.upgrade("containers", url)
    assert is_sealed(stored()) and unseal(stored()) == "PLAIN KEY"
    migrations.downgrade("containers", url, "0003")
    assert stored() == "PLAIN KEY"
    engine.dispose()


def test_serials_and_rentals_sold_before_plans_are_on_the_default_plan(scratch):
    url = scratch.fresh("billing")
    migrations.upgrade("billing", url, "0002")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO rentals (id, user_id, status, start_date, end_date, created_at, "
            "updated_at) VALUES (1, 7, 'active', '2026-01-01', '2026-02-01', "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00')")
        for serial_id, kind in ((1, "rental"), (2, "distributor")):
            conn.exec_driver_sql(
                "INSERT INTO serials (id, code, type, status, expiry_date, created_by, "
                f"created_at) VALUES ({serial_id}, 'CODE{serial_id}', '{kind}', 'valid', "
                "'2027-01-01', 1, '2026-01-01 00:00:00')")
    migrations.upgrade("billing", url)
    with engine.connect() as conn:
        plans = conn.exec_driver_sql("SELECT id, name, is_default, cpus FROM plans").all()
        assert [(p.name, bool(p.is_default), p.cpus) for p in plans] == [("standard", True, 1.0)]
        standard = plans[0].id
        assert conn.exec_driver_sql("SELECT plan_id FROM rentals").scalar_one() == standard
        assert dict(conn.exec_driver_sql("SELECT id, plan_id FROM serials").all()) == {
            1: standard, 2: None}  # a distributor serial sells no plan
    migrations.downgrade("billing", url, "0002")
    assert "plans" not in tables(url)
    engine.dispose()


@pytest.mark.parametrize("service", SERVICES)
def test_downgrade_to_base_removes_the_schema_and_upgrade_restores_it(scratch, service):
    url = scratch.fresh(service)
    migrations.upgrade(service, url)
    migrations.downgrade(service, url, "base")
    assert tables(url) <= {"alembic_version"}
    assert migrations.current(service, url) is None
    migrations.upgrade(service, url)
    assert migrations.differences(service, url) == []


def test_revision_writes_nothing_when_the_models_match(tmp_path):
    """The developer command's path (scratch database at head, autogenerate) runs clean."""
    before = {p.name for p in (migrations.migrations_dir("billing") / "versions").iterdir()}
    assert migrations.revision("billing", "nothing changed") is None
    after = {p.name for p in (migrations.migrations_dir("billing") / "versions").iterdir()}
    assert after == before


def test_a_changed_partial_index_condition_is_a_difference(tmp_path):
    """Autogenerate alone ignores WHERE clauses; berth.migrations.differences does not."""
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path}/billing.sqlite3"
    migrations.upgrade("billing", url)
    index = next(ix for ix in migrations.model_metadata("billing").tables["rentals"].indexes
                 if ix.name == "uq_rentals_one_current")
    kept = index.dialect_options["sqlite"]._non_defaults["where"]
    try:
        index.dialect_options["sqlite"]["where"] = text("status IN ('active', 'expired')")
        assert [d[:3] for d in migrations.differences("billing", url)] == [
            ("modify_index_where", "rentals", "uq_rentals_one_current")]
    finally:
        index.dialect_options["sqlite"]["where"] = kept
    assert migrations.differences("billing", url) == []
