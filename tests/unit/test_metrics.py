"""Scrape-time database metrics (berth.metrics.DatabaseCollector and each service's families),
entrypoint and event counting, and the gateway's request metrics, read back through
prometheus_client's own text parser."""
from __future__ import annotations

import datetime as dt
import importlib
from unittest import mock

import pytest
from nameko.events import EventHandler
from nameko.rpc import Rpc
from nameko.timer import Timer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from berth import metrics
from berth.metrics import DatabaseCollector, EntrypointMetrics, outbox_backlog

SERVICES = ("users", "containers", "traffic", "billing", "alerts")
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


def database(tmp_path, service: str):
    base = importlib.import_module(f"services.{service}.models").Base
    engine = create_engine(f"sqlite:///{tmp_path}/{service}.sqlite3")
    base.metadata.create_all(engine)
    return engine, sessionmaker(bind=engine, expire_on_commit=False)


def scrape(collector) -> dict:
    """Render as /metrics does, parse strictly: {family name: family}."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def values(family) -> dict:
    """{frozenset of label items: value} of a family's samples (without suffix samples)."""
    return {frozenset(s.labels.items()): s.value for s in family.samples
            if s.name in (family.name, family.name + "_total")}


def families_of(service: str):
    return importlib.import_module(f"services.{service}.metrics").FAMILIES


@pytest.mark.parametrize("service", SERVICES)
def test_every_family_of_every_service_runs_on_an_empty_database(tmp_path, service):
    engine, Session = database(tmp_path, service)
    families = scrape(DatabaseCollector(service, Session, families_of(service)))
    engine.dispose()
    assert families, service
    for family in families.values():
        assert family.name.startswith("berth_")
        assert family.documentation
        assert family.samples, family.name
        assert all(s.value == 0 for s in family.samples), family


def test_containers_and_servers_are_counted_by_status_with_bounded_labels(tmp_path):
    from services.containers.models import Container, Server
    engine, Session = database(tmp_path, "containers")
    with Session() as session:
        servers = [Server(name=f"s{i}", ip_address="127.0.0.1", docker_url="unix:///x",
                          status=status) for i, status in enumerate(
                              ["online", "online", "offline", "something-new"])]
        session.add_all(servers)
        session.flush()
        session.add_all([Container(name=f"c{i}", user_id=7, server_id=servers[0].id,
                                   image="busybox", status=status)
                         for i, status in enumerate(["running", "running", "stopped"])])
        session.commit()
    families = scrape(DatabaseCollector("containers", Session, families_of("containers")))
    engine.dispose()
    servers = values(families["berth_servers"])
    assert servers == {frozenset({"status": s}.items()): v for s, v in
                       [("online", 2), ("offline", 1), ("maintenance", 0), ("other", 1)]}
    containers = {dict(k)["status"]: v for k, v in values(families["berth_containers"]).items()}
    assert containers == {"running": 2, "stopped": 1, "paused": 0, "restarting": 0,
                          "missing": 0, "creating": 0}
    assert families["berth_servers"].type == "gauge"


def test_bytes_metered_is_a_counter_over_every_month(tmp_path):
    from services.traffic.models import MonthlyTraffic, Sweep
    engine, Session = database(tmp_path, "traffic")
    with Session() as session:
        session.add_all([
            MonthlyTraffic(month="2025-12", user_id=1, bytes_in=10, bytes_out=1),
            MonthlyTraffic(month="2026-01", user_id=1, bytes_in=5 * 2**40, bytes_out=2),
            MonthlyTraffic(month="2026-01", user_id=2, bytes_in=7, bytes_out=3)])
        session.add(Sweep(tick=1, holder="h", started_at=NOW, finished_at=NOW))
        session.commit()
    families = scrape(DatabaseCollector("traffic", Session, families_of("traffic")))
    engine.dispose()
    traffic = families["berth_traffic_bytes"]  # the parser strips _total off a counter
    assert traffic.type == "counter"
    assert {dict(k)["direction"]: v for k, v in values(traffic).items()} == \
        {"in": 5 * 2**40 + 17, "out": 6}
    sweep = families["berth_traffic_last_sweep_finished_timestamp_seconds"]
    assert sweep.samples[0].value == NOW.timestamp()


def test_open_alerts_by_type_and_notification_backlogs(tmp_path):
    from services.alerts.models import Alert, MailMessage, WebhookDelivery
    engine, Session = database(tmp_path, "alerts")
    with Session() as session:
        for i, (alert_type, status) in enumerate([("server_health", "open"),
                                                  ("server_health", "resolved"),
                                                  ("traffic", "open")], start=1):
            session.add(Alert(id=i, alert_type=alert_type, condition="x", dedupe_key=f"k{i}",
                              subject_type="server", subject_id=i, message="m",
                              status=status))
        session.add_all([MailMessage(kind="k", subject="s", body="b", status=status)
                         for status in ("pending", "pending", "sent", "expanded")])
        session.add_all([WebhookDelivery(kind="alert_raised", payload="{}", status="pending")])
        session.commit()
    families = scrape(DatabaseCollector("alerts", Session, families_of("alerts")))
    engine.dispose()
    assert {dict(k)["alert_type"]: v for k, v in values(families["berth_alerts_open"]).items()} \
        == {"server_health": 1, "traffic": 1, "docker_traffic": 0, "docker_container": 0}
    assert families["berth_mail_outbox_backlog"].samples[0].value == 2
    assert families["berth_webhook_outbox_backlog"].samples[0].value == 1


def test_users_by_role_and_rentals_by_status(tmp_path):
    from services.billing.models import Rental
    from services.users.models import User
    engine, Session = database(tmp_path, "users")
    with Session() as session:
        session.add_all([User(username=f"u{i}", email=f"u{i}@x.org", password_hash="h",
                              role=role) for i, role in enumerate(["admin", "user", "user"])])
        session.commit()
    users = scrape(DatabaseCollector("users", Session, families_of("users")))
    engine.dispose()
    assert {dict(k)["role"]: v for k, v in values(users["berth_users"]).items()} == \
        {"admin": 1, "distributor": 0, "user": 2}
    engine, Session = database(tmp_path, "billing")
    with Session() as session:
        session.add_all([Rental(user_id=i, status=status, start_date=NOW.date(),
                                end_date=NOW.date()) for i, status in
                         enumerate(["active", "expired", "expired", "cancelled"])])
        session.commit()
    rentals = scrape(DatabaseCollector("billing", Session, families_of("billing")))
    engine.dispose()
    assert {dict(k)["status"]: v for k, v in values(rentals["berth_rentals"]).items()} == \
        {"active": 1, "expired": 2, "cancelled": 1}


def test_outbox_backlog_counts_unpublished_events_only(tmp_path):
    from services.users.models import OutboxEvent
    engine, Session = database(tmp_path, "users")
    with Session() as session:
        session.add_all([OutboxEvent(event_id=f"e{i}", event_type="t", payload="{}",
                                     published_at=published)
                         for i, published in enumerate([None, None, NOW])])
        session.commit()
    families = scrape(DatabaseCollector("users", Session, [outbox_backlog("users",
                                                                          OutboxEvent)]))
    engine.dispose()
    assert values(families["berth_outbox_backlog"]) == {
        frozenset({"service": "users"}.items()): 2}


def test_a_failing_family_is_left_out_counted_and_logged_and_the_rest_still_answers(
        tmp_path, caplog):
    engine, Session = database(tmp_path, "containers")

    def broken_family(session):
        session.execute(text("SELECT count(*) FROM no_such_table"))
        yield from ()

    before = metrics.COLLECT_ERRORS.labels("containers", "broken_family")._value.get()
    families = scrape(DatabaseCollector(
        "containers", Session, [broken_family, *families_of("containers")]))
    engine.dispose()
    assert "berth_servers" in families and "berth_containers" in families
    assert metrics.COLLECT_ERRORS.labels("containers", "broken_family")._value.get() == \
        before + 1
    assert "broken_family failed" in caplog.text


def test_an_unreachable_database_gives_an_empty_collection_not_an_error(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path}/missing/dir/x.sqlite3")
    families = scrape(DatabaseCollector("users", sessionmaker(bind=engine),
                                        families_of("users")))
    engine.dispose()
    assert "berth_users" not in families


# --- entrypoints and events ---------------------------------------------------------------

def finish(provider, entrypoint, exc_info=None):
    worker_ctx = mock.Mock(entrypoint=entrypoint)
    provider.worker_setup(worker_ctx)
    provider.worker_result(worker_ctx, None, exc_info)


def sample(counter, *labels) -> float:
    return counter.labels(*labels)._value.get()


def test_event_handlers_are_counted_by_event_type_and_outcome():
    from berth.errors import NotFound
    provider = EntrypointMetrics()
    provider.container = mock.Mock(service_name="unit-alerts")
    handler = mock.Mock(spec=EventHandler, method_name="on_user_thing",
                        source_service="users", event_type="user_thing")
    finish(provider, handler)
    finish(provider, handler, (RuntimeError, RuntimeError("x"), None))
    finish(provider, handler, (NotFound, NotFound("x"), None))
    events = metrics.EVENTS_HANDLED
    assert sample(events, "unit-alerts", "users", "user_thing", "ok") == 1
    assert sample(events, "unit-alerts", "users", "user_thing", "error") == 1
    assert sample(events, "unit-alerts", "users", "user_thing", "rejected") == 1
    calls = metrics.ENTRYPOINT_CALLS
    assert sample(calls, "unit-alerts", "on_user_thing", "event", "ok") == 1


@pytest.mark.parametrize("cls, kind", [(Rpc, "rpc"), (Timer, "timer")])
def test_other_entrypoints_have_a_plain_kind_and_no_event_count(cls, kind):
    provider = EntrypointMetrics()
    provider.container = mock.Mock(service_name=f"unit-{kind}")
    finish(provider, mock.Mock(spec=cls, method_name="work"))
    assert sample(metrics.ENTRYPOINT_CALLS, f"unit-{kind}", "work", kind, "ok") == 1
    assert not [s for f in metrics.EVENTS_HANDLED.collect() for s in f.samples
                if s.labels.get("service") == f"unit-{kind}"]


# --- the gateway ------------------------------------------------------------------------

def test_gateway_counts_and_times_requests_by_method_route_template_and_status():
    from gateway import metrics as gateway_metrics
    from gateway.app import create_app

    client = create_app().test_client()
    assert client.get("/api/security/user_acl_info/12345").status_code == 401  # an id
    assert client.get("/api/no/such/thing/98765").status_code == 404
    assert client.open("/api/login", method="BREW").status_code == 405
    text = generate_latest().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = [s.labels for s in families["berth_http_requests"].samples
                if s.name == "berth_http_requests_total"]
    buckets = [s.labels for s in families["berth_http_request_duration_seconds"].samples
               if s.name.endswith("_bucket")]
    template = "/api/security/user_acl_info/<int:user_id>"
    assert {"method": "GET", "route": template, "status": "401"} in requests
    assert {"method": "GET", "route": gateway_metrics.UNMATCHED, "status": "404"} in requests
    assert {"method": "other", "route": gateway_metrics.UNMATCHED, "status": "405"} in requests
    assert {"method": "GET", "route": template, "status": "401", "le": "+Inf"} in buckets
    label_values = {v for f in families.values() for s in f.samples for v in s.labels.values()}
    assert not [v for v in label_values if "12345" in v or "98765" in v or "BREW" in v]
