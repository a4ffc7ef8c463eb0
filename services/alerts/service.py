"""Alerts service: alert rules and alerts, notifications (mail, webhook), the audit log and
monitoring. Entrypoints only; the domain lives in alerting, audit, notifications, mail, webhook
and monitoring.

Every catalogued event has one handler here (``on_<event type>``, generated from
``berth.events.CATALOGUE``): in one transaction it records the event id (a redelivery changes
nothing), writes the audit row and applies the event's effect (a mail, an alert raised or
resolved, their notifications); then delivery of what it queued is tried at once, and retried
by timers. API calls reach the audit log through the ``alerts.audit`` queue the gateway
publishes to (``services.alerts.audit_wire``).
"""
from __future__ import annotations

import datetime as dt
import logging

import eventlet
from nameko.exceptions import MethodNotFound, RemoteError, UnknownService
from nameko.messaging import Consumer
from nameko.rpc import RpcProxy
from nameko.timer import Timer
from sqlalchemy import func, select, text
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

import berth
from berth.db import utcnow
from berth.errors import BadRequest, BerthError, ServiceUnavailable
from berth.events import CATALOGUE, Event, first_delivery, receive
from berth.lease import try_acquire
from berth.schemas import PageQuery
from berth.service import ServiceBase, call_with_timeout, event_handler, every, rpc
from berth.settings import get_settings
from berth.validation import parse
from services.alerts import (alerting, audit, digest, fleet_checks, mail, monitoring,
                             notifications, webhook)
from services.alerts.alerting import Subject
from services.alerts.audit_wire import AUDIT_QUEUE, WIRE_VERSION
from services.alerts.metrics import FAMILIES as METRIC_FAMILIES
from services.alerts.models import Alert, AlertRule, Lease, ProcessedEvent
from services.alerts.notifications import Pending
from services.alerts.schemas import (AddAlert, AlertsQuery, ContainerCheck, MonthCheck,
                                     SendReminder, ServerCheck, SystemLogQuery, UpdateLog,
                                     UserLogQuery)

log = logging.getLogger(__name__)

PROCESS_STARTED = utcnow()


class RetryingConsumer(Consumer):
    """A queue consumer that requeues a failed message after a pause (as event handlers do)."""

    def __init__(self, queue, **kwargs):
        kwargs.setdefault("requeue_on_error", True)
        super().__init__(queue, **kwargs)

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        if exc_info is not None:
            eventlet.sleep(1.0)
        return super().handle_result(message, worker_ctx, result, exc_info)


consume = RetryingConsumer.decorator


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


def _month(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m")


class NotOffered(ServiceUnavailable):
    """The peer runs but does not offer the method yet (an older version, mid-deploy)."""


def _not_offered(service: str, what: str):
    return NotOffered(f"The {service} service does not report {what} yet")


class AlertsService(ServiceBase):
    name = "alerts"
    metric_families = METRIC_FAMILIES  # gauges from this database, per scrape
    users_rpc = RpcProxy("users")
    containers_rpc = RpcProxy("containers")
    traffic_rpc = RpcProxy("traffic")
    billing_rpc = RpcProxy("billing")

    # --- events: audit row + effect, once per event id ------------------------------------
    # (the handlers themselves are generated below the class from the catalogue)

    def _on_event(self, event_cls: type[Event], payload) -> None:
        event = receive(event_cls, payload)
        if event is None:
            return
        now = utcnow()
        pending = Pending()
        with self.db() as session:
            if not first_delivery(session, ProcessedEvent, event):
                return
            audit.record_event(session, event, now)
            effect = getattr(self, f"_effect_{event.TYPE}", None)
            if effect is not None:
                effect(session, event, now, pending)
            session.commit()
        self._send(pending)

    # mail to users (rendered from billing and users events)

    def _effect_verification_email_requested(self, session, e, now, pending):
        subject, body = mail.render_verification(e.username, e.verification_url, e.expires_at)
        self._user_mail(session, e, "verification", subject, body, pending, to=e.email)

    def _effect_rental_started(self, session, e, now, pending):
        self._user_mail(session, e, "rental_started", *mail.render_rental_started(e.end_date),
                        pending)

    def _effect_rental_renewed(self, session, e, now, pending):
        self._user_mail(session, e, "rental_renewed",
                        *mail.render_rental_renewed(e.end_date, e.previous_end_date), pending)

    def _effect_rental_expired(self, session, e, now, pending):
        self._user_mail(session, e, "rental_expired", *mail.render_rental_expired(e.end_date),
                        pending)

    def _effect_rental_expiry_reminder_due(self, session, e, now, pending):
        self._user_mail(session, e, "rental_reminder",
                        *mail.render_expiry_reminder(e.end_date, e.days_left), pending)

    def _effect_rental_expiry_notice_requested(self, session, e, now, pending):
        self._user_mail(session, e, "expiry_notice", *mail.render_expiry_notice(e.expiry_date),
                        pending)

    def _user_mail(self, session, event, kind, subject, body, pending, to=None):
        message = mail.enqueue(session, kind, to, subject, body, event_id=event.event_id,
                               to_user_id=getattr(event, "user_id", None))
        pending.mail_ids.append(message.id)

    # alerts from containers and traffic events

    def _effect_server_went_down(self, session, e, now, pending):
        if e.maintenance:
            return  # planned: alerts about a server in maintenance are muted
        occurred = audit.parse_time(e.occurred_at) or now
        if fleet_checks.outage_over(session, e.server_id, occurred):
            return  # it came back, was removed or went into maintenance after this
        last_seen = audit.parse_time(e.last_seen_at)
        down_for = (occurred - last_seen).total_seconds() if last_seen else 0.0
        subject = Subject("server", e.server_id, e.server_name)
        firing, _ = alerting.evaluate_server(subject, True, e.ip_address, down_for,
                                             alerting.rules_of(session, "server_health"),
                                             e.reason)
        self._apply(session, subject, firing, [], now, pending)

    def _effect_server_came_back(self, session, e, now, pending):
        self._resolve(session, Subject("server", e.server_id, e.server_name),
                      alerting.SERVER_DOWN, now, "the server answers again", pending,
                      before=audit.parse_time(e.occurred_at))

    def _effect_container_died(self, session, e, now, pending):
        if e.maintenance:
            return  # its server is in maintenance: muted
        occurred = audit.parse_time(e.occurred_at) or now
        if audit.happened_since(session, ("container_recovered", "container_removed"),
                                "container", e.container_id, occurred):
            return
        # an open alert for it (a crash loop's earlier death) only counts this occurrence
        subject = Subject("container", e.container_id, e.container_name, e.user_id)
        firing, _ = alerting.evaluate_container(subject, e.status, "running",
                                                alerting.rules_of(session, "docker_container"),
                                                server_id=e.server_id)
        self._apply(session, subject, firing, [], now, pending)

    def _effect_server_updated(self, session, e, now, pending):
        if not e.maintenance:
            return
        server = Subject("server", e.server_id, e.server_name)
        self._resolve(session, server, None, now, fleet_checks.MAINTENANCE, pending,
                      before=audit.parse_time(e.occurred_at))
        on_it = [a for a in alerting.open_alerts(session, condition=alerting.CONTAINER_DOWN)
                 if (a.details or {}).get("server_id") == e.server_id]
        outcome = alerting.Outcome(resolved=alerting.resolve(session, on_it, now,
                                                             fleet_checks.MAINTENANCE))
        notifications.outcome_changed(session, outcome, self._hook(), now, pending)

    def _effect_server_removed(self, session, e, now, pending):
        self._resolve(session, Subject("server", e.server_id, e.server_name), None, now,
                      "the server was removed", pending)

    def _effect_container_recovered(self, session, e, now, pending):
        self._resolve(session, Subject("container", e.container_id, e.container_name),
                      alerting.CONTAINER_DOWN, now, "the container runs again", pending,
                      before=audit.parse_time(e.occurred_at))

    def _effect_container_stopped(self, session, e, now, pending):
        self._resolve(session, Subject("container", e.container_id, e.container_name),
                      alerting.CONTAINER_DOWN, now, f"the container was stopped ({e.reason})",
                      pending, before=audit.parse_time(e.occurred_at))

    def _effect_container_started(self, session, e, now, pending):
        self._resolve(session, Subject("container", e.container_id, e.container_name),
                      alerting.CONTAINER_DOWN, now, "the container was started", pending,
                      before=audit.parse_time(e.occurred_at))

    def _effect_container_removed(self, session, e, now, pending):
        self._resolve(session, Subject("container", e.container_id, e.container_name),
                      None, now, "the container was removed", pending)

    def _effect_traffic_quota_exceeded(self, session, e, now, pending):
        subject = Subject("user", e.user_id, f"user {e.user_id}", e.user_id)
        firing, _ = alerting.evaluate_user_traffic(subject, e.month, e.used_bytes,
                                                   e.limit_bytes,
                                                   alerting.rules_of(session, "traffic"))
        self._apply(session, subject, firing, [], now, pending)
        self._user_mail(session, e, "traffic_quota",
                        *notifications.render_quota(e.month, e.used_bytes, e.limit_bytes),
                        pending)

    def _apply(self, session, subject, firing, examined, now, pending, observed_at=None):
        return fleet_checks.apply(session, subject, firing, examined, now, self._hook(),
                                  pending, observed_at)

    def _resolve(self, session, subject, condition, now, resolution, pending, before=None):
        # events carry whole seconds: an alert raised within the event's second is older
        cutoff = before + dt.timedelta(seconds=1) if before is not None else None
        fleet_checks.resolve_subject(session, subject, condition, now, resolution,
                                     self._hook(), pending, cutoff)

    # --- API-call audit records from the gateway -----------------------------------------

    @consume(AUDIT_QUEUE)
    def record_api_calls(self, message):
        """A batch ``{"v": 1, "records": [...]}`` (or one record) from the gateway: one
        transaction, one row per request id."""
        version = message.get("v") if isinstance(message, dict) else None
        records = message.get("records") if version is not None and "records" in message \
            else [message]
        if not isinstance(records, list):
            records = [records]
        good = [r for r in records if isinstance(r, dict) and r.get("request_id")
                and version == WIRE_VERSION]
        if len(good) != len(records):
            log.error("dropping %d malformed audit record(s): %.200r",
                      len(records) - len(good), message)
        if not good:
            return
        try:
            with self.db() as session:
                now = utcnow()
                for record in good:
                    audit.record_api_call(session, record, now)
                session.commit()
        except (OperationalError, InterfaceError, DisconnectionError):
            raise  # the database is away: requeued, retried
        except Exception:  # noqa: BLE001 - a record no retry can store: do not spin on it
            log.exception("dropping audit records that cannot be stored: %.200r", message)

    # --- alert rules and alerts -----------------------------------------------------------

    @rpc
    def add_alert(self, actor: dict, data: dict) -> dict:
        body = parse(AddAlert, data, "Invalid alert data")
        with self.db() as session:
            rule = alerting.add_rule(session, body.alert_type, body.threshold, body.message,
                                     actor.get("user_id"), utcnow())
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
                                          self._hook(), now, pending)
            session.commit()
        self._send(pending)
        return {"message": "Alert deleted successfully", "alert_id": alert_id,
                "deleted": done["deleted"], "alerts_resolved": len(done["resolved"])}

    # --- checks on demand -------------------------------------------------------------------

    @rpc
    def check_server_health(self, data: dict) -> dict:
        body = parse(ServerCheck, data, "Invalid data")
        observed_at = utcnow()
        info = self._ask(self.containers_rpc.server_health, body.server_id,
                         service="containers", what="server health")
        now = utcnow()
        # online/offline/maintenance ("server_status" where "status" says healthy/unhealthy)
        state = info.get("server_status") or info.get("status")
        # down since Berth first saw it down (else since it was added): never "forever"
        down_for = fleet_checks.seconds_down(now, info.get("down_since"),
                                             info.get("last_seen_at"), info.get("added_at"))
        subject = Subject("server", body.server_id, info.get("server_name"))
        pending = Pending()
        with self.db() as session:
            if info.get("maintenance") or state == "maintenance":
                outcome = fleet_checks.resolve_subject(session, subject, None, now,
                                                       fleet_checks.MAINTENANCE, self._hook(),
                                                       pending)
            else:
                firing, keys = alerting.evaluate_server(
                    subject, state in ("offline", "unhealthy"), info.get("ip_address") or "?",
                    down_for, alerting.rules_of(session, "server_health"),
                    info.get("last_error"))
                outcome = self._apply(session, subject, firing, keys, now, pending,
                                      observed_at)
            session.commit()
        self._send(pending)
        return self._checked("Server health status alert checked successfully", outcome,
                             server_status=state)

    @rpc
    def check_container(self, data: dict) -> dict:
        body = parse(ContainerCheck, data, "Invalid data")
        observed_at = utcnow()
        info = self._container_info(body.container_id)
        now = utcnow()
        subject = Subject("container", body.container_id, info.get("container_name"),
                          info.get("user_id"))
        pending = Pending()
        with self.db() as session:
            outcome = fleet_checks.check_container(session, subject, info, now, observed_at,
                                                   self._hook(), pending)
            session.commit()
        self._send(pending)
        return self._checked("Docker container status alert checked successfully", outcome,
                             container_status=info["status"],
                             desired_state=info["desired_state"])

    @rpc
    def check_container_traffic(self, data: dict) -> dict:
        body = parse(ContainerCheck, data, "Invalid data")
        observed_at = utcnow()
        info = self._container_info(body.container_id)
        usage = self._ask(self.traffic_rpc.container_usage, body.container_id,
                          service="traffic", what="container traffic")
        now = utcnow()
        month = usage.get("month") or _month(now)
        subject = Subject("container", body.container_id, info.get("container_name"),
                          info.get("user_id"))
        pending = Pending()
        with self.db() as session:
            rules = alerting.rules_of(session, "docker_traffic")
            firing, keys = alerting.evaluate_container_traffic(subject, month,
                                                               int(usage["total"]), rules)
            outcome = self._apply(session, subject, firing, keys, now, pending, observed_at)
            session.commit()
        self._send(pending)
        return self._checked("Docker container traffic health checked successfully", outcome,
                             month=month, total_bytes=int(usage["total"]), rules=len(rules))

    @rpc
    def check_traffic(self, data: dict) -> dict:
        """Users over their quota and users at or over a traffic rule's threshold (whatever
        their quota) in ``month``: alerts raised, and quota alerts of users back under it
        resolved."""
        body = parse(MonthCheck, data, "Invalid data")
        observed_at = utcnow()
        with self.db() as session:
            thresholds = [r.threshold for r in alerting.rules_of(session, "traffic")]
        report = self._ask(self.traffic_rpc.overlimit_users, service="traffic",
                           what="users over their quota")
        over = {}
        if thresholds:
            try:
                over = self._ask(self.traffic_rpc.users_over, min(thresholds), body.month,
                                 service="traffic", what="users over a traffic threshold")
            except NotOffered:  # an older traffic service (rolling deploy): quota rows only
                log.warning("traffic has no users_over yet: traffic rules judged on the "
                            "users over their quota only")
        now = utcnow()
        quota_rows = [r for r in report.get("overlimit_users", []) if r.get("month") == body.month]
        covered = body.month == _month(now) or bool(quota_rows)
        pending = Pending()
        with self.db() as session:
            total = fleet_checks.traffic_month(session, body.month, quota_rows,
                                               over.get("users", []), covered, now,
                                               observed_at, self._hook(), pending)
            session.commit()
        self._send(pending)
        return self._checked("Monthly traffic alert checked successfully", total,
                             month=body.month, overlimit_users=len(quota_rows),
                             month_reported=covered)

    def _checked(self, message: str, outcome, **extra) -> dict:
        return {"message": message, "alerts_raised": len(outcome.raised),
                "alerts_open": len(outcome.raised) + len(outcome.repeated),
                "alerts_resolved": len(outcome.resolved),
                "alerts": [alerting.to_dict(a) for a in outcome.raised + outcome.repeated],
                **extra}

    def _container_info(self, container_id: int) -> dict:
        return self._ask(self.containers_rpc.container_info, container_id,
                         service="containers", what="container status")

    def _ask(self, method, *args, service: str, what: str, timeout: float | None = None):
        """An RPC to a peer: its domain errors (404) pass through; a peer that is down or
        does not offer the method yet is a 503, never a 500 or a made-up answer."""
        try:
            return call_with_timeout(method, *args, timeout=timeout)
        except BerthError:
            raise
        except MethodNotFound:
            raise _not_offered(service, what) from None
        except UnknownService:
            raise ServiceUnavailable(f"The {service} service is not running") from None
        except RemoteError as exc:
            if exc.exc_type == "MethodNotFound":
                raise _not_offered(service, what) from None
            log.error("%s failed remotely: %s", service, exc)
            raise ServiceUnavailable(f"The {service} service failed to answer") from None

    # --- periodic fleet sweep ---------------------------------------------------------------

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
        with self.db() as session:
            watched = bool(alerting.rules_of(session, "traffic"))
        if watched:  # traffic rules fire without anyone calling the check route
            try:
                self.check_traffic({"month": _month(utcnow())})
            except BerthError as exc:
                log.info("traffic rules not checked: %s", exc)

    @rpc
    def evaluate_fleet(self) -> dict:
        observed_at = utcnow()
        fleet = self._ask(self.containers_rpc.fleet_summary, service="containers",
                          what="the fleet summary")
        now = utcnow()
        pending = Pending()
        with self.db() as session:
            total = fleet_checks.sweep(session, fleet, now, observed_at, self._hook(), pending)
            session.commit()
        self._send(pending)
        return {"alerts_raised": len(total.raised), "alerts_resolved": len(total.resolved)}

    # --- notifications ----------------------------------------------------------------------

    @rpc
    def send_reminder(self, data: dict) -> dict:
        body = parse(SendReminder, data, "Invalid notification data")
        today = utcnow().date()
        if body.reminder_date < today:
            raise BadRequest("Invalid notification data", [
                {"field": "reminder_date", "message": "the date is in the past"}])
        self._ask(self.users_rpc.contact, body.user_id, service="users", what="users")
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
            self._send(_only_mail([message_id]))
        return {"message": "Reminder notification sent successfully",
                "notification_id": message_id, "user_id": body.user_id,
                "scheduled_for": send_at.isoformat().replace("+00:00", "Z") if send_at
                else None}

    @every("mail_retry_interval")
    def retry_mail(self):
        self._deliver_mail()

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
            self._send(_only_mail([mail_id]))
        return {"mail_id": mail_id}

    @every("webhook_retry_interval")
    def retry_webhooks(self):
        self._deliver_webhooks()

    def _hook(self) -> webhook.WebhookConfig:
        return webhook.WebhookConfig.from_settings(get_settings())

    def _send(self, pending: Pending) -> None:
        if pending.mail_ids:
            if get_settings().smtp_host:
                self._deliver_mail(pending.mail_ids)
            else:
                with self.db() as session:
                    for message_id in pending.mail_ids:
                        message = session.get(mail.MailMessage, message_id)
                        log.info("no BERTH_SMTP_HOST: mail %s kept in the outbox, not sent\n"
                                 "To: %s\nSubject: %s\n\n%s", message_id,
                                 message.to_address or (f"user {message.to_user_id}"
                                                        if message.to_user_id else
                                                        f"every {message.to_role}"),
                                 message.subject, message.body)
        if pending.webhook_ids:
            self._deliver_webhooks(pending.webhook_ids)

    def _resolve_user(self, user_id: int) -> str:
        return call_with_timeout(self.users_rpc.contact, user_id)["email"]

    def _resolve_role(self, role: str) -> list[str]:
        if role != "admin":
            raise ValueError(f"no address list for role {role!r}")
        return [c["email"] for c in call_with_timeout(self.users_rpc.admin_contacts)["contacts"]]

    def _deliver_mail(self, ids=None):
        settings = get_settings()
        mail.deliver(self.db, mail.SmtpConfig.from_settings(settings), utcnow,
                     settings.mail_retry_interval, settings.mail_max_backoff, ids=ids,
                     resolve=self._resolve_user, resolve_role=self._resolve_role)

    def _deliver_webhooks(self, ids=None):
        settings = get_settings()
        webhook.deliver(self.db, webhook.WebhookConfig.from_settings(settings), utcnow,
                        settings.webhook_retry_interval, settings.webhook_max_backoff, ids=ids)

    # --- logs -------------------------------------------------------------------------------

    @rpc
    def system_logs(self, query: dict) -> dict:
        q = parse(SystemLogQuery, query, "Invalid query")
        with self.db() as session:
            rows, total = audit.query(session, q.limit, q.offset, involving_user=q.user_id,
                                      action=q.action, source=q.source,
                                      subject_type=q.subject_type, subject_id=q.subject_id,
                                      since=q.since, until=q.until)
            return {"logs": [audit.to_dict(r) for r in rows], "total": total,
                    "limit": q.limit, "offset": q.offset}

    @rpc
    def user_logs(self, query: dict) -> dict:
        q = parse(UserLogQuery, query, "Invalid query")
        if q.start >= q.end:
            raise BadRequest("Invalid query", [{"field": "end",
                                                "message": "end must be after start"}])
        with self.db() as session:
            rows, total = audit.query(session, q.limit, q.offset, involving_user=q.user_id,
                                      since=q.start, until=q.end)
            return {"user_id": q.user_id, "logs": [audit.to_dict(r) for r in rows],
                    "total": total, "limit": q.limit, "offset": q.offset}

    @rpc
    def update_log(self, actor: dict, log_id: int, data: dict) -> dict:
        body = parse(UpdateLog, data, "Invalid log data")
        with self.db() as session:
            row = audit.edit(session, log_id, body.message, actor.get("user_id"), utcnow())
            session.commit()
            return {"message": "Log updated successfully", "log": audit.to_dict(row)}

    @rpc
    def delete_log(self, log_id: int) -> dict:
        with self.db() as session:
            session.delete(audit.get(session, log_id))
            session.commit()
        return {"message": "Log deleted successfully", "log_id": log_id}

    @every("audit_retention_interval")
    def prune_audit_log(self):
        """Delete audit rows (and handled alert notices) past BERTH_AUDIT_RETENTION_DAYS, in
        batches, in one replica."""
        if not try_acquire(self.db, Lease, "alerts-audit-retention",
                           get_settings().audit_retention_interval * 0.8):
            return
        self.prune_audit_log_now()

    @rpc
    def prune_audit_log_now(self) -> dict:
        """Audit retention now, outside the timer (operators, tests); handled alert notices
        (the digest's bookkeeping) go after the same time."""
        days = get_settings().audit_retention_days
        removed = audit.prune(self.db, utcnow(), days)
        notices = digest.prune(self.db, utcnow(), days)
        if removed or notices:
            log.info("audit retention: removed %d row(s) and %d alert notice(s) older than "
                     "%g days", removed, notices, days)
        return {"removed": removed, "notices_removed": notices, "retention_days": days}

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
                return self._ask(self.containers_rpc.fleet_summary, service="containers",
                                 what="the fleet summary", timeout=timeout), None
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


def _only_mail(ids: list[int]) -> Pending:
    pending = Pending()
    pending.mail_ids.extend(ids)
    return pending


def _event_entrypoint(event_cls: type[Event]):
    def handle(self, payload):
        self._on_event(event_cls, payload)
    handle.__name__ = handle.__qualname__ = f"on_{event_cls.TYPE}"
    handle.__doc__ = f"Audit {event_cls.TYPE} and apply its effect (once per event id)."
    return event_handler(event_cls.SOURCE, event_cls.TYPE)(handle)


# one handler per catalogued event; the names (and so the queues) of the mail handlers that
# existed before are kept: on_<event type>
for _event_cls in CATALOGUE.values():
    setattr(AlertsService, f"on_{_event_cls.TYPE}", _event_entrypoint(_event_cls))
del _event_cls
