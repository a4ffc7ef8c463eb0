"""A crash loop is one incident: supervision on the real engine, with a container that keeps
dying two seconds after each start (issue 13, item 3)."""
from __future__ import annotations


import pytest

from services.containers.service import ContainersService
from services.containers.tests.support import outbox
from tests.docker_support import TEST_IMAGE
from tests.support import poll

ADMIN = {"user_id": 1, "role": "admin", "username": "root"}
CRASHING = ["sh", "-c", "sleep 2; exit 3"]


@pytest.fixture
def crash_settings(monkeypatch):
    """Restarts 0.5 s then 1 s apart; stable once up for 4 s (the loop never is)."""
    from berth.settings import reload_settings
    monkeypatch.setenv("BERTH_CONTAINER_RESTART_BACKOFF", "0.5")
    monkeypatch.setenv("BERTH_CONTAINER_RESTART_BACKOFF_MAX", "1")
    monkeypatch.setenv("BERTH_CONTAINER_STABLE_AFTER", "4")
    reload_settings()
    yield
    monkeypatch.undo()
    reload_settings()


@pytest.fixture
def server(rpc, make_service, clean_docker, docker_url):
    make_service(ContainersService, HEALTH_INTERVAL=3600)
    return rpc.containers.add_server({"server_name": "local", "ip_address": "127.0.0.1",
                                      "docker_url": docker_url})


def count(databases, kind: str) -> int:
    return [k for k, _ in outbox(databases)].count(kind)


def summary_row(rpc, container_id: int) -> dict | None:
    wrong = rpc.containers.fleet_summary()["containers"]["not_as_desired"]
    return next((row for row in wrong if row["container_id"] == container_id), None)


def test_a_crash_loop_is_one_incident_until_the_container_stays_up(
        crash_settings, rpc, server, docker_client, databases):
    created = rpc.containers.create_container(ADMIN, {
        "container_name": "looper", "image": TEST_IMAGE, "command": CRASHING})
    (copy,) = docker_client.containers.list(all=True, filters={
        "label": f"berth.container_id={created['container_id']}"})

    def state():
        copy.reload()
        return copy.attrs["State"]

    started = state()["StartedAt"]
    for cycle in range(3):
        poll(state, until=lambda s: s["Status"] == "exited", timeout=10, interval=0.25,
             what="the crash")
        rpc.containers.run_supervision()  # dead: an incident (once), started again
        poll(state, until=lambda s: s["Status"] == "running" and s["StartedAt"] != started,
             timeout=10, interval=0.25, what=f"restart {cycle + 1}")
        started = state()["StartedAt"]
        rpc.containers.run_supervision()  # up between two crashes: the incident goes on
        row = summary_row(rpc, created["container_id"])
        assert row is not None and row["status"] == "running" and row["died_at"], row
        assert row["maintenance"] is False
        info = rpc.containers.container_info(created["container_id"])  # alerts' check
        assert (info["status"], info["died_at"], info["maintenance"], info["server_id"]) == (
            "running", row["died_at"], False, server["server_id"]), info
    assert count(databases, "container_died") == 1
    assert count(databases, "container_recovered") == 0
    assert summary_row(rpc, created["container_id"])["deaths"] == 3

    # fixed: recreated with a command that stays up; recovered once it has stayed up 4 s
    rpc.containers.update_container("looper", {"command": ["sh", "-c", "sleep 3600"]})
    assert count(databases, "container_recovered") == 0

    def recovered():
        rpc.containers.run_supervision()
        return count(databases, "container_recovered")
    assert poll(recovered, timeout=20, interval=0.25, what="container_recovered") == 1
    assert count(databases, "container_died") == 1
    assert summary_row(rpc, created["container_id"]) is None


def test_a_stop_ends_the_incident_and_the_next_death_is_a_new_one(
        crash_settings, rpc, server, docker_client, databases):
    created = rpc.containers.create_container(ADMIN, {
        "container_name": "stopper", "image": TEST_IMAGE, "command": CRASHING})
    (copy,) = docker_client.containers.list(all=True, filters={
        "label": f"berth.container_id={created['container_id']}"})
    copy.kill()
    rpc.containers.run_supervision()
    assert summary_row(rpc, created["container_id"])["died_at"]
    rpc.containers.stop_container(ADMIN, "stopper")
    assert summary_row(rpc, created["container_id"]) is None  # stopped as asked: no incident
    kinds = [k for k, _ in outbox(databases)]
    assert kinds.count("container_died") == 1 and kinds[-1] == "container_stopped"
    rpc.containers.delete_container(ADMIN, "stopper")
    assert summary_row(rpc, created["container_id"]) is None
