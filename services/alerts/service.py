"""Alerts service. So far: it owns e-mail (the mail outbox). Entrypoints only."""
from __future__ import annotations

import logging

from berth.db import utcnow
from berth.events import VerificationEmailRequested, first_delivery, receive
from berth.service import ServiceBase, event_handler, every
from berth.settings import get_settings
from services.alerts import mail
from services.alerts.models import ProcessedEvent

log = logging.getLogger(__name__)


class AlertsService(ServiceBase):
    name = "alerts"

    @event_handler("users", VerificationEmailRequested.TYPE)
    def on_verification_email_requested(self, payload):
        event = receive(VerificationEmailRequested, payload)
        if event is None:
            return
        subject, body = mail.render_verification(event.username, event.verification_url,
                                                 event.expires_at)
        with self.db() as session:
            if not first_delivery(session, ProcessedEvent, event):
                return
            message = mail.enqueue(session, "verification", event.email, subject, body,
                                   event_id=event.event_id)
            session.commit()
            message_id = message.id
        if not get_settings().smtp_host:
            log.info("no BERTH_SMTP_HOST: mail %s kept in the outbox, not sent\nTo: %s\n"
                     "Subject: %s\n\n%s", message_id, event.email, subject, body)
            return
        self._deliver([message_id])

    @every("mail_retry_interval")
    def retry_mail(self):
        self._deliver()

    def _deliver(self, ids=None):
        settings = get_settings()
        config = mail.SmtpConfig.from_settings(settings)
        mail.deliver(self.db, config, utcnow, settings.mail_retry_interval,
                     settings.mail_max_backoff, ids=ids)
