"""The mail outbox: enqueue, claim, deliver over SMTP, retry with backoff. No nameko here.

A message is a row before it is an attempt. Delivery claims rows with a conditional UPDATE (a
lease), so two alerts replicas never send the same row at once; a crash between sending and
marking leaves the lease to expire and the row is sent again (at-least-once; each message
carries its own Message-ID, the same on every attempt, so a receiver can tell a repeat).

The database going away in the middle of a pass is not a crash: the process remembers what
its ended passes left behind (``delivery_pass``). Rows such a pass claimed are taken again by
the next pass of this process at once, not after the lease; a message it sent but could not
mark sent is marked by the next pass, not sent again.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import smtplib
import ssl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from services.alerts.models import MailMessage

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=120)

# This process's delivery passes (mail and webhooks): every claim a pass makes carries its
# token, PROCESS plus the pass's own id (36 characters, the width of ``claimed_by``).
PROCESS = uuid.uuid4().hex[:16]
_live_passes: set[str] = set()
# (table, row id) -> when: sent, but the database went away before the row said so
_sent_unmarked: dict[tuple[str, int], dt.datetime] = {}


@contextmanager
def delivery_pass() -> Iterator[str]:
    """The token of one delivery pass. Once the pass ends (however it ends), the rows it
    still holds are free for this process's next pass."""
    token = f"{PROCESS}.{uuid.uuid4().hex[:19]}"
    _live_passes.add(token)
    try:
        yield token
    finally:
        _live_passes.discard(token)


def sent_unmarked(model, row_id: int, when: dt.datetime) -> None:
    """Remember that row ``row_id`` of ``model`` went out at ``when`` although marking it sent
    failed; ``settle_unmarked`` records it."""
    _sent_unmarked[(model.__tablename__, row_id)] = when


def settle_unmarked(session_factory, model) -> None:
    """Mark sent what this process sent but could not mark (raises while the database is
    still away; what is marked is forgotten)."""
    for key in [key for key in _sent_unmarked if key[0] == model.__tablename__]:
        sent_at = _sent_unmarked.get(key)
        if sent_at is None:  # a concurrent pass of this process marked it meanwhile
            continue
        with session_factory() as session:
            row = session.get(model, key[1])
            if row is not None and row.status == "pending":
                mark_sent(session, row, sent_at)
            session.commit()
        _sent_unmarked.pop(key, None)


@dataclass(frozen=True)
class SmtpConfig:
    host: str | None
    port: int = 25
    user: str | None = None
    password: str | None = None
    security: str = "none"  # none, starttls, ssl
    sender: str = "Berth <berth@localhost>"
    timeout: float = 10.0
    ca_file: str | None = None  # the CAs to trust for the server (default: the system's)

    @classmethod
    def from_settings(cls, s) -> SmtpConfig:
        return cls(s.smtp_host, s.smtp_port, s.smtp_user, s.smtp_password, s.smtp_security,
                   s.smtp_from, s.smtp_timeout, s.smtp_ca_file)

    def tls_context(self) -> ssl.SSLContext:
        """What TLS to the server checks: its certificate chain, against ``ca_file`` when set
        (only those CAs), else against the system's CA store, and that the certificate names
        the host Berth connects to. There is no setting that turns this off."""
        return ssl.create_default_context(cafile=self.ca_file)


def enqueue(session: Session, kind: str, to: str | None, subject: str, body: str,
            event_id: str | None = None, now: dt.datetime | None = None,
            to_user_id: int | None = None, to_role: str | None = None,
            send_at: dt.datetime | None = None, parent_id: int | None = None) -> MailMessage:
    """A message for an address, for a user whose address is looked up when sending, or for
    everyone with a role (expanded into one message per address when sending)."""
    if to is None and to_user_id is None and to_role is None:
        raise ValueError("a message needs an address, a user or a role")
    message = MailMessage(kind=kind, to_address=to, to_user_id=to_user_id, to_role=to_role,
                          subject=subject, body=body, parent_id=parent_id,
                          event_id=event_id, status="pending", message_uuid=str(uuid.uuid4()))
    if now is not None:
        message.created_at = message.next_attempt_at = now
    if send_at is not None:
        message.next_attempt_at = send_at
    session.add(message)
    session.flush()
    return message


def claim_due(session: Session, now: dt.datetime, limit: int = 50,
              ids: list[int] | None = None, token: str | None = None,
              model=MailMessage) -> list:
    """Lease due pending rows to this caller (``token``); each row is won by one only.

    ``model`` is any outbox table with status, next_attempt_at, claimed_until and claimed_by
    (the mail outbox by default, the webhook outbox too)."""
    token = token or str(uuid.uuid4())
    left_by_ended_pass = and_(model.claimed_by.like(f"{PROCESS}.%"),
                              model.claimed_by.not_in(sorted(_live_passes)))
    due = or_(model.claimed_until.is_(None), model.claimed_until < now, left_by_ended_pass)
    unmarked = [key[1] for key in _sent_unmarked if key[0] == model.__tablename__]
    query = select(model.id).where(model.status == "pending", model.next_attempt_at <= now, due,
                                   model.id.not_in(unmarked))
    if ids is not None:
        query = query.where(model.id.in_(ids))
    candidates = session.scalars(query.order_by(model.id).limit(limit)).all()
    won = []
    for row_id in candidates:
        result = session.execute(
            update(model)
            .where(model.id == row_id, model.status == "pending", due)
            .values(claimed_until=now + LEASE, claimed_by=token))
        if result.rowcount == 1:
            won.append(row_id)
    session.commit()
    if not won:
        return []
    return list(session.scalars(select(model).where(model.id.in_(won)).order_by(model.id)))


def renew_lease(session: Session, row_id: int, token: str, now: dt.datetime,
                model=MailMessage):
    """Extend this pass's lease on a row just before sending it; None if the lease was
    lost (it ran out and another replica claimed the row), so the row is not sent twice."""
    result = session.execute(
        update(model)
        .where(model.id == row_id, model.status == "pending",
               model.claimed_by == token, model.claimed_until > now)
        .values(claimed_until=now + LEASE))
    session.commit()
    return session.get(model, row_id) if result.rowcount == 1 else None


def record_attempt(session_factory, model, row_id: int, error: str | None, at: dt.datetime,
                   base: float, cap: float, counts: dict, **fields):
    """Write one delivery attempt's outcome (sent, or ``error`` with its backoff) and
    ``fields`` on row ``row_id`` of ``model``, count it, and return the row. If the database
    is away once the attempt went out, the next pass of this process marks the row sent
    (``settle_unmarked``) instead of sending it again."""
    try:
        with session_factory() as session:
            row = session.get(model, row_id)
            for name, value in fields.items():
                setattr(row, name, value)
            if error is None:
                mark_sent(session, row, at)
            else:
                mark_failed(session, row, at, error, base, cap)
            session.commit()
    except Exception:
        if error is None:
            sent_unmarked(model, row_id, at)
        raise
    counts["sent" if error is None else "failed"] += 1
    return row


def backoff(attempts: int, base: float, cap: float) -> dt.timedelta:
    return dt.timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), cap))


def mark_sent(session: Session, message: MailMessage, now: dt.datetime) -> None:
    message.status, message.sent_at = "sent", now
    message.attempts += 1
    message.claimed_until = None
    message.last_error = None


def mark_failed(session: Session, message, now: dt.datetime, error: str,
                base: float, cap: float) -> None:
    message.attempts += 1
    message.last_error = error[:500]
    message.next_attempt_at = now + backoff(message.attempts, base, cap)
    message.claimed_until = None


# what a header line cannot hold; the routes refuse these in text bound for a mail
# (services.alerts.schemas), so only a row written before they did can still have one
HEADER_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def build_email(message: MailMessage, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to_address
    # a line break would end the header (or make every attempt fail): one line, always
    email["Subject"] = HEADER_CONTROLS.sub(" ", message.subject).strip()
    email["Date"] = format_datetime(message.created_at)
    # unique per message and the same on every retry, so a receiver can spot a repeat
    email["Message-ID"] = f"<{message.message_uuid}@berth.mail>"
    email.set_content(message.body)
    return email


def send_smtp(config: SmtpConfig, email: EmailMessage) -> None:
    """One SMTP transaction; raises on any failure (a certificate that does not verify is
    one: the message stays in the outbox and is retried). ``starttls`` fails on a server
    that does not offer it; it never carries on in plain text."""
    if config.security == "ssl":
        client = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout,
                                  context=config.tls_context())
    else:
        client = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
    with client:
        if config.security == "starttls":
            client.starttls(context=config.tls_context())
        if config.user:
            client.login(config.user, config.password or "")
        client.send_message(email)


def expand(session_factory, message: MailMessage, token: str, now_fn, base: float, cap: float,
           resolve_role) -> list[int] | None:
    """Turn a message to a role into one pending message per address (in one transaction,
    only while this pass still holds the lease); the new ids, or None if it failed."""
    try:
        addresses = sorted(set(resolve_role(message.to_role)))
    except Exception as exc:  # noqa: BLE001 - users service away: retry like a failed send
        with session_factory() as session:
            row = session.get(MailMessage, message.id)
            mark_failed(session, row, now_fn(), f"{type(exc).__name__}: {exc}", base, cap)
            session.commit()
        log.warning("mail %s to every %s not expanded: %s", message.id, message.to_role, exc)
        return None
    with session_factory() as session:
        won = session.execute(
            update(MailMessage)
            .where(MailMessage.id == message.id, MailMessage.status == "pending",
                   MailMessage.claimed_by == token)
            .values(status="expanded", claimed_until=None, sent_at=now_fn(),
                    to_address=", ".join(addresses)[:254] or None))
        if won.rowcount != 1:
            session.rollback()
            return []
        children = [enqueue(session, message.kind, address, message.subject, message.body,
                            now=now_fn(), parent_id=message.id) for address in addresses]
        session.commit()
        if not addresses:
            log.warning("mail %s: no %s has an address; nobody to send it to",
                        message.id, message.to_role)
        return [child.id for child in children]


def deliver(session_factory, config: SmtpConfig, now_fn, base: float, cap: float,
            ids: list[int] | None = None, send=send_smtp, resolve=None,
            resolve_role=None) -> dict:
    """Send what is due (or just ``ids``); returns counts of sent and failed.

    ``resolve(user_id) -> address`` fills in the address of mail addressed to a user, and
    ``resolve_role(role) -> [address]`` the addresses of mail to a role; if either raises,
    the message waits for the next attempt like any failed delivery.
    """
    counts = {"sent": 0, "failed": 0}
    if not config.host:
        return counts
    with delivery_pass() as token:
        expanded = _deliver_pass(session_factory, config, now_fn, base, cap, ids, send, resolve,
                                 resolve_role, token, counts)
    if expanded:
        more = deliver(session_factory, config, now_fn, base, cap, ids=expanded, send=send,
                       resolve=resolve, resolve_role=resolve_role)
        counts = {key: counts[key] + more[key] for key in counts}
    return counts


def _deliver_pass(session_factory, config, now_fn, base, cap, ids, send, resolve, resolve_role,
                  token: str, counts: dict) -> list[int]:
    settle_unmarked(session_factory, MailMessage)
    with session_factory() as session:
        claimed = [m.id for m in claim_due(session, now_fn(), ids=ids, token=token)]
    expanded: list[int] = []
    for message_id in claimed:
        # no session stays open while SMTP or the address lookup is slow
        with session_factory() as session:
            message = renew_lease(session, message_id, token, now_fn())
        if message is None:
            continue
        if message.to_role is not None:
            children = expand(session_factory, message, token, now_fn, base, cap, resolve_role)
            if children is None:
                counts["failed"] += 1
            else:
                expanded.extend(children)
            continue
        error = None
        try:
            if message.to_address is None:
                message.to_address = resolve(message.to_user_id)
            send(config, build_email(message, config.sender))
        except Exception as exc:  # noqa: BLE001 - SMTP, network or address lookup
            error = f"{type(exc).__name__}: {exc}"
        row = record_attempt(session_factory, MailMessage, message_id, error, now_fn(), base,
                             cap, counts, to_address=message.to_address)
        if error is not None:
            log.warning("mail %s to %s not sent (attempt %s): %s", row.id,
                        row.to_address or f"user {row.to_user_id}", row.attempts, error)
    return expanded


def render_verification(username: str, url: str, expires_at: str) -> tuple[str, str]:
    subject = "Verify your e-mail address for Berth"
    body = (f"Hello {username},\n\n"
            f"Please confirm this address by opening the link below:\n\n{url}\n\n"
            f"The link works once and expires at {expires_at}.\n"
            f"If you did not ask for this, ignore this message.\n\n-- Berth\n")
    return subject, body


def render_password_reset(username: str, url: str, expires_at: str) -> tuple[str, str]:
    subject = "Reset your Berth password"
    body = (f"Hello {username},\n\n"
            f"Someone (we hope you) asked to reset the password of your Berth account.\n"
            f"To choose a new password, open the link below:\n\n{url}\n\n"
            f"The link works once and expires at {expires_at}. Setting a new password signs\n"
            f"you out everywhere.\n"
            f"If you did not ask for this, ignore this message: your password is unchanged.\n"
            f"\n-- Berth\n")
    return subject, body


def render_two_factor_locked(username: str, failures: int, minutes: int) -> tuple[str, str]:
    subject = "Wrong two-factor codes for your Berth account"
    body = (f"Hello {username},\n\n"
            f"{failures} wrong two-factor codes were typed for your Berth account. Whoever\n"
            f"typed them got past your password, so it is known to someone: if it was not\n"
            f"you, change your password now (or reset it with \"Forgot your password?\").\n\n"
            f"Two-factor codes for your account are refused for up to {minutes} minutes;\n"
            f"after that you can sign in as usual.\n\n-- Berth\n")
    return subject, body


def _rental_mail(subject: str, lines: list[str]) -> tuple[str, str]:
    return subject, "Hello,\n\n" + "\n".join(lines) + "\n\n-- Berth\n"


def render_rental_started(end_date: str) -> tuple[str, str]:
    return _rental_mail("Your Berth rental is active",
                        [f"Your rental is active until {end_date}."])


def render_rental_renewed(end_date: str, previous_end_date: str) -> tuple[str, str]:
    return _rental_mail("Your Berth rental was extended",
                        [f"Your rental now runs until {end_date} "
                         f"(it was due to end on {previous_end_date})."])


def render_rental_expired(end_date: str) -> tuple[str, str]:
    return _rental_mail("Your Berth rental has expired",
                        [f"Your rental ended on {end_date}; its containers are stopped.",
                         "Redeem a new serial to start them again."])


def render_expiry_reminder(end_date: str, days_left: int) -> tuple[str, str]:
    when = "today" if days_left == 0 else (
        "tomorrow" if days_left == 1 else f"in {days_left} days")
    return _rental_mail(f"Your Berth rental ends {when}",
                        [f"Your rental ends {when}, on {end_date}.",
                         "Redeem a serial before then to keep your containers running."])


def render_rental_suspended(reason: str) -> tuple[str, str]:
    return _rental_mail("Your Berth containers are suspended",
                        [f"Your rental is suspended: {reason}; its containers are stopped.",
                         "They start again by themselves when your traffic quota is raised or "
                         "a new month begins, or when an administrator resumes your rental."])


RESUMED_BECAUSE = {"limit_raised": "your traffic quota now covers this month's traffic",
                   "new_month": "a new month has begun",
                   "admin": "an administrator resumed your rental"}


def render_rental_resumed(cause: str, running: bool) -> tuple[str, str]:
    then = ("Your containers are starting again." if running else
            "Redeem a serial to run your containers again: your rental is not active.")
    return _rental_mail("Your Berth rental is no longer suspended",
                        [f"Your rental's suspension has ended: "
                         f"{RESUMED_BECAUSE.get(cause, cause)}.", then])


def render_expiry_notice(expiry_date: str) -> tuple[str, str]:
    return _rental_mail("Your Berth rental expiry date",
                        [f"Your rental expires on {expiry_date}."])
