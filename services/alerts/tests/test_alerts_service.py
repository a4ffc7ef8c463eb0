"""Alerts on the real broker, against SQLite and PostgreSQL: events raise one alert per
condition and resolve it, every event and API call lands in the audit log once, admins are
mailed, the webhook is signed and retried, peers that are away are 503s."""
import json
import time

import pytest
from kombu import Connection, Producer

from berth.errors import BadRequest, NotFound, ServiceUnavailable
from berth.events import (ContainerDied, ContainerRecovered, ServerCameBack, ServerRemoved,
                          ServerUpdated, ServerWentDown, TrafficQuotaExceeded)
from berth.settings import reload_settings
from services.alerts import webhook
from services.alerts.audit_wire import AUDIT_EXCHANGE, AUDIT_QUEUE, AUDIT_ROUTING_KEY
from services.alerts.service import AlertsService
from services.alerts.tests.receivers import WebhookReceiver
from services.users.service import UsersService
from tests.support import poll

ADMIN = {"user_id": 1, "username": "root", "role": "admin"}


def went_down(server_id=7, reason="ping timed out"):
    return ServerWentDown.new(server_id=server_id, server_name="web-1", ip_address="10.0.0.5",
                              last_seen_at="2024-05-01T11:59:00Z", reason=reason)


def logs(rpc, **query):
    return rpc.alerts.system_logs(query)


def logged(rpc, count: int, **query) -> None:
    """Until the audit log holds ``count`` rows matching ``query``."""
    poll(lambda: logs(rpc, **query)["total"], until=lambda total: total == count,
         what=f"{count} audit rows matching {query}")


def open_alerts(rpc, until, what: str) -> list:
    return poll(lambda: rpc.alerts.realtime_alerts()["alerts"], until=until, what=what)


def test_repeated_server_down_events_raise_one_alert_until_the_server_comes_back(
        make_service, rpc, dispatch):
    make_service(AlertsService)
    first = went_down()
    for event in (first, first, went_down(), went_down()):  # one redelivered, two new ticks
        dispatch(event)
    logged(rpc, 3, action="server_went_down")
    realtime = rpc.alerts.realtime_alerts()
    assert len(realtime["alerts"]) == 1, realtime
    [alert] = realtime["alerts"]
    assert alert["subject"] == {"type": "server", "id": 7, "name": "web-1"}
    assert alert["alert_type"] == "server_health" and alert["occurrences"] == 3
    assert "web-1 (10.0.0.5) is down" in alert["message"]

    dispatch(ServerCameBack.new(server_id=7, server_name="web-1", ip_address="10.0.0.5",
                                down_since="2024-05-01T11:59:00Z"))
    open_alerts(rpc, lambda alerts: alerts == [], "no open alert")
    everything = rpc.alerts.list_alerts({})
    assert everything["total"] == 1
    assert everything["alerts"][0]["status"] == "resolved"
    assert everything["alerts"][0]["resolution"] == "the server answers again"
    # the next outage is a new alert
    dispatch(went_down(reason="connection refused"))
    open_alerts(rpc, lambda alerts: len(alerts) == 1, "one open alert")
    assert rpc.alerts.list_alerts({})["total"] == 2


def test_a_comeback_handled_before_the_outage_it_follows_leaves_no_alert(
        make_service, rpc, dispatch):
    make_service(AlertsService)
    outage = went_down(server_id=8).model_copy(update={"occurred_at": "2024-05-01T12:00:00Z"})
    comeback = ServerCameBack.new(server_id=8, server_name="web-2", ip_address="10.0.0.6",
                                  down_since=None)
    dispatch(comeback)  # queues per event type: the later event may be handled first
    logged(rpc, 1, action="server_came_back")
    dispatch(outage)
    logged(rpc, 1, action="server_went_down")
    assert rpc.alerts.realtime_alerts()["alerts"] == []


@pytest.mark.parametrize("ending", ["removed", "maintenance"])
def test_an_outage_handled_after_the_server_was_removed_or_put_in_maintenance_leaves_no_alert(
        make_service, rpc, dispatch, ending):
    make_service(AlertsService)
    outage = went_down(server_id=8).model_copy(update={"occurred_at": "2024-05-01T12:00:00Z"})
    server = dict(server_id=8, server_name="web-2", ip_address="10.0.0.6")
    later = ServerRemoved.new(**server, actor_id=1) if ending == "removed" else \
        ServerUpdated.new(**server, changed=["maintenance"], maintenance=True, actor_id=1)
    dispatch(later)  # handled first, though it happened after the outage
    logged(rpc, 1, action=later.TYPE)
    dispatch(outage)
    logged(rpc, 1, action="server_went_down")
    assert rpc.alerts.realtime_alerts()["alerts"] == []


def test_alert_mail_reaches_every_admin_and_the_webhook_is_signed_and_retried(
        make_service, rpc, dispatch, smtp_server, monkeypatch):
    receiver = WebhookReceiver(fail_first=1).start()
    try:
        monkeypatch.setenv("BERTH_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("BERTH_SMTP_PORT", str(smtp_server.port))
        monkeypatch.setenv("BERTH_WEBHOOK_URL", receiver.url)
        monkeypatch.setenv("BERTH_WEBHOOK_SECRET", "hook-secret")
        monkeypatch.setenv("BERTH_WEBHOOK_MAX_BACKOFF", "0.5")
        reload_settings()
        make_service(UsersService)
        make_service(AlertsService, WEBHOOK_RETRY_INTERVAL=0.3)
        for name in ("ops1", "ops2"):
            user_id = rpc.users.add_user({"username": name, "password": "password-1",
                                          "email": f"{name}@example.com"})["user_id"]
            rpc.users.update_user(user_id, {"role": "admin"})
        dispatch(ContainerDied.new(container_id=3, container_name="shop", user_id=42,
                                   server_id=7, status="missing", exit_code=None))
        mails = smtp_server.wait_for(lambda m: "shop" in m["Subject"] and "alert" in
                                     m["Subject"], timeout=20)
        time.sleep(0.5)
        mails = [m for m in smtp_server.messages() if "Berth alert" in m["Subject"]]
        assert sorted(m["To"] for m in mails) == ["ops1@example.com", "ops2@example.com"]
        poll(lambda: receiver.accepted, until=lambda accepted: len(accepted) == 1,
             what="the webhook accepted once", details=lambda: f"attempts: {receiver.attempts}")
        assert len(receiver.attempts) >= 2  # the first answer was a 500: retried
        body, headers = receiver.accepted[0]
        assert webhook.verify("hook-secret", headers[webhook.TIMESTAMP_HEADER], body,
                              headers[webhook.SIGNATURE_HEADER], now=time.time())
        payload = json.loads(body)
        assert payload["event"] == "alert_raised"
        assert payload["data"]["subject"] == {"type": "container", "id": 3, "name": "shop"}
        assert headers[webhook.DELIVERY_HEADER] == payload["delivery_id"]
        assert receiver.attempts[0][1][webhook.DELIVERY_HEADER] == payload["delivery_id"]

        dispatch(ContainerRecovered.new(container_id=3, container_name="shop", user_id=42,
                                        server_id=7))
        poll(lambda: receiver.accepted, until=lambda accepted: len(accepted) == 2,
             what="the webhook accepted twice", details=lambda: f"attempts: {receiver.attempts}")
        assert json.loads(receiver.accepted[1][0])["event"] == "alert_resolved"
        assert smtp_server.wait_for(lambda m: "Berth resolved" in m["Subject"])
    finally:
        receiver.stop()


def test_quota_exceeded_mails_the_user_and_raises_one_alert(make_service, rpc, dispatch,
                                                           smtp_server, monkeypatch):
    monkeypatch.setenv("BERTH_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("BERTH_SMTP_PORT", str(smtp_server.port))
    reload_settings()
    make_service(UsersService)
    make_service(AlertsService)
    user_id = rpc.users.add_user({"username": "heavy", "password": "password-1",
                                  "email": "heavy@example.com"})["user_id"]
    dispatch(TrafficQuotaExceeded.new(user_id=user_id, month="2024-05", used_bytes=2 * 10**9,
                                      limit_bytes=10**9))
    mails = smtp_server.wait_for(lambda m: m["To"] == "heavy@example.com" and "quota" in
                                 m["Subject"])
    assert len(mails) == 1
    [alert] = rpc.alerts.realtime_alerts()["alerts"]
    assert alert["subject"]["type"] == "user" and alert["user_id"] == user_id
    assert alert["alert_type"] == "traffic"


def test_api_call_records_from_the_gateway_become_audit_rows_once(make_service, rpc,
                                                                  amqp_uri):
    make_service(AlertsService)
    record = {"v": 1, "request_id": "0f1e2d3c-req", "occurred_at": "2024-05-01T12:00:00Z",
              "method": "PUT", "route": "/api/users/<int:user_id>", "path": "/api/users/5",
              "path_params": {"user_id": 5}, "status": 200,
              "actor": {"user_id": 1, "username": "root", "role": "admin"},
              "body": {"role": "admin"}, "reply_ids": {}}
    with Connection(amqp_uri) as connection:
        producer = Producer(connection.channel(), exchange=AUDIT_EXCHANGE, serializer="json")
        AUDIT_QUEUE(producer.channel).declare()
        other = {**record, "request_id": "0f1e2d3c-req2", "method": "DELETE"}
        for message in ({"v": 1, "records": [record]}, {"v": 1, "records": [record, other]},
                        {"v": 1}, {"v": 1, "records": [{"v": 1}]}):  # redelivery, malformed
            producer.publish(message, routing_key=AUDIT_ROUTING_KEY)
    logged(rpc, 2, source="api")
    time.sleep(0.5)
    assert logs(rpc, source="api")["total"] == 2
    rpc.alerts.delete_log(logs(rpc, action="DELETE /api/users/<int:user_id>")["logs"][0][
        "log_id"])
    time.sleep(0.5)
    [row] = logs(rpc, source="api")["logs"]
    assert row["actor"] == {"type": "user", "user_id": 1, "username": "root", "role": "admin"}
    assert row["subject"] == {"type": "user", "id": "5"} and row["user_id"] == 5
    assert row["timestamp"] == "2024-05-01T12:00:00Z"
    user_logs = rpc.alerts.user_logs(ADMIN, {"user_id": 5, "start": "2024-05-01",
                                             "end": "2024-05-01"})
    assert [r["log_id"] for r in user_logs["logs"]] == [row["log_id"]]
    assert rpc.alerts.user_logs(ADMIN, {"user_id": 5, "start": "2024-05-02",
                                        "end": "2024-05-03"})["logs"] == []
    with pytest.raises(BadRequest):
        rpc.alerts.user_logs(ADMIN, {"user_id": 5, "start": "2024-05-03",
                                     "end": "2024-05-01"})
    updated = rpc.alerts.update_log({"user_id": 1}, row["log_id"], {"message": "edited"})
    assert updated["message"] == "Log updated successfully"
    assert updated["log"]["original_message"] == row["message"]
    assert rpc.alerts.delete_log(row["log_id"])["message"] == "Log deleted successfully"
    with pytest.raises(NotFound):
        rpc.alerts.delete_log(row["log_id"])


def test_checks_and_monitoring_answer_503_or_an_issue_when_peers_are_away(make_service, rpc):
    make_service(AlertsService)
    with pytest.raises(ServiceUnavailable):
        rpc.alerts.check_server_health({"server_id": 1})
    with pytest.raises(ServiceUnavailable):
        rpc.alerts.check_container_traffic({"container_id": 1})
    with pytest.raises(ServiceUnavailable):
        rpc.alerts.check_traffic({"month": "2024-05"})
    with pytest.raises(BadRequest):
        rpc.alerts.check_traffic({"month": "2024-13"})
    status = rpc.alerts.monitoring()
    assert status["status"] == "unhealthy"  # users is not running: nobody can sign in
    assert status["services"]["alerts"] == "ok"
    down = {i["service"] for i in status["issues"] if i["type"] == "service_down"}
    assert down == {"users", "containers", "traffic", "billing"}
    assert any(i["type"] == "fleet_unknown" for i in status["issues"])


def test_rules_share_ids_with_alerts_and_deleting_one_resolves_its_alerts(make_service, rpc,
                                                                         dispatch):
    make_service(AlertsService)
    added = rpc.alerts.add_alert({"user_id": 1}, {"alert_type": "server_health",
                                                  "threshold": 0, "message": "Host lost"})
    assert added["message"] == "Alert added successfully"
    dispatch(went_down(server_id=9))
    open_alerts(rpc, bool, "an open alert")
    [alert] = rpc.alerts.realtime_alerts()["alerts"]
    assert alert["rule_id"] == added["alert_id"] and alert["alert_id"] != added["alert_id"]
    assert alert["message"].startswith("Host lost: server web-1")
    reply = rpc.alerts.delete_alert(added["alert_id"])
    assert reply["deleted"] == "rule" and reply["alerts_resolved"] == 1
    assert rpc.alerts.realtime_alerts()["alerts"] == []
    assert rpc.alerts.delete_alert(alert["alert_id"])["deleted"] == "alert"
    with pytest.raises(NotFound):
        rpc.alerts.delete_alert(alert["alert_id"])
    with pytest.raises(BadRequest):
        rpc.alerts.add_alert({"user_id": 1}, {"alert_type": "disk", "threshold": 1,
                                              "message": "x"})


def test_raised_and_resolved_alerts_are_announced_to_live_streams(make_service, rpc, dispatch,
                                                                  amqp_uri):
    """The live notices the gateway's streams forward (gateway.live): published on
    alerts.events after the commit, the alert as the API shows it."""
    import uuid

    from kombu import Exchange, Queue, binding

    make_service(AlertsService)
    exchange = Exchange("alerts.events", type="topic", durable=True, auto_delete=False)
    listening = Queue(f"live-test-{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True,
                      bindings=[binding(exchange, routing_key=kind)
                                for kind in ("alert_raised", "alert_resolved")])
    with Connection(amqp_uri) as connection, connection.SimpleQueue(listening) as notices:
        dispatch(went_down(server_id=9))
        raised = notices.get(timeout=20)
        raised.ack()
        assert raised.delivery_info["routing_key"] == "alert_raised"
        [alert] = rpc.alerts.realtime_alerts()["alerts"]
        assert {k: v for k, v in raised.payload.items() if k != "occurred_at"} == alert
        dispatch(went_down(server_id=9))  # the same outage again: counted, not announced
        dispatch(ServerCameBack.new(server_id=9, server_name="web-1", ip_address="10.0.0.5",
                                    down_since=None))
        resolved = notices.get(timeout=20)
        resolved.ack()
        assert resolved.delivery_info["routing_key"] == "alert_resolved"
        assert resolved.payload["alert_id"] == alert["alert_id"]
        assert resolved.payload["status"] == "resolved"
