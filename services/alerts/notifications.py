"""Who hears about what: an alert raised or resolved is mailed to every admin and, when a
webhook is configured, POSTed to it; a user over their quota and a user sent a reminder get a
mail. Everything here only writes outbox rows, in the caller's transaction. No nameko here.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from berth.db import isoformat
from services.alerts import mail, webhook
from services.alerts.alerting import human_bytes, to_dict
from services.alerts.models import Alert


class Pending:
    """Rows written in this transaction, to try sending at once after the commit."""

    def __init__(self):
        self.mail_ids: list[int] = []
        self.webhook_ids: list[int] = []

    def __bool__(self):
        return bool(self.mail_ids or self.webhook_ids)


def render_alert(alert: Alert, kind: str) -> tuple[str, str]:
    subject_line = f"{alert.subject_type} {alert.subject_id}" + (
        f" ({alert.subject_name})" if alert.subject_name else "")
    if kind == "alert_raised":
        subject = f"[Berth alert] {alert.message}"[:255]
        lines = [f"Alert {alert.id} ({alert.alert_type}) was raised at "
                 f"{isoformat(alert.raised_at)}:", "", f"  {alert.message}", "",
                 f"It concerns {subject_line}.",
                 "You will get another message when it resolves."]
    else:
        subject = f"[Berth resolved] {alert.message}"[:255]
        lines = [f"Alert {alert.id} ({alert.alert_type}), raised at "
                 f"{isoformat(alert.raised_at)}, resolved at {isoformat(alert.resolved_at)}:",
                 "", f"  {alert.message}", "", f"Resolution: {alert.resolution}.",
                 f"It concerned {subject_line}."]
    return subject, "Hello,\n\n" + "\n".join(lines) + "\n\n-- Berth\n"


def alert_changed(session: Session, alert: Alert, kind: str, hook: webhook.WebhookConfig,
                  now: dt.datetime, pending: Pending) -> None:
    """``kind``: alert_raised or alert_resolved."""
    subject, body = render_alert(alert, kind)
    pending.mail_ids.append(mail.enqueue(session, kind, None, subject, body, now=now,
                                         to_role="admin").id)
    if hook.enabled:
        pending.webhook_ids.append(webhook.enqueue(session, kind, to_dict(alert), now).id)


def outcome_changed(session: Session, outcome, hook, now, pending: Pending) -> None:
    for alert in outcome.raised:
        alert_changed(session, alert, "alert_raised", hook, now, pending)
    for alert in outcome.resolved:
        alert_changed(session, alert, "alert_resolved", hook, now, pending)


def render_quota(month: str, used: int, limit: int) -> tuple[str, str]:
    return ("You have used your Berth traffic quota",
            f"Hello,\n\nYour containers have used {human_bytes(used)} of traffic in {month}, "
            f"more than your monthly quota of {human_bytes(limit)}.\n"
            f"Please contact us to raise your quota.\n\n-- Berth\n")


def render_reminder(message: str, reminder_date: str) -> tuple[str, str]:
    return (f"Berth reminder for {reminder_date}",
            f"Hello,\n\n{message}\n\n(reminder for {reminder_date})\n\n-- Berth\n")
