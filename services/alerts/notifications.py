"""Who hears about what: an alert raised or resolved is mailed to every admin (in a digest,
``services.alerts.digest``) and, when a webhook is configured, POSTed to it; a user over their
quota and a user sent a reminder get a mail. Everything here only writes outbox rows, in the
caller's transaction. No nameko here.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from services.alerts import digest, webhook
from services.alerts.alerting import human_bytes, to_dict
from services.alerts.models import Alert


class Pending:
    """Rows written in this transaction, to try sending at once after the commit."""

    def __init__(self):
        self.mail_ids: list[int] = []
        self.webhook_ids: list[int] = []
        # live notices (alert_raised/alert_resolved, the alert as the API shows it) for the
        # gateway's streams: dispatched after the commit, best effort (services.alerts.service)
        self.notices: list[tuple[str, dict]] = []

    def __bool__(self):
        return bool(self.mail_ids or self.webhook_ids or self.notices)


def alert_changed(session: Session, alert: Alert, kind: str, hook: webhook.WebhookConfig,
                  now: dt.datetime, pending: Pending) -> None:
    """``kind``: alert_raised or alert_resolved. The mail waits for the next digest
    (``services.alerts.digest``); the webhook goes out per alert, at once."""
    digest.enqueue(session, alert, "raised" if kind == "alert_raised" else "resolved", now)
    pending.notices.append((kind, to_dict(alert)))
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
