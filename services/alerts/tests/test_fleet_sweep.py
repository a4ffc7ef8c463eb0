"""The alerts fleet sweep on the real broker, against SQLite and PostgreSQL: the alerts service
asks a stand-in ``containers`` service (its ``fleet_summary`` answers what the test says) and
raises one alert per offline server and per container not as desired, counts repeats instead of
opening duplicates, and resolves them when the summary is clean; the timer sweeps only in the
replica holding the lease."""
from __future__ import annotations

import copy
import datetime as dt
import time

import pytest
from nameko.rpc import rpc as nameko_rpc
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from berth.db import isoformat, make_engine, utcnow
from services.alerts.models import Lease
from services.alerts.service import AlertsService


class ContainersStandIn:
    """Stands in for the containers service: ``fleet_summary`` answers ``summary``."""
    name = "containers"
    summary: dict = {}
    calls = 0

    @nameko_rpc
    def fleet_summary(self):
        ContainersStandIn.calls += 1
        return copy.deepcopy(ContainersStandIn.summary)


def server(server_id, name, status, down_since=None):
    return {"server_id": server_id, "server_name": name, "ip_address": f"10.0.0.{server_id}",
            "status": status, "last_seen_at": down_since, "down_since": down_since,
            "containers": 1}


def summary(servers, not_as_desired):
    return {"servers": servers,
            "containers": {"total": 3, "by_status": {}, "not_as_desired": not_as_desired}}


def troubled():
    """Server 2 offline for ten minutes, container 5 exited while it should run."""
    ten_minutes_ago = isoformat(utcnow() - dt.timedelta(minutes=10))
    return summary([server(1, "web-1", "online"), server(2, "web-2", "offline", ten_minutes_ago)],
                   [{"container_id": 5, "container_name": "shop", "status": "exited",
                     "desired_state": "running", "server_id": 1}])


def clean():
    return summary([server(1, "web-1", "online"), server(2, "web-2", "online")], [])


@pytest.fixture
def containers(container_factory, amqp_uri):
    ContainersStandIn.summary, ContainersStandIn.calls = clean(), 0
    stand_in = container_factory(ContainersStandIn, {"AMQP_URI": amqp_uri,
                                                     "serializer": "json"})
    stand_in.start()
    yield ContainersStandIn


def by_subject(alerts: list[dict]) -> dict:
    return {alert["subject"]["type"]: alert for alert in alerts}


def test_a_sweep_raises_one_alert_per_condition_counts_repeats_and_resolves_when_clean(
        make_service, rpc, containers):
    make_service(AlertsService, ALERT_CHECK_INTERVAL=3600)  # only the RPC sweeps here
    containers.summary = troubled()

    assert rpc.alerts.evaluate_fleet() == {"alerts_raised": 2, "alerts_resolved": 0}
    first = by_subject(rpc.alerts.realtime_alerts()["alerts"])
    assert sorted(first) == ["container", "server"]
    down = first["server"]
    assert down["subject"] == {"type": "server", "id": 2, "name": "web-2"}
    assert (down["alert_type"], down["condition"]) == ("server_health", "server_down")
    assert down["message"] == "Server web-2 (10.0.0.2) is down"
    assert down["occurrences"] == 1 and down["status"] == "open"
    dead = first["container"]
    assert dead["subject"] == {"type": "container", "id": 5, "name": "shop"}
    assert (dead["alert_type"], dead["condition"]) == ("docker_container", "container_down")
    assert dead["message"] == "Container shop (container 5) is exited, should be running"
    assert dead["occurrences"] == 1

    # the same summary again: no duplicates, the open alerts count the repeat
    assert rpc.alerts.evaluate_fleet() == {"alerts_raised": 0, "alerts_resolved": 0}
    second = by_subject(rpc.alerts.realtime_alerts()["alerts"])
    assert {k: a["alert_id"] for k, a in second.items()} == \
        {k: a["alert_id"] for k, a in first.items()}
    assert [second[k]["occurrences"] for k in ("server", "container")] == [2, 2]
    assert rpc.alerts.list_alerts({})["total"] == 2

    # the server answers again and the container runs: both resolve
    containers.summary = clean()
    assert rpc.alerts.evaluate_fleet() == {"alerts_raised": 0, "alerts_resolved": 2}
    assert rpc.alerts.realtime_alerts()["alerts"] == []
    resolved = by_subject(rpc.alerts.list_alerts({})["alerts"])
    assert {k: a["status"] for k, a in resolved.items()} == {"server": "resolved",
                                                             "container": "resolved"}
    assert resolved["server"]["resolution"] == "the condition cleared"
    assert resolved["container"]["resolution"] == "the container is as desired"
    assert resolved["server"]["alert_id"] == first["server"]["alert_id"]


def test_a_rule_threshold_holds_the_server_alert_until_the_outage_is_long_enough(
        make_service, rpc, containers):
    make_service(AlertsService, ALERT_CHECK_INTERVAL=3600)
    rule = rpc.alerts.add_alert({"user_id": 1}, {"alert_type": "server_health",
                                                 "threshold": 3600, "message": "Host lost"})
    containers.summary = troubled()  # offline for ten minutes: under the hour
    containers.summary["containers"]["not_as_desired"] = []
    assert rpc.alerts.evaluate_fleet() == {"alerts_raised": 0, "alerts_resolved": 0}
    assert rpc.alerts.realtime_alerts()["alerts"] == []
    containers.summary["servers"][1]["down_since"] = isoformat(
        utcnow() - dt.timedelta(hours=2))
    assert rpc.alerts.evaluate_fleet() == {"alerts_raised": 1, "alerts_resolved": 0}
    [alert] = rpc.alerts.realtime_alerts()["alerts"]
    assert alert["rule_id"] == rule["alert_id"]
    assert alert["message"] == "Host lost: server web-2 (10.0.0.2) is down"


def test_the_timer_sweeps_only_in_the_replica_holding_the_lease(make_service, rpc, containers,
                                                                databases):
    containers.summary = troubled()
    alerts = make_service(AlertsService, ALERT_CHECK_INTERVAL=1.0)
    engine = make_engine(databases.url("alerts"))
    sessions = sessionmaker(bind=engine)
    try:
        with sessions() as session:  # another replica took this tick's lease
            session.add(Lease(name="alerts-fleet-sweep", holder="another-replica",
                              expires_at=utcnow() + dt.timedelta(hours=1)))
            session.commit()
        time.sleep(2.5)  # two ticks: both find the lease taken
        assert containers.calls == 0
        assert rpc.alerts.realtime_alerts()["alerts"] == []
        with sessions() as session:  # its lease runs out: the next tick here sweeps
            session.execute(update(Lease).where(Lease.name == "alerts-fleet-sweep")
                            .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
            session.commit()
        deadline = time.monotonic() + 15
        while len(rpc.alerts.realtime_alerts()["alerts"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(by_subject(rpc.alerts.realtime_alerts()["alerts"])) == [
            "container", "server"]
        assert containers.calls >= 1
    finally:
        alerts.stop()  # no tick left asking the stand-in once the test is over
        engine.dispose()
