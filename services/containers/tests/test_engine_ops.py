"""EngineOps and Fleet against stand-ins: what a real engine and database do only in a race."""
import contextlib

import pytest
import requests

from berth.docker.engines import APIError, Endpoint
from services.containers.engine_ops import EngineOps


def api_error(status: int, explanation: str) -> APIError:
    response = requests.Response()
    response.status_code = status
    return APIError("engine said no", response=response, explanation=explanation)


class OneAnswer:
    """A pool whose engine answers remove_container with ``error``."""

    def __init__(self, error: APIError):
        self.error = error

    @contextlib.contextmanager
    def reach(self, endpoint):
        yield self

    def remove_container(self, engine_id, force=False):
        raise self.error

    def logs(self, engine_id, **kwargs):
        raise self.error


ENDPOINT = Endpoint(server_id=1, name="local", docker_url="unix:///var/run/docker.sock")


def test_a_copy_already_being_removed_is_as_good_as_removed():
    """Seen under fuzzing: the reconciler removed a failed update's new copy while the update
    put the old one back; the 409 became a 500."""
    ops = EngineOps(OneAnswer(api_error(409, "removal of container abc is already in progress")),
                    lambda: "test")
    ops.remove(ENDPOINT, "abc")


def test_the_logs_of_a_copy_being_removed_are_none():
    """Seen under fuzzing: GET .../logs while a delete of the same container ran; the engine's
    409 ("dead or marked for removal") became a 500."""
    conflict = api_error(409, "can not get logs from container which is dead or marked for "
                              "removal")
    assert EngineOps(OneAnswer(conflict), lambda: "test").logs(ENDPOINT, "abc", 10) == []
    with pytest.raises(APIError):
        EngineOps(OneAnswer(api_error(500, "engine broke")), lambda: "test").logs(
            ENDPOINT, "abc", 10)


def test_other_conflicts_on_remove_still_raise():
    ops = EngineOps(OneAnswer(api_error(409, "something else")), lambda: "test")
    with pytest.raises(APIError):
        ops.remove(ENDPOINT, "abc")


def test_a_container_deleted_while_being_recreated_is_a_409_and_leaves_no_copy():
    """Seen under fuzzing: DELETE while a PUT recreated the same container; the update then
    found no row (an AttributeError, a 500) and its new copy stayed on the engine."""
    from sqlalchemy import create_engine, delete
    from sqlalchemy.orm import sessionmaker

    from berth.errors import Conflict
    from services.containers.fleet import Fleet
    from services.containers.models import Base, Container, Server

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    sessions = sessionmaker(engine)
    with sessions() as session:
        session.add(Server(id=1, name="local", ip_address="127.0.0.1", status="online",
                           docker_url="unix:///var/run/docker.sock"))
        session.add(Container(id=7, name="web", user_id=2, server_id=1, image="img",
                              engine_id="old", status="running"))
        session.commit()
    removed = []

    class DeletedMeanwhile:
        def state(self, endpoint, engine_id):
            return "missing", None

        def create(self, *args, **kwargs):
            with sessions() as session:  # the concurrent DELETE lands here
                session.execute(delete(Container).where(Container.id == 7))
                session.commit()
            return "new"

        def start(self, endpoint, engine_id):
            pass

        def remove(self, endpoint, engine_id):
            removed.append(engine_id)

    fleet = Fleet(sessions, pool=None, record=lambda session, event: None)
    fleet.ops = DeletedMeanwhile()
    with pytest.raises(Conflict):
        fleet.recreate(7, "update", changes={"environment": {"A": "1"}})
    assert removed == ["new"]
