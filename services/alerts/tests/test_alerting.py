"""Alert rules, evaluation, dedupe and resolution, without a broker."""
import datetime as dt

import pytest

from berth.errors import NotFound
from services.alerts import alerting
from services.alerts.alerting import Subject
from services.alerts.models import Alert, AlertRule

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
SERVER = Subject("server", 7, "web-1")
CONTAINER = Subject("container", 3, "shop", 42)
USER = Subject("user", 42, "user 42", 42)


def rule(rule_id, alert_type, threshold, message="Watch out"):
    return AlertRule(id=rule_id, alert_type=alert_type, threshold=threshold, message=message)


# --- evaluation ----------------------------------------------------------------------------

def test_a_down_server_fires_the_default_condition_without_rules():
    firing, keys = alerting.evaluate_server(SERVER, True, "10.0.0.5", 0, [], "ping timed out")
    assert [f.key for f in firing] == keys == ["server_down:0:server:7"]
    assert firing[0].message == "Server web-1 (10.0.0.5) is down: ping timed out"
    assert firing[0].alert_type == "server_health" and firing[0].rule_id is None


def test_an_online_server_fires_nothing_but_its_key_is_examined():
    firing, keys = alerting.evaluate_server(SERVER, False, "10.0.0.5", 0, [])
    assert firing == [] and keys == ["server_down:0:server:7"]


def test_server_rules_fire_once_the_server_is_down_for_their_threshold():
    rules = [rule(1, "server_health", 0, "Host lost"), rule(2, "server_health", 300)]
    firing, keys = alerting.evaluate_server(SERVER, True, "10.0.0.5", 120, rules)
    assert keys == ["server_down:1:server:7", "server_down:2:server:7"]
    assert [f.rule_id for f in firing] == [1]
    assert firing[0].message.startswith("Host lost: server web-1 (10.0.0.5)")
    firing, _ = alerting.evaluate_server(SERVER, True, "10.0.0.5", 301, rules)
    assert [f.rule_id for f in firing] == [1, 2]


def test_a_container_not_in_its_desired_state_fires():
    firing, _ = alerting.evaluate_container(CONTAINER, "missing", "running", [])
    assert firing[0].message == "Container shop (container 3) is missing, should be running"
    assert alerting.evaluate_container(CONTAINER, "running", "running", [])[0] == []
    assert alerting.evaluate_container(CONTAINER, "stopped", "stopped", [])[0] == []


def test_over_quota_always_fires_and_traffic_rules_add_their_own_thresholds():
    rules = [rule(5, "traffic", 10_000)]
    firing, keys = alerting.evaluate_user_traffic(USER, "2024-05", 20_000, 15_000, rules)
    assert {f.condition for f in firing} == {"traffic_quota", "traffic_threshold"}
    assert keys == ["traffic_quota:0:user:42:2024-05", "traffic_threshold:5:user:42:2024-05"]
    firing, _ = alerting.evaluate_user_traffic(USER, "2024-05", 12_000, 15_000, rules)
    assert [f.condition for f in firing] == ["traffic_threshold"]
    assert alerting.evaluate_user_traffic(USER, "2024-05", 9_000, 15_000, rules)[0] == []


def test_container_traffic_needs_a_rule():
    assert alerting.evaluate_container_traffic(CONTAINER, "2024-05", 10**12, []) == ([], [])
    firing, _ = alerting.evaluate_container_traffic(
        CONTAINER, "2024-05", 2 * 1024**3, [rule(9, "docker_traffic", 1024**3, "Busy")])
    assert firing[0].message == ("Busy: shop (container 3) used 2.0 GiB in 2024-05 "
                                 "(threshold 1.0 GiB)")


def test_human_bytes():
    assert [alerting.human_bytes(n) for n in (0, 1023, 1024, 1536 * 1024**2)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 GiB"]


# --- raising, dedupe, resolving ---------------------------------------------------------------

def down(session, now, reason="ping timed out", examined=None, observed_at=None):
    firing, keys = alerting.evaluate_server(SERVER, reason is not None, "10.0.0.5", 0, [],
                                            reason)
    return alerting.apply(session, SERVER, firing, keys if examined is None else examined,
                          now, observed_at)


def test_a_persisting_condition_raises_one_alert_and_counts_repeats(session_factory):
    with session_factory() as session:
        first = down(session, T0, examined=[])
        assert len(first.raised) == 1 and first.repeated == []
        for minute in range(1, 4):
            again = down(session, T0 + dt.timedelta(minutes=minute), examined=[])
            assert again.raised == [] and len(again.repeated) == 1
        session.commit()
        [alert] = session.query(Alert).all()
        assert alert.status == "open" and alert.occurrences == 4
        assert alert.subject_type == "server" and alert.subject_id == 7
        assert alert.subject_name == "web-1"
        assert alert.raised_at == T0 and alert.last_seen_at == T0 + dt.timedelta(minutes=3)


def test_the_condition_clearing_resolves_and_a_new_outage_raises_a_new_alert(session_factory):
    with session_factory() as session:
        first = down(session, T0).raised[0]
        cleared = down(session, T0 + dt.timedelta(minutes=5), reason=None)
        assert [a.id for a in cleared.resolved] == [first.id]
        assert first.status == "resolved" and first.open_key is None
        assert first.resolved_at == T0 + dt.timedelta(minutes=5)
        again = down(session, T0 + dt.timedelta(minutes=9))
        assert len(again.raised) == 1 and again.raised[0].id != first.id
        session.commit()
        assert session.query(Alert).filter_by(status="open").count() == 1


def test_an_observation_older_than_the_alert_does_not_resolve_it(session_factory):
    with session_factory() as session:
        alert = down(session, T0).raised[0]
        stale = down(session, T0 + dt.timedelta(seconds=5), reason=None,
                     observed_at=T0 - dt.timedelta(seconds=1))
        assert stale.resolved == [] and alert.status == "open"


def test_rules_and_alerts_share_one_id_sequence(session_factory):
    with session_factory() as session:
        rule_a = alerting.add_rule(session, "server_health", 0, "Lost", 1, T0)
        alert = down(session, T0).raised[0]
        rule_b = alerting.add_rule(session, "traffic", 10, "Busy", 1, T0)
        session.commit()
        assert len({rule_a.id, alert.id, rule_b.id}) == 3


def test_deleting_a_rule_resolves_its_open_alerts(session_factory):
    with session_factory() as session:
        rule_a = alerting.add_rule(session, "server_health", 0, "Lost", 1, T0)
        firing, keys = alerting.evaluate_server(SERVER, True, "10.0.0.5", 0, [rule_a])
        alert = alerting.apply(session, SERVER, firing, keys, T0).raised[0]
        done = alerting.delete(session, rule_a.id, T0 + dt.timedelta(minutes=1))
        session.commit()
        assert done["deleted"] == "rule" and [a.id for a in done["resolved"]] == [alert.id]
        assert session.get(Alert, alert.id).resolution == f"rule {rule_a.id} deleted"
        assert alerting.delete(session, alert.id, T0)["deleted"] == "alert"
        session.commit()
        with pytest.raises(NotFound):
            alerting.delete(session, alert.id, T0)


def test_listing_pages_newest_first_and_filters_open(session_factory):
    with session_factory() as session:
        for n in range(5):
            subject = Subject("server", n + 1, f"s{n}")
            firing, keys = alerting.evaluate_server(subject, True, "10.0.0.1", 0, [])
            alerting.apply(session, subject, firing, keys, T0 + dt.timedelta(minutes=n))
        alerting.apply(session, Subject("server", 1), [], ["server_down:0:server:1"],
                       T0 + dt.timedelta(hours=1))
        session.commit()
        page = alerting.listing(session, 2, 0)
        assert page["total"] == 5 and [a["subject"]["id"] for a in page["alerts"]] == [5, 4]
        assert page["alerts"][0]["timestamp"] == "2024-05-01T12:04:00Z"
        assert alerting.listing(session, 200, 0, status="open")["total"] == 4
