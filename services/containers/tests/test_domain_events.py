"""Domain functions that cause an event return it with their result, for the caller to record
in its transaction (billing's ``(result, event)`` shape): no database, no engine."""
from __future__ import annotations

from berth.events import ContainerStarted, ContainerStopped, ServerUpdated
from services.containers.lifecycle import want_running, want_stopped
from services.containers.models import Container, Server
from services.containers.servers import edit_server


def container(desired_state: str) -> Container:
    return Container(id=7, name="web", user_id=2, server_id=1, image="img",
                     desired_state=desired_state, deaths=3, restarts=2)


def test_stopping_a_running_container_ends_its_incident_and_says_so():
    stopped, event = want_stopped(container("running"), "rental_expired")
    assert (stopped.desired_state, stopped.stopped_reason) == ("stopped", "rental_expired")
    assert (stopped.deaths, stopped.restarts, stopped.died_at) == (0, 0, None)
    assert isinstance(event, ContainerStopped)
    assert (event.container_id, event.reason, event.actor_id) == (7, "rental_expired", None)


def test_stopping_a_stopped_container_again_is_no_event():
    _, event = want_stopped(container("stopped"), "owner", actor_id=2)
    assert event is None


def test_starting_a_container_again_is_one_event():
    started, event = want_running(container("stopped"), "rental_renewed")
    assert (started.desired_state, started.stopped_reason) == ("running", None)
    assert isinstance(event, ContainerStarted) and event.reason == "rental_renewed"


def test_an_edit_of_a_server_is_one_server_updated_naming_what_changed():
    server = Server(id=3, name="old", ip_address="10.0.0.1", docker_url="tcp://10.0.0.1:2375",
                    maintenance=False)
    edited, event = edit_server(server, ["name"], "new", "10.0.0.1", "tcp://10.0.0.1:2375",
                                None, actor_id=1)
    assert edited.name == "new"
    assert isinstance(event, ServerUpdated)
    assert (event.server_name, event.changed, event.actor_id) == ("new", ["name"], 1)
