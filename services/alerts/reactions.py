"""What the alerts service does with each event: ``REACTIONS`` maps every catalogued event
class to its effect, as a message bus maps events to handlers. ``apply_event`` runs it in the
caller's transaction (the service runs it through ``berth.events.handle_once``, which records
the event id in the same transaction, so a redelivery changes nothing): it writes the audit row
and applies the effect (a mail, an alert raised or resolved, their notifications), and returns
what it queued for delivery after the commit.

The table names functions, not strings: a misspelt effect is a NameError at import, and an
event missing from the table (or one the catalogue does not know) is an error at import too.
No nameko here.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from berth.events import (CATALOGUE, AllotmentChanged, ContainerCreated, ContainerDied,
                          ContainerMoved, ContainerRecovered, ContainerRemoved, ContainerStarted,
                          ContainerStopped, DistributorCodeRedeemed, Event,
                          PasswordResetRequested, RentalExpired,
                          RentalExpiryNoticeRequested, RentalExpiryReminderDue,
                          RentalPlanChanged, RentalRenewed, RentalResumed, RentalStarted,
                          RentalSuspended, ServerCameBack, ServerRemoved, ServerUpdated,
                          ServerWentDown, TrafficQuotaCleared, TrafficQuotaExceeded,
                          TwoFactorLocked, VerificationEmailRequested)
from services.alerts import alerting, audit, fleet_checks, mail, notifications, ordering
from services.alerts.alerting import Subject
from services.alerts.notifications import Pending
from services.alerts.webhook import WebhookConfig


@dataclass
class Applying:
    """What an effect works with besides the session and the event."""
    now: dt.datetime
    hook: WebhookConfig
    pending: Pending = field(default_factory=Pending)


Effect = Callable[[Session, Event, Applying], None]


def apply_event(session: Session, event: Event, now: dt.datetime,
                hook: WebhookConfig) -> Pending:
    """Audit ``event`` and apply its effect in the caller's transaction."""
    audit.record_event(session, event, now)
    applying = Applying(now, hook)
    REACTIONS[type(event)](session, event, applying)
    return applying.pending


def occurred(event: Event, now: dt.datetime) -> dt.datetime:
    return audit.parse_time(event.occurred_at) or now


# --- nothing but the audit row --------------------------------------------------------------

def audit_only(session, e, a: Applying) -> None:
    """The audit row is the whole effect."""


# --- mail to users (rendered from billing and users events) ---------------------------------

def _user_mail(session, event, kind, subject, body, a: Applying, to=None) -> None:
    message = mail.enqueue(session, kind, to, subject, body, event_id=event.event_id,
                           to_user_id=getattr(event, "user_id", None))
    a.pending.mail_ids.append(message.id)


def mail_verification_link(session, e: VerificationEmailRequested, a: Applying) -> None:
    subject, body = mail.render_verification(e.username, e.verification_url, e.expires_at)
    _user_mail(session, e, "verification", subject, body, a, to=e.email)


def mail_password_reset_link(session, e: PasswordResetRequested, a: Applying) -> None:
    subject, body = mail.render_password_reset(e.username, e.reset_url, e.expires_at)
    _user_mail(session, e, "password_reset", subject, body, a, to=e.email)


def mail_two_factor_locked(session, e: TwoFactorLocked, a: Applying) -> None:
    subject, body = mail.render_two_factor_locked(e.username, e.failures, e.minutes)
    _user_mail(session, e, "two_factor_locked", subject, body, a, to=e.email)


def mail_rental_started(session, e: RentalStarted, a: Applying) -> None:
    _user_mail(session, e, "rental_started", *mail.render_rental_started(e.end_date), a)


def mail_rental_renewed(session, e: RentalRenewed, a: Applying) -> None:
    _user_mail(session, e, "rental_renewed",
               *mail.render_rental_renewed(e.end_date, e.previous_end_date), a)


def mail_rental_expired(session, e: RentalExpired, a: Applying) -> None:
    _user_mail(session, e, "rental_expired", *mail.render_rental_expired(e.end_date), a)


def mail_expiry_reminder(session, e: RentalExpiryReminderDue, a: Applying) -> None:
    _user_mail(session, e, "rental_reminder",
               *mail.render_expiry_reminder(e.end_date, e.days_left), a)


def mail_rental_suspended(session, e: RentalSuspended, a: Applying) -> None:
    _user_mail(session, e, "rental_suspended", *mail.render_rental_suspended(e.reason), a)


def mail_rental_resumed(session, e: RentalResumed, a: Applying) -> None:
    _user_mail(session, e, "rental_resumed", *mail.render_rental_resumed(e.cause, e.running), a)


def mail_expiry_notice(session, e: RentalExpiryNoticeRequested, a: Applying) -> None:
    _user_mail(session, e, "expiry_notice", *mail.render_expiry_notice(e.expiry_date), a)


# --- alerts from containers and traffic events ----------------------------------------------

def _apply(session, subject, firing, a: Applying) -> None:
    fleet_checks.apply(session, subject, firing, [], a.now, a.hook, a.pending)


def _resolve(session, subject, condition, resolution, a: Applying, before=None) -> None:
    # events carry whole seconds: an alert raised within the event's second is older
    cutoff = before + dt.timedelta(seconds=1) if before is not None else None
    fleet_checks.resolve_subject(session, subject, condition, a.now, resolution, a.hook,
                                 a.pending, cutoff)


def _note(session, subject_type, subject_id, kind, e: Event, a: Applying) -> None:
    ordering.note(session, subject_type, subject_id, kind, occurred(e, a.now), a.now)


def raise_server_down(session, e: ServerWentDown, a: Applying) -> None:
    if e.maintenance:
        return  # planned: alerts about a server in maintenance are muted
    at = occurred(e, a.now)
    if fleet_checks.outage_over(session, e.server_id, at):
        return  # it came back, was removed or went into maintenance after this
    last_seen = audit.parse_time(e.last_seen_at)
    down_for = (at - last_seen).total_seconds() if last_seen else 0.0
    subject = Subject("server", e.server_id, e.server_name)
    firing, _ = alerting.evaluate_server(subject, True, e.ip_address, down_for,
                                         alerting.rules_of(session, "server_health"), e.reason)
    _apply(session, subject, firing, a)


def resolve_server_down(session, e: ServerCameBack, a: Applying) -> None:
    _note(session, "server", e.server_id, e.TYPE, e, a)
    _resolve(session, Subject("server", e.server_id, e.server_name), alerting.SERVER_DOWN,
             "the server answers again", a, before=audit.parse_time(e.occurred_at))


def resolve_server_in_maintenance(session, e: ServerUpdated, a: Applying) -> None:
    if not e.maintenance:
        return
    _note(session, "server", e.server_id, ordering.SERVER_MAINTENANCE, e, a)
    server = Subject("server", e.server_id, e.server_name)
    _resolve(session, server, None, fleet_checks.MAINTENANCE, a,
             before=audit.parse_time(e.occurred_at))
    on_it = [alert for alert in alerting.open_alerts(session, condition=alerting.CONTAINER_DOWN)
             if (alert.details or {}).get("server_id") == e.server_id]
    outcome = alerting.Outcome(resolved=alerting.resolve(session, on_it, a.now,
                                                         fleet_checks.MAINTENANCE))
    notifications.outcome_changed(session, outcome, a.hook, a.now, a.pending)


def resolve_server_removed(session, e: ServerRemoved, a: Applying) -> None:
    _note(session, "server", e.server_id, e.TYPE, e, a)
    _resolve(session, Subject("server", e.server_id, e.server_name), None,
             "the server was removed", a)


def raise_container_down(session, e: ContainerDied, a: Applying) -> None:
    if e.maintenance:
        return  # its server is in maintenance: muted
    if fleet_checks.incident_over(session, e.container_id, occurred(e, a.now)):
        return  # it recovered or was removed after this
    # an open alert for it (a crash loop's earlier death) only counts this occurrence
    subject = Subject("container", e.container_id, e.container_name, e.user_id)
    firing, _ = alerting.evaluate_container(subject, e.status, "running",
                                            alerting.rules_of(session, "docker_container"),
                                            server_id=e.server_id)
    _apply(session, subject, firing, a)


def resolve_container_recovered(session, e: ContainerRecovered, a: Applying) -> None:
    _note(session, "container", e.container_id, e.TYPE, e, a)
    _resolve(session, Subject("container", e.container_id, e.container_name),
             alerting.CONTAINER_DOWN, "the container runs again", a,
             before=audit.parse_time(e.occurred_at))


def resolve_container_stopped(session, e: ContainerStopped, a: Applying) -> None:
    _resolve(session, Subject("container", e.container_id, e.container_name),
             alerting.CONTAINER_DOWN, f"the container was stopped ({e.reason})", a,
             before=audit.parse_time(e.occurred_at))


def resolve_container_started(session, e: ContainerStarted, a: Applying) -> None:
    _resolve(session, Subject("container", e.container_id, e.container_name),
             alerting.CONTAINER_DOWN, "the container was started", a,
             before=audit.parse_time(e.occurred_at))


def resolve_container_removed(session, e: ContainerRemoved, a: Applying) -> None:
    _note(session, "container", e.container_id, e.TYPE, e, a)
    _resolve(session, Subject("container", e.container_id, e.container_name), None,
             "the container was removed", a)


def raise_traffic_quota(session, e: TrafficQuotaExceeded, a: Applying) -> None:
    subject = Subject("user", e.user_id, f"user {e.user_id}", e.user_id)
    firing, _ = alerting.evaluate_user_traffic(subject, e.month, e.used_bytes, e.limit_bytes,
                                               alerting.rules_of(session, "traffic"))
    _apply(session, subject, firing, a)
    _user_mail(session, e, "traffic_quota",
               *notifications.render_quota(e.month, e.used_bytes, e.limit_bytes), a)


REACTIONS: dict[type[Event], Effect] = {
    VerificationEmailRequested: mail_verification_link,
    PasswordResetRequested: mail_password_reset_link,
    TwoFactorLocked: mail_two_factor_locked,
    DistributorCodeRedeemed: audit_only,
    RentalStarted: mail_rental_started,
    RentalRenewed: mail_rental_renewed,
    RentalExpired: mail_rental_expired,
    RentalExpiryReminderDue: mail_expiry_reminder,
    RentalExpiryNoticeRequested: mail_expiry_notice,
    RentalSuspended: mail_rental_suspended,
    RentalResumed: mail_rental_resumed,
    RentalPlanChanged: audit_only,
    AllotmentChanged: audit_only,
    ServerWentDown: raise_server_down,
    ServerCameBack: resolve_server_down,
    ServerUpdated: resolve_server_in_maintenance,
    ServerRemoved: resolve_server_removed,
    ContainerCreated: audit_only,
    ContainerRemoved: resolve_container_removed,
    ContainerStopped: resolve_container_stopped,
    ContainerStarted: resolve_container_started,
    ContainerDied: raise_container_down,
    ContainerRecovered: resolve_container_recovered,
    ContainerMoved: audit_only,
    TrafficQuotaExceeded: raise_traffic_quota,
    TrafficQuotaCleared: audit_only,  # the fleet sweep resolves the quota alert
}

_unlisted = set(CATALOGUE.values()) ^ set(REACTIONS)
if _unlisted:
    raise ImportError("services.alerts.reactions: every catalogued event needs exactly one "
                      f"reaction; these do not match: {sorted(c.__name__ for c in _unlisted)}")
