"""Server deletion and failover against a real database with the engine stood in for: what
happens only in a race (a server deleted between a create's placement and its insert) or on
an installation's state that real engines make slow to reach (an offline server in
maintenance)."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, delete, event, select
from sqlalchemy.orm import sessionmaker

from berth.errors import Conflict, ServiceUnavailable
from services.containers.fleet import Fleet
from services.containers.models import Base, Container, Server
from services.containers.schemas import CreateContainer


@pytest.fixture
def sessions(tmp_path):
    """SQLite with foreign keys enforced, as the services run it; several connections."""
    engine = create_engine(f"sqlite:///{tmp_path}/containers.db")

    @event.listens_for(engine, "connect")
    def _foreign_keys(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    Base.metadata.create_all(engine)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def add_server(sessions, server_id: int, name: str, status: str = "online",
               maintenance: bool = False) -> None:
    with sessions() as session:
        session.add(Server(id=server_id, name=name, ip_address="127.0.0.1", status=status,
                           maintenance=maintenance, docker_url=f"unix:///tmp/{name}.sock"))
        session.commit()


def add_container(sessions, container_id: int, name: str, server_id: int) -> None:
    with sessions() as session:
        session.add(Container(id=container_id, name=name, user_id=2, server_id=server_id,
                              image="img", engine_id=f"copy-{name}", status="running"))
        session.commit()


class NoEngine:
    def create(self, *args, **kwargs):
        raise AssertionError("no copy may be made for a container that has no row")


def test_a_server_deleted_between_placement_and_insert_is_a_409_not_a_500(sessions):
    """The create picked the server, then the server went (a delete that had counted no
    containers) before the create's insert: the foreign key refuses the insert."""
    add_server(sessions, 1, "going")

    class DeletedMeanwhile(Fleet):
        def _place(self, session, server_id, exclude=frozenset(), **kwargs):
            server = super()._place(session, server_id, exclude, **kwargs)
            with sessions() as other:  # the concurrent delete_server commits here
                other.execute(delete(Server).where(Server.id == server.id))
                other.commit()
            return server

    fleet = DeletedMeanwhile(sessions, pool=None, record=lambda session, event: None)
    fleet.ops = NoEngine()
    with pytest.raises(Conflict, match="Server going was deleted while the container was "
                                       "being placed; try again"):
        fleet.create(1, 1, CreateContainer(container_name="web", image="img"))
    with sessions() as session:
        assert session.scalars(select(Container)).all() == []


def test_a_name_taken_between_check_and_insert_is_a_409(sessions):
    add_server(sessions, 1, "local")
    raced = []

    @event.listens_for(sessions, "before_flush")
    def _another_create_wins(session, _context, _instances):
        if not raced and any(isinstance(row, Container) for row in session.new):
            raced.append(True)
            add_container(sessions, 5, "web", 1)  # after the name check, before the insert

    fleet = Fleet(sessions, pool=None, record=lambda session, event: None)
    fleet.ops = NoEngine()
    with pytest.raises(Conflict, match="Container name web is already taken"):
        fleet.create(1, 1, CreateContainer(container_name="web", image="img"))


def test_a_server_being_deleted_takes_no_new_container(sessions):
    """Delete puts the server in maintenance before it counts its containers, so a create
    placed meanwhile goes elsewhere (here: nowhere, a clean 503) instead of racing it."""
    add_server(sessions, 1, "going")
    placed = []

    def record(session, event):  # runs inside the delete, after the count
        fleet = Fleet(sessions, pool=None, record=lambda s, e: None)
        with sessions() as other:
            try:
                placed.append(fleet._place(other, None).id)
            except ServiceUnavailable:
                placed.append(None)

    fleet = Fleet(sessions, pool=None, record=record)
    fleet._forget_tls = lambda server_id, keep=None: None
    assert fleet.delete_server(1, 9)["server_id"] == 1
    assert placed == [None]


def test_a_refused_delete_leaves_the_maintenance_flag_as_it_was(sessions):
    add_server(sessions, 1, "busy")
    add_server(sessions, 2, "resting", maintenance=True)
    add_container(sessions, 7, "web", 1)
    add_container(sessions, 8, "db", 2)
    fleet = Fleet(sessions, pool=None, record=lambda session, event: None)
    for server_id in (1, 2):
        with pytest.raises(Conflict, match="holds 1 container; drain it first"):
            fleet.delete_server(server_id, 9)
    with sessions() as session:
        assert [s.maintenance for s in session.scalars(select(Server).order_by(Server.id))] \
            == [False, True]


def test_manual_failover_leaves_offline_servers_in_maintenance_alone(sessions):
    """Right after migration 0005 a former ``status: maintenance`` server is offline until
    its next probe: a manual failover must not move what it holds (drain does that)."""
    add_server(sessions, 1, "healthy")
    add_server(sessions, 2, "down", status="offline")
    add_server(sessions, 3, "planned", status="offline", maintenance=True)
    add_container(sessions, 7, "lost", 2)
    add_container(sessions, 8, "kept", 3)
    moved = []

    class Recording(Fleet):
        def recreate(self, container_id, reason, target_id=None, changes=None):
            moved.append((container_id, target_id))
            with self.sessions() as session:
                source = session.get(Container, container_id).server_id
            return {"from_server_id": source, "server_id": target_id}

    fleet = Recording(sessions, pool=None, record=lambda session, event: None)
    actions = fleet.failover()
    assert moved == [(7, 1)]
    assert [(a["container_name"], a["action"], a["to_server_id"]) for a in actions] == [
        ("lost", "moved", 1)]
    assert fleet.offline_in_maintenance() == ["planned"]


def test_a_server_deleted_while_the_health_tick_probes_does_not_stop_the_others(sessions):
    """probe_all lists the servers, then probes each at once: one deleted meanwhile (its
    probe raises 'not found') is logged, and every other server is still probed and listed."""
    add_server(sessions, 1, "stays")
    add_server(sessions, 2, "going")

    class Engines:
        def ping(self, endpoint, timeout):
            return "24.0"

    class DeletedMeanwhile(Fleet):
        def probe(self, server_id):
            if server_id == 2:
                with sessions() as other:
                    other.execute(delete(Server).where(Server.id == 2))
                    other.commit()
            super().probe(server_id)

    fleet = DeletedMeanwhile(sessions, pool=Engines(), record=lambda session, event: None)
    rows = fleet.probe_all()
    assert [(row["server_id"], row["status"]) for row in rows] == [(1, "online")]
