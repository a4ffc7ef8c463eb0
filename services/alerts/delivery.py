"""Delivery of what the outboxes hold: mail over SMTP (``services.alerts.mail``) and webhook
POSTs (``services.alerts.webhook``), tried at once after the commit that queued them and
again by the service's timers. Addresses of mail to a user or to the admins come from the
users service through ``Contacts``. No nameko here.
"""
from __future__ import annotations

import logging
from typing import Protocol

from berth.db import utcnow
from berth.settings import get_settings
from services.alerts import mail, webhook
from services.alerts.notifications import Pending

log = logging.getLogger(__name__)


class Contacts(Protocol):
    """Where mail goes (the users service)."""

    def email_of(self, user_id: int) -> str: ...

    def admin_emails(self) -> list[str]: ...


def only_mail(ids: list[int]) -> Pending:
    pending = Pending()
    pending.mail_ids.extend(ids)
    return pending


class Delivery:
    def __init__(self, session_factory, contacts: Contacts):
        self.session_factory = session_factory
        self.contacts = contacts

    def send(self, pending: Pending) -> None:
        """Try at once what a transaction queued (``pending``); what fails waits for the
        timers. Without BERTH_SMTP_HOST mail stays in the outbox and is logged."""
        if pending.mail_ids:
            if get_settings().smtp_host:
                self.mail(pending.mail_ids)
            else:
                self._log_unsent(pending.mail_ids)
        if pending.webhook_ids:
            self.webhooks(pending.webhook_ids)

    def mail(self, ids: list[int] | None = None) -> dict:
        """Send due mail (or just ``ids``)."""
        settings = get_settings()
        return mail.deliver(self.session_factory, mail.SmtpConfig.from_settings(settings),
                            utcnow, settings.mail_retry_interval, settings.mail_max_backoff,
                            ids=ids, resolve=self.contacts.email_of,
                            resolve_role=self._role_addresses)

    def webhooks(self, ids: list[int] | None = None) -> dict:
        """POST due webhook deliveries (or just ``ids``)."""
        settings = get_settings()
        return webhook.deliver(self.session_factory,
                               webhook.WebhookConfig.from_settings(settings), utcnow,
                               settings.webhook_retry_interval, settings.webhook_max_backoff,
                               ids=ids)

    def _role_addresses(self, role: str) -> list[str]:
        if role != "admin":
            raise ValueError(f"no address list for role {role!r}")
        return self.contacts.admin_emails()

    def _log_unsent(self, ids: list[int]) -> None:
        with self.session_factory() as session:
            for message_id in ids:
                message = session.get(mail.MailMessage, message_id)
                log.info("no BERTH_SMTP_HOST: mail %s kept in the outbox, not sent\n"
                         "To: %s\nSubject: %s\n\n%s", message_id,
                         message.to_address or (f"user {message.to_user_id}"
                                                if message.to_user_id else
                                                f"every {message.to_role}"),
                         message.subject, message.body)
