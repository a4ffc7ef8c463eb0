"""Alerts service: alert rules and alerts, notifications (mail, webhook), the audit log and
monitoring. Entrypoints only (the audit log's are in audit_entrypoints); the domain lives in
reactions (what each event does), checks (the checks and the fleet sweep, behind ``Peers``),
delivery (mail and webhook sending), alerting, audit, digest and monitoring.

Every catalogued event has one handler here (``on_<event type>``, the queue names of the
handlers that existed before): in one transaction (``berth.events.handle_once``) the event id
is recorded (a redelivery changes nothing) and ``reactions.apply_event`` writes the audit row
and applies the event's effect; then
delivery of what it queued is tried at once, and retried by timers. API calls reach the audit
log through the ``alerts.audit`` queue the gateway publishes to
(``services.alerts.audit_wire``).
"""
from __future__ import annotations

import datetime as dt
import logging

import eventlet
from nameko.events import EventDispatcher
from nameko.exceptions import UnknownService
from nameko.rpc import RpcProxy
from nameko.timer import Timer
from sqlalchemy import func, select, text

import berth
from berth import events
from berth.actor import Actor
from berth.db import isoformat, utcnow
from berth.errors import BadRequest, BerthError, ServiceUnavailable
from berth.events import Event
from berth.lease import try_acquire
from berth.schemas import PageQuery
from berth.service import ServiceBase, ask, call_with_timeout, event_handler, every, rpc
from berth.settings import get_settings
from berth.validation import parse
from services.alerts import alerting, digest, mail, monitoring, notifications, webhook
from services.alerts.audit_entrypoints import AuditLogEntrypoints
from services.alerts.checks import Checked, Checks, month_of
from services.alerts.delivery import Delivery, only_mail
from services.alerts.metrics import FAMILIES as METRIC_FAMILIES
from services.alerts.models import Alert, AlertRule, Lease, ProcessedEvent
from services.alerts.notifications import Pending
from services.alerts.reactions import apply_event
from services.alerts.schemas import (AddAlert, AlertsQuery, ContainerCheck, MonthCheck,
                                     SendReminder, ServerCheck)

log = logging.getLogger(__name__)

PROCESS_STARTED = utcnow()


class DigestTimer(Timer):
    """Ticks often enough that an alert digest waits about BERTH_ALERT_DIGEST_SECONDS (a
    quarter of it, between 0.2 and 5 s). Read from the settings only, as ``flush`` reads the
    delay: a nameko config key cannot make the timer and the digest disagree."""

    def __init__(self, **kwargs):
        super().__init__(interval=None, **kwargs)

    def start(self):
        self.interval = tick_for(get_settings().alert_digest_seconds)
        super().start()


def tick_for(delay: float) -> float:
    return min(max(delay / 4, 0.2), 5.0)


every_digest_tick = DigestTimer.decorator


class RpcPeers:
    """``checks.Peers`` and ``delivery.Contacts`` over the worker's RPC proxies."""

    def __init__(self, service: AlertsService):
        self.containers = service.containers_rpc
        self.traffic = service.traffic_rpc
        self.users = service.users_rpc

    def server_health(self, server_id: int) -> dict:
        return ask(self.containers.server_health, server_id, service="containers",
                   what="server health")

    def container_info(self, container_id: int) -> dict:
        return ask(self.containers.container_info, container_id, service="containers",
                   what="container status")

    def fleet_summary(self, timeout: float | None = None) -> dict:
        return ask(self.containers.fleet_summary, service="containers",
                   what="the fleet summary", timeout=timeout)

    def container_usage(self, container_id: int) -> dict:
        return ask(self.traffic.container_usage, container_id, service="traffic",
                   what="container traffic")

    def overlimit_users(self, month: str) -> dict:
        # this month's report is asked the way every traffic version answers it
        args = () if month == month_of(utcnow()) else (month,)
        return ask(self.traffic.overlimit_users, *args, service="traffic",
                   what="users over their quota")

    def users_over(self, threshold: int, month: str) -> dict:
        return ask(self.traffic.users_over, threshold, month, service="traffic",
                   what="users over a traffic threshold")

    def email_of(self, user_id: int) -> str:
        return call_with_timeout(self.users.contact, user_id)["email"]

    def admin_emails(self) -> list[str]:
        return [c["email"] for c in call_with_timeout(self.users.admin_contacts)["contacts"]]


def handles(event_cls: type[Event]):
    """The handler of one catalogued event: ``on_<event type> = handles(EventClass)`` in the
    class body (the queue name comes from the attribute name, kept as it always was)."""
    def handle(self, payload):
        self._apply(event_cls, payload)
    handle.__name__ = handle.__qualname__ = f"on_{event_cls.TYPE}"
    handle.__doc__ = f"Audit {event_cls.TYPE} and apply its effect (once per event id)."
    return event_handler(event_cls.SOURCE, event_cls.TYPE)(handle)


class AlertsService(AuditLogEntrypoints, ServiceBase):
    name = "alerts"
    metric_families = METRIC_FAMILIES  # gauges from this database, per scrape
    users_rpc = RpcProxy("users")
    containers_rpc = RpcProxy("containers")
    traffic_rpc = RpcProxy("traffic")
    billing_rpc = RpcProxy("billing")
    processed_events = ProcessedEvent
    # live notices for the gateway's streams (alert_raised / alert_resolved on alerts.events):
    # not catalogued events (no outbox, not mandatory): when no gateway listens, or the broker
    # is away, they are dropped at once; the console refetches on its next (re)connection
    dispatch_live = EventDispatcher(retry_policy={"max_retries": 1, "interval_start": 0,
                                                  "interval_step": 0, "interval_max": 0})

    @property
    def _checks(self) -> Checks:
        return Checks(self.db, RpcPeers(self))

    @property
    def _delivery(self) -> Delivery:
        return Delivery(self.db, RpcPeers(self))

    def _send(self, pending: Pending) -> None:
        self._announce(pending.notices)
        self._delivery.send(pending)

    def _announce(self, notices: list[tuple[str, dict]]) -> None:
        """Alerts raised or resolved by the transaction that just committed, to the gateway's
        live streams (best effort)."""
        for kind, alert in notices:
            try:
                self.dispatch_live(kind, {**alert, "occurred_at": isoformat(utcnow())})
            except Exception as exc:  # noqa: BLE001 - a live notice is never worth a failure
                log.info("live notice %s for alert %s not sent: %s", kind,
                         alert.get("alert_id"), exc)

    # --- events: audit row + effect, once per event id (services.alerts.reactions) ---------

    def _apply(self, event_cls: type[Event], payload) -> None:
        """The body of every ``on_<event type>`` handler below."""
        hook = webhook.WebhookConfig.current()
        pending = self.handle_once(event_cls, payload,
                                   lambda session, event: apply_event(session, event, utcnow(),
                                                                      hook))
        if pending is not None:  # None: malformed, or handled before
            self._send(pending)

    on_verification_email_requested = handles(events.VerificationEmailRequested)
    on_password_reset_requested = handles(events.PasswordResetRequested)
    on_two_factor_locked = handles(events.TwoFactorLocked)
    on_distributor_code_redeemed = handles(events.DistributorCodeRedeemed)
    on_rental_started = handles(events.RentalStarted)
    on_rental_renewed = handles(events.RentalRenewed)
    on_rental_expired = handles(events.RentalExpired)
    on_rental_expiry_reminder_due = handles(events.RentalExpiryReminderDue)
    on_rental_expiry_notice_requested = handles(events.RentalExpiryNoticeRequested)
    on_rental_suspended = handles(events.RentalSuspended)
    on_rental_resumed = handles(events.RentalResumed)
    on_rental_plan_changed = handles(events.RentalPlanChanged)
    on_allotment_changed = handles(events.AllotmentChanged)
    on_server_went_down = handles(events.ServerWentDown)
    on_server_came_back = handles(events.ServerCameBack)
    on_server_updated = handles(events.ServerUpdated)
    on_server_removed = handles(events.ServerRemoved)
    on_container_created = handles(events.ContainerCreated)
    on_container_removed = handles(events.ContainerRemoved)
    on_container_stopped = handles(events.ContainerStopped)
    on_container_started = handles(events.ContainerStarted)
    on_container_died = handles(events.ContainerDied)
    on_container_recovered = handles(events.ContainerRecovered)
    on_container_moved = handles(events.ContainerMoved)
    on_traffic_quota_exceeded = handles(events.TrafficQuotaExceeded)
    on_traffic_quota_cleared = handles(events.TrafficQuotaCleared)

    # --- alert rules and alerts -----------------------------------------------------------

    @rpc
    def add_alert(self, actor: dict, data: dict) -> dict:
        body = parse(AddAlert, data, "Invalid alert data")
        author = Actor.of(actor)
        with self.db() as session:
            rule = alerting.add_rule(session, body.alert_type, body.threshold, body.message,
                                     author.user_id, utcnow())
            session.commit()
            return {"message": "Alert added successfully", "alert_id": rule.id,
                    "rule_id": rule.id, "alert_type": rule.alert_type,
                    "threshold": rule.threshold}

    @rpc
    def list_rules(self) -> dict:
        with self.db() as session:
            rules = session.scalars(select(AlertRule).order_by(AlertRule.id))
            return {"rules": [alerting.rule_to_dict(r) for r in rules]}

    @rpc
    def realtime_alerts(self, query: dict | None = None) -> dict:
        page = parse(PageQuery, {"limit": 200, **(query or {})}, "Invalid query")
        with self.db() as session:
            return alerting.listing(session, page.limit, page.offset, status="open")

    @rpc
    def list_alerts(self, query: dict) -> dict:
        page = parse(AlertsQuery, query, "Invalid query")
        with self.db() as session:
            return alerting.listing(session, page.limit, page.offset, status=page.status)

    @rpc
    def delete_alert(self, alert_id: int) -> dict:
        pending = Pending()
        now = utcnow()
        with self.db() as session:
            done = alerting.delete(session, alert_id, now)
            notifications.outcome_changed(session, alerting.Outcome(resolved=done["resolved"]),
                                          webhook.WebhookConfig.current(), now, pending)
            session.commit()
        self._send(pending)
        return {"message": "Alert deleted successfully", "alert_id": alert_id,
                "deleted": done["deleted"], "alerts_resolved": len(done["resolved"])}

    # --- checks on demand, and the periodic fleet sweep (services.alerts.checks) -------------

    def _reply(self, message: str, checked: Checked) -> dict:
        self._send(checked.pending)
        outcome = checked.outcome
        return {"message": message, "alerts_raised": len(outcome.raised),
                "alerts_open": len(outcome.raised) + len(outcome.repeated),
                "alerts_resolved": len(outcome.resolved),
                "alerts": [alerting.to_dict(a) for a in outcome.raised + outcome.repeated],
                **checked.facts}

    @rpc
    def check_server_health(self, data: dict) -> dict:
        body = parse(ServerCheck, data, "Invalid data")
        return self._reply("Server health status alert checked successfully",
                           self._checks.server_health(body.server_id))

    @rpc
    def check_container(self, data: dict) -> dict:
        body = parse(ContainerCheck, data, "Invalid data")
        return self._reply("Docker container status alert checked successfully",
                           self._checks.container(body.container_id))

    @rpc
    def check_container_traffic(self, data: dict) -> dict:
        body = parse(ContainerCheck, data, "Invalid data")
        return self._reply("Docker container traffic health checked successfully",
                           self._checks.container_traffic(body.container_id))

    @rpc
    def check_traffic(self, data: dict) -> dict:
        """Users over their quota and users at or over a traffic rule's threshold (whatever
        their quota) in ``month``: alerts raised, and quota alerts of users back under it
        resolved."""
        body = parse(MonthCheck, data, "Invalid data")
        return self._reply("Monthly traffic alert checked successfully",
                           self._checks.traffic(body.month))

    @every("alert_check_interval")
    def sweep_fleet(self):
        """Raise and resolve server and container alerts from the fleet summary, and the
        alerts of traffic rules (if any), in one replica per tick (gives server_health and
        traffic thresholds their meaning)."""
        if not try_acquire(self.db, Lease, "alerts-fleet-sweep",
                           get_settings().alert_check_interval):
            return
        try:
            self.evaluate_fleet()
        except BerthError as exc:
            log.info("fleet sweep skipped: %s", exc)
        if self._checks.traffic_watched():  # traffic rules fire without anyone calling
            try:
                self.check_traffic({"month": month_of(utcnow())})
            except BerthError as exc:
                log.info("traffic rules not checked: %s", exc)

    @rpc
    def evaluate_fleet(self) -> dict:
        checked = self._checks.fleet()
        self._send(checked.pending)
        return {"alerts_raised": len(checked.outcome.raised),
                "alerts_resolved": len(checked.outcome.resolved)}

    # --- notifications (services.alerts.delivery) ---------------------------------------------

    @rpc
    def send_reminder(self, data: dict) -> dict:
        body = parse(SendReminder, data, "Invalid notification data")
        today = utcnow().date()
        if body.reminder_date < today:
            raise BadRequest("Invalid notification data", [
                {"field": "reminder_date", "message": "the date is in the past"}])
        ask(self.users_rpc.contact, body.user_id, service="users", what="users")
        send_at = None if body.reminder_date == today else dt.datetime.combine(
            body.reminder_date, dt.time(), tzinfo=dt.timezone.utc)
        subject, text_body = notifications.render_reminder(body.message,
                                                           body.reminder_date.isoformat())
        with self.db() as session:
            message = mail.enqueue(session, "reminder", None, subject, text_body,
                                   to_user_id=body.user_id, send_at=send_at)
            session.commit()
            message_id = message.id
        if send_at is None:
            self._send(only_mail([message_id]))
        return {"message": "Reminder notification sent successfully",
                "notification_id": message_id, "user_id": body.user_id,
                "scheduled_for": send_at.isoformat().replace("+00:00", "Z") if send_at
                else None}

    @every("mail_retry_interval")
    def retry_mail(self):
        self._delivery.mail()

    @every_digest_tick
    def mail_alert_digests(self):
        """Alerts raised and resolved go out as one digest mail per batch (one replica)."""
        self.flush_alert_digest()

    @rpc
    def flush_alert_digest(self) -> dict:
        """Mail the alert digest if one is due (services.alerts.digest)."""
        settings = get_settings()
        if not try_acquire(self.db, Lease, "alerts-digest", 30.0):
            return {"mail_id": None}
        with self.db() as session:
            mail_id = digest.flush(session, utcnow(), settings.alert_digest_seconds,
                                   settings.alert_mail_window_seconds)
        if mail_id is not None:
            self._send(only_mail([mail_id]))
        return {"mail_id": mail_id}

    @every("webhook_retry_interval")
    def retry_webhooks(self):
        self._delivery.webhooks()

    # --- monitoring -------------------------------------------------------------------------

    @rpc
    def monitoring(self) -> dict:
        timeout = get_settings().health_timeout
        proxies = {"users": self.users_rpc, "containers": self.containers_rpc,
                   "traffic": self.traffic_rpc, "billing": self.billing_rpc}

        def probe(name: str) -> str:
            try:
                if name == self.name:
                    with self.db() as session:
                        session.execute(text("SELECT 1"))
                else:
                    call_with_timeout(proxies[name].health, timeout=timeout)
                return "ok"
            except ServiceUnavailable:
                return f"no answer within {timeout:g} s"
            except UnknownService:
                return "not running"
            except Exception as exc:  # noqa: BLE001 - any failure means "down"
                log.warning("monitoring: %s health failed: %s", name, exc)
                return "error"

        def fleet():
            try:
                return RpcPeers(self).fleet_summary(timeout=timeout), None
            except BerthError as exc:
                return None, exc.message
            except Exception as exc:  # noqa: BLE001
                log.warning("monitoring: fleet summary failed: %s", exc)
                return None, "the containers service failed to answer"

        pool = eventlet.GreenPool(len(berth.SERVICES) + 1)
        fleet_thread = pool.spawn(fleet)
        states = dict(zip(berth.SERVICES, pool.imap(probe, berth.SERVICES)))
        summary, fleet_error = fleet_thread.wait()
        with self.db() as session:
            open_count = session.scalar(select(func.count()).select_from(Alert)
                                        .where(Alert.status == "open"))
        return monitoring.assess(states, summary, fleet_error, utcnow(), PROCESS_STARTED,
                                 open_count)
