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
from nameko.standalone.events import event_dispatcher
from sqlalchemy import func, select, update
from sqlalchemy.orm import sessionmaker

from berth.db import isoformat, make_engine, utcnow
from berth.events import ContainerRecovered, ServerWentDown, TrafficQuotaExceeded
from services.alerts.models import Alert, AuditLog, Lease
from services.alerts.service import AlertsService
from tests.support import poll


class ContainersStandIn:
    """Stands in for the containers service: ``fleet_summary`` answers ``summary``, after
    running ``meanwhile`` (if set): what happens between the read and the sweep's write."""
    name = "containers"
    summary: dict = {}
    calls = 0
    meanwhile = None

    @nameko_rpc
    def fleet_summary(self):
        ContainersStandIn.calls += 1
        answer = copy.deepcopy(ContainersStandIn.summary)
        if ContainersStandIn.meanwhile is not None:
            ContainersStandIn.meanwhile()
        return answer


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
    ContainersStandIn.meanwhile = None
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
        poll(lambda: rpc.alerts.realtime_alerts()["alerts"], until=lambda alerts: len(alerts) >= 2,
             timeout=15, what="two open alerts")
        assert sorted(by_subject(rpc.alerts.realtime_alerts()["alerts"])) == [
            "container", "server"]
        assert containers.calls >= 1
    finally:
        alerts.stop()  # no tick left asking the stand-in once the test is over
        engine.dispose()


def test_a_server_never_seen_online_is_down_since_it_was_added_not_forever(
        make_service, rpc, containers):
    make_service(AlertsService, ALERT_CHECK_INTERVAL=3600)
    rpc.alerts.add_alert({"user_id": 1}, {"alert_type": "server_health",
                                          "threshold": 3600, "message": "Host lost"})
    never_online = server(3, "typo-1", "offline")  # no down_since, no last_seen_at
    containers.summary = summary([never_online], [])
    assert rpc.alerts.evaluate_fleet()["alerts_raised"] == 0  # before the contract: added_at
    never_online["added_at"] = isoformat(utcnow() - dt.timedelta(seconds=20))
    assert rpc.alerts.evaluate_fleet()["alerts_raised"] == 0  # down 20 s, the rule says 1 h
    never_online["added_at"] = isoformat(utcnow() - dt.timedelta(hours=2))
    assert rpc.alerts.evaluate_fleet()["alerts_raised"] == 1
    [alert] = rpc.alerts.realtime_alerts()["alerts"]
    assert alert["subject"]["id"] == 3 and alert["message"].startswith("Host lost: server typo-1")


def test_a_crash_looping_container_running_between_crashes_keeps_its_one_alert(
        make_service, rpc, containers):
    make_service(AlertsService, ALERT_CHECK_INTERVAL=3600)
    died = {"container_id": 5, "container_name": "loop", "status": "exited",
            "desired_state": "running", "server_id": 1,
            "died_at": isoformat(utcnow() - dt.timedelta(seconds=30)), "deaths": 1}
    up_between_crashes = {**died, "status": "running", "deaths": 3}
    containers.summary = summary([server(1, "web-1", "online")], [died])
    assert rpc.alerts.evaluate_fleet() == {"alerts_raised": 1, "alerts_resolved": 0}
    for row in (up_between_crashes, died, up_between_crashes):  # the loop goes on
        containers.summary["containers"]["not_as_desired"] = [row]
        assert rpc.alerts.evaluate_fleet() == {"alerts_raised": 0, "alerts_resolved": 0}
    [alert] = rpc.alerts.realtime_alerts()["alerts"]
    assert alert["occurrences"] == 4, alert
    # it stayed up: the containers service no longer lists it (incident over)
    containers.summary["containers"]["not_as_desired"] = []
    assert rpc.alerts.evaluate_fleet() == {"alerts_raised": 0, "alerts_resolved": 1}
    assert rpc.alerts.list_alerts({})["total"] == 1


def test_a_server_in_maintenance_raises_nothing_and_its_open_alerts_resolve(
        make_service, rpc, containers):
    make_service(AlertsService, ALERT_CHECK_INTERVAL=3600)
    containers.summary = troubled()  # server 2 offline, container 5 on server 1 exited
    assert rpc.alerts.evaluate_fleet()["alerts_raised"] == 2
    containers.summary["servers"][1]["maintenance"] = True
    containers.summary["servers"][0]["maintenance"] = True  # container 5's server
    containers.summary["containers"]["not_as_desired"][0]["maintenance"] = True
    assert rpc.alerts.evaluate_fleet() == {"alerts_raised": 0, "alerts_resolved": 2}
    assert rpc.alerts.realtime_alerts()["alerts"] == []
    assert {a["resolution"] for a in rpc.alerts.list_alerts({})["alerts"]} == {"maintenance"}
    assert rpc.alerts.evaluate_fleet() == {"alerts_raised": 0, "alerts_resolved": 0}
    assert rpc.alerts.list_alerts({})["total"] == 2


# --- what the summary no longer shows, and what happened after it was read -------------------

@pytest.fixture
def dispatch(amqp_uri):
    send = event_dispatcher({"AMQP_URI": amqp_uri, "serializer": "json"})
    return lambda event: send(event.SOURCE, event.TYPE, event.model_dump())


@pytest.fixture
def alerts_db(databases):
    engine = make_engine(databases.url("alerts"))
    yield sessionmaker(bind=engine)
    engine.dispose()


def test_alerts_of_a_server_gone_from_the_summary_and_of_its_containers_resolve(
        make_service, rpc, containers):
    make_service(AlertsService, ALERT_CHECK_INTERVAL=3600)
    containers.summary = troubled()  # server 2 offline; container 5 exited, on server 2 here
    containers.summary["containers"]["not_as_desired"][0]["server_id"] = 2
    assert rpc.alerts.evaluate_fleet()["alerts_raised"] == 2
    containers.summary = summary([server(1, "web-1", "online")], [])  # server 2 deleted
    assert rpc.alerts.evaluate_fleet() == {"alerts_raised": 0, "alerts_resolved": 2}
    assert {a["resolution"] for a in rpc.alerts.list_alerts({})["alerts"]} == {
        "the server was removed"}


def test_a_server_alert_raised_after_the_summary_was_read_is_not_resolved_by_it(
        make_service, rpc, containers, dispatch, alerts_db):
    make_service(AlertsService, ALERT_CHECK_INTERVAL=3600)
    containers.summary = clean()  # read before server 9 was added

    def server_9_goes_down():
        dispatch(ServerWentDown.new(server_id=9, server_name="new-9", ip_address="10.0.0.9",
                                    last_seen_at=None, reason="ping timed out"))
        with alerts_db() as session:
            poll(lambda: session.scalar(select(func.count()).select_from(Alert)),
                 until=lambda stored: stored == 1, timeout=15, interval=0.05,
                 what="server 9's alert stored")
    containers.meanwhile = server_9_goes_down
    assert rpc.alerts.evaluate_fleet() == {"alerts_raised": 0, "alerts_resolved": 0}
    [alert] = rpc.alerts.realtime_alerts()["alerts"]
    assert alert["subject"]["id"] == 9


def test_traffic_alerts_of_an_ended_month_resolve_at_the_next_sweep(
        make_service, rpc, containers, dispatch):
    make_service(AlertsService, ALERT_CHECK_INTERVAL=3600)
    this_month = utcnow().strftime("%Y-%m")
    for month in ("2024-05", this_month):
        dispatch(TrafficQuotaExceeded.new(user_id=42, month=month, used_bytes=2000,
                                          limit_bytes=1000))
    poll(lambda: rpc.alerts.realtime_alerts()["alerts"], until=lambda alerts: len(alerts) == 2,
         timeout=15, interval=0.05, what="both months' alerts open")
    assert rpc.alerts.evaluate_fleet() == {"alerts_raised": 0, "alerts_resolved": 1}
    [still] = rpc.alerts.realtime_alerts()["alerts"]
    assert still["details"]["month"] == this_month
    ended = [a for a in rpc.alerts.list_alerts({})["alerts"] if a["status"] == "resolved"]
    assert [(a["details"]["month"], a["resolution"]) for a in ended] == [
        ("2024-05", "month ended")]


def test_a_container_recovered_after_the_summary_was_read_raises_no_incident(
        make_service, rpc, containers, dispatch, alerts_db):
    make_service(AlertsService, ALERT_CHECK_INTERVAL=3600)
    looping = {"container_id": 5, "container_name": "loop", "status": "running",
               "desired_state": "running", "server_id": 1, "user_id": 42,
               "died_at": isoformat(utcnow() - dt.timedelta(seconds=30)), "deaths": 2}
    containers.summary = summary([server(1, "web-1", "online")], [looping])

    def it_recovers():
        dispatch(ContainerRecovered.new(container_id=5, container_name="loop", user_id=42,
                                        server_id=1))
        with alerts_db() as session:
            poll(lambda: session.scalar(select(func.count()).select_from(AuditLog)
                                        .where(AuditLog.action == "container_recovered")),
                 until=lambda logged: logged == 1, timeout=15, interval=0.05,
                 what="the container_recovered event handled")
    containers.meanwhile = it_recovers
    assert rpc.alerts.evaluate_fleet() == {"alerts_raised": 0, "alerts_resolved": 0}
    assert rpc.alerts.realtime_alerts()["alerts"] == []
    containers.meanwhile = None  # read after the recovery: the row is current again
    assert rpc.alerts.evaluate_fleet()["alerts_raised"] == 1
