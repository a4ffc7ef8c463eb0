"""The checks on demand judge as the sweep does, on the real broker, against SQLite and
PostgreSQL, with stand-ins for the peers: ``POST /api/alerts/docker_container`` keeps a crash
loop's alert open while the container runs between two crashes, raises nothing for a container
on a server in maintenance and stores the server, so the server's maintenance later resolves
it; a traffic service without ``users_over`` (a rolling deploy) still gets the quota check."""
from __future__ import annotations

import copy

import pytest
from nameko.rpc import rpc as nameko_rpc
from nameko.standalone.events import event_dispatcher

from berth.events import ServerUpdated
from services.alerts.service import AlertsService
from tests.support import poll


class ContainersStandIn:
    """``container_info`` answers ``row`` (what containers.fleet.Fleet.info returns)."""
    name = "containers"
    row: dict = {}

    @nameko_rpc
    def container_info(self, container_id):
        return copy.deepcopy(ContainersStandIn.row)


class OldTrafficStandIn:
    """A traffic service from before ``users_over``: only the quota report."""
    name = "traffic"
    month = "2024-05"

    @nameko_rpc
    def overlimit_users(self, month=None):  # the month asked for, this one if none
        if month != OldTrafficStandIn.month:
            return {"overlimit_users": []}
        return {"overlimit_users": [{"user_id": 42, "month": OldTrafficStandIn.month,
                                     "used_bytes": 2000, "limit_bytes": 1000}]}


@pytest.fixture
def start(container_factory, amqp_uri):
    def run(cls):
        peer = container_factory(cls, {"AMQP_URI": amqp_uri, "serializer": "json"})
        peer.start()
    return run


def container(**extra):
    return {"container_id": 5, "container_name": "loop", "status": "running",
            "desired_state": "running", "user_id": 42, "server_id": 3, "died_at": None,
            "maintenance": False, **extra}



def test_a_crash_loop_running_between_crashes_keeps_its_alert_open(make_service, rpc, start):
    start(ContainersStandIn)
    make_service(AlertsService, ALERT_CHECK_INTERVAL=3600)
    ContainersStandIn.row = container(status="exited", died_at="2024-05-01T12:00:00Z")
    assert rpc.alerts.check_container({"container_id": 5})["alerts_raised"] == 1
    ContainersStandIn.row = container(died_at="2024-05-01T12:00:00Z")  # up between crashes
    reply = rpc.alerts.check_container({"container_id": 5})
    assert (reply["alerts_open"], reply["alerts_resolved"]) == (1, 0), reply
    [alert] = rpc.alerts.realtime_alerts()["alerts"]
    assert alert["occurrences"] == 2 and alert["details"]["server_id"] == 3
    ContainersStandIn.row = container()  # the incident is over
    assert rpc.alerts.check_container({"container_id": 5})["alerts_resolved"] == 1


def test_a_container_on_a_server_in_maintenance_raises_nothing_and_resolves(
        make_service, rpc, start):
    start(ContainersStandIn)
    make_service(AlertsService, ALERT_CHECK_INTERVAL=3600)
    ContainersStandIn.row = container(status="exited", maintenance=True)
    assert rpc.alerts.check_container({"container_id": 5})["alerts_raised"] == 0
    assert rpc.alerts.realtime_alerts()["alerts"] == []
    ContainersStandIn.row = container(status="exited")
    assert rpc.alerts.check_container({"container_id": 5})["alerts_raised"] == 1
    ContainersStandIn.row = container(status="exited", maintenance=True)
    assert rpc.alerts.check_container({"container_id": 5})["alerts_resolved"] == 1
    assert rpc.alerts.list_alerts({})["alerts"][0]["resolution"] == "maintenance"


def test_the_server_going_into_maintenance_resolves_a_checked_container_alert(
        make_service, rpc, start, amqp_uri):
    start(ContainersStandIn)
    make_service(AlertsService, ALERT_CHECK_INTERVAL=3600)
    ContainersStandIn.row = container(status="exited")
    assert rpc.alerts.check_container({"container_id": 5})["alerts_raised"] == 1
    send = event_dispatcher({"AMQP_URI": amqp_uri, "serializer": "json"})
    event = ServerUpdated.new(server_id=3, server_name="rack-3", ip_address="10.0.0.3",
                              changed=["maintenance"], maintenance=True, actor_id=1)
    send(event.SOURCE, event.TYPE, event.model_dump())
    poll(lambda: rpc.alerts.realtime_alerts()["alerts"], until=lambda alerts: alerts == [],
         what="no open alert")
    assert rpc.alerts.list_alerts({})["alerts"][0]["resolution"] == "maintenance"


def test_a_traffic_service_without_users_over_still_gets_the_quota_check(
        make_service, rpc, start):
    start(OldTrafficStandIn)
    make_service(AlertsService, ALERT_CHECK_INTERVAL=3600)
    rpc.alerts.add_alert({"user_id": 1}, {"alert_type": "traffic", "threshold": 500,
                                          "message": "Busy user"})
    reply = rpc.alerts.check_traffic({"month": "2024-05"})
    assert reply["overlimit_users"] == 1
    conditions = {a["condition"] for a in rpc.alerts.realtime_alerts()["alerts"]}
    # the quota alert, and the rule judged on the quota report's user (2000 >= 500)
    assert conditions == {"traffic_quota", "traffic_threshold"}, conditions
