"""Monitoring status from probe results."""
import datetime as dt

from services.alerts import monitoring

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
OK = {name: "ok" for name in ("users", "containers", "traffic", "billing", "alerts")}
FLEET = {"servers": [{"server_id": 1, "server_name": "a", "status": "online",
                      "last_seen_at": None, "down_since": None, "containers": 2}],
         "containers": {"total": 2, "by_status": {"running": 2}, "not_as_desired": []}}


def assess(services=OK, fleet=FLEET, error=None):
    return monitoring.assess(services, fleet, error, T0 + dt.timedelta(hours=72), T0, 0)


def test_all_well_is_healthy_with_the_seed_fields():
    status = assess()
    assert status["status"] == "healthy" and status["issues"] == []
    assert status["uptime"] == "72 hours" and status["uptime_seconds"] == 72 * 3600


def test_a_stopped_service_degrades():
    status = assess({**OK, "traffic": "no answer within 2 s"})
    assert status["status"] == "degraded"
    [issue] = status["issues"]
    assert issue["type"] == "service_down" and "traffic" in issue["message"]
    assert issue["timestamp"] == "2024-05-04T12:00:00Z"


def test_users_down_or_most_services_down_is_unhealthy():
    assert assess({**OK, "users": "not running"})["status"] == "unhealthy"
    assert assess({**OK, "traffic": "x", "billing": "x", "containers": "x"})["status"] == \
        "unhealthy"


def test_an_unknown_fleet_is_an_issue_not_an_error():
    status = assess({**OK, "containers": "no answer"}, None, "the containers service is away")
    assert status["status"] == "degraded"
    assert {i["type"] for i in status["issues"]} == {"service_down", "fleet_unknown"}


def test_servers_and_containers_in_trouble():
    fleet = {"servers": [{"server_id": 1, "server_name": "a", "status": "offline",
                          "down_since": "2024-05-04T11:00:00Z"},
                         {"server_id": 2, "server_name": "b", "status": "online"}],
             "containers": {"total": 1, "by_status": {"missing": 1}, "not_as_desired": [
                 {"container_id": 4, "container_name": "c", "status": "missing",
                  "desired_state": "running"}]}}
    status = assess(fleet=fleet)
    assert status["status"] == "degraded"
    server = next(i for i in status["issues"] if i["type"] == "server_down")
    assert server["timestamp"] == "2024-05-04T11:00:00Z" and "Server 1" in server["message"]
    assert any(i["type"] == "container_not_as_desired" for i in status["issues"])
    fleet["servers"][1]["status"] = "offline"
    assert assess(fleet=fleet)["status"] == "unhealthy"


def test_format_uptime():
    assert [monitoring.format_uptime(s) for s in (5, 61, 3600, 7200)] == [
        "5 seconds", "1 minute", "1 hour", "2 hours"]


def test_a_server_in_maintenance_and_its_containers_are_not_problems():
    fleet = {"servers": [{**FLEET["servers"][0]},
                         {"server_id": 2, "server_name": "b", "status": "offline",
                          "maintenance": True, "down_since": "2024-05-04T11:00:00Z"}],
             "containers": {"total": 3, "by_status": {"running": 2, "exited": 1},
                            "not_as_desired": [{"container_id": 9, "container_name": "x",
                                                "status": "exited", "desired_state": "running",
                                                "server_id": 2, "maintenance": True}]}}
    status = assess(fleet=fleet)
    assert status["status"] == "healthy" and status["issues"] == []
    assert status["servers"]["by_status"] == {"online": 1, "maintenance": 1}
    assert status["servers"]["maintenance"] == [2]
    # the only server left watched going offline is still "every server offline"
    fleet["servers"][0]["status"] = "offline"
    assert assess(fleet=fleet)["status"] == "unhealthy"
