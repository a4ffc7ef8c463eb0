"""Alerts service. So far: it owns e-mail (the mail outbox). Entrypoints only.

Each handled event becomes one row in the mail outbox (keyed by the event id, so a redelivered
event never makes a second mail), then delivery is attempted at once and retried by a timer.
Mail to a user is addressed by user id; the address is looked up from the users service when
the mail is sent.
"""
from __future__ import annotations

import logging

from nameko.rpc import RpcProxy

from berth.db import utcnow
from berth.events import (Event, RentalExpired, RentalExpiryNoticeRequested,
                          RentalExpiryReminderDue, RentalRenewed, RentalStarted,
                          VerificationEmailRequested, first_delivery, receive)
from berth.service import ServiceBase, call_with_timeout, event_handler, every
from berth.settings import get_settings
from services.alerts import mail
from services.alerts.models import ProcessedEvent

log = logging.getLogger(__name__)


class AlertsService(ServiceBase):
    name = "alerts"
    users_rpc = RpcProxy("users")

    @event_handler("users", VerificationEmailRequested.TYPE)
    def on_verification_email_requested(self, payload):
        self._mail(VerificationEmailRequested, payload, "verification",
                   lambda e: mail.render_verification(e.username, e.verification_url,
                                                      e.expires_at),
                   to=lambda e: e.email)

    @event_handler("billing", RentalStarted.TYPE)
    def on_rental_started(self, payload):
        self._mail(RentalStarted, payload, "rental_started",
                   lambda e: mail.render_rental_started(e.end_date))

    @event_handler("billing", RentalRenewed.TYPE)
    def on_rental_renewed(self, payload):
        self._mail(RentalRenewed, payload, "rental_renewed",
                   lambda e: mail.render_rental_renewed(e.end_date, e.previous_end_date))

    @event_handler("billing", RentalExpired.TYPE)
    def on_rental_expired(self, payload):
        self._mail(RentalExpired, payload, "rental_expired",
                   lambda e: mail.render_rental_expired(e.end_date))

    @event_handler("billing", RentalExpiryReminderDue.TYPE)
    def on_rental_expiry_reminder_due(self, payload):
        self._mail(RentalExpiryReminderDue, payload, "rental_reminder",
                   lambda e: mail.render_expiry_reminder(e.end_date, e.days_left))

    @event_handler("billing", RentalExpiryNoticeRequested.TYPE)
    def on_rental_expiry_notice_requested(self, payload):
        self._mail(RentalExpiryNoticeRequested, payload, "expiry_notice",
                   lambda e: mail.render_expiry_notice(e.expiry_date))

    @every("mail_retry_interval")
    def retry_mail(self):
        self._deliver()

    def _mail(self, event_cls: type[Event], payload, kind: str, render, to=None) -> None:
        """Turn one event into one outbox row (once per event id), then try to send it."""
        event = receive(event_cls, payload)
        if event is None:
            return
        subject, body = render(event)
        address = to(event) if to else None
        with self.db() as session:
            if not first_delivery(session, ProcessedEvent, event):
                return
            message = mail.enqueue(session, kind, address, subject, body,
                                   event_id=event.event_id,
                                   to_user_id=getattr(event, "user_id", None))
            session.commit()
            message_id = message.id
        if not get_settings().smtp_host:
            log.info("no BERTH_SMTP_HOST: mail %s kept in the outbox, not sent\nTo: %s\n"
                     "Subject: %s\n\n%s", message_id,
                     address or f"user {getattr(event, 'user_id', '?')}", subject, body)
            return
        self._deliver([message_id])

    def _resolve(self, user_id: int) -> str:
        return call_with_timeout(self.users_rpc.contact, user_id)["email"]

    def _deliver(self, ids=None):
        settings = get_settings()
        mail.deliver(self.db, mail.SmtpConfig.from_settings(settings), utcnow,
                     settings.mail_retry_interval, settings.mail_max_backoff, ids=ids,
                     resolve=self._resolve)
