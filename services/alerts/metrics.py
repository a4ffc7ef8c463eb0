"""Gauges the alerts service computes from its database at each scrape (berth.metrics)."""
from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from berth.metrics import counts_by, gauge
from services.alerts.alerting import ALERT_TYPES
from services.alerts.models import Alert, MailMessage, WebhookDelivery


def open_alerts(session):  # ix_alerts_status_raised
    yield gauge("berth_alerts_open", "Open alerts by alert type", "alert_type",
                counts_by(session, Alert.alert_type, ALERT_TYPES, Alert.status == "open"))


def _pending(session, model) -> int:  # ix_*_outbox_due (status, next_attempt_at)
    return session.scalar(select(func.count()).select_from(model)
                          .where(model.status == "pending")) or 0


def notification_backlog(session):
    mail = GaugeMetricFamily("berth_mail_outbox_backlog",
                             "Mail messages not delivered yet (waiting or retrying)")
    mail.add_metric([], _pending(session, MailMessage))
    webhook = GaugeMetricFamily("berth_webhook_outbox_backlog",
                                "Webhook notifications not delivered yet (waiting or retrying)")
    webhook.add_metric([], _pending(session, WebhookDelivery))
    yield mail
    yield webhook


FAMILIES = (open_alerts, notification_backlog)
