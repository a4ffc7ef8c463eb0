"""The mail outbox without a broker or SMTP server: claiming, delivery, retries, the message."""
import datetime as dt
import smtplib

import pytest
from sqlalchemy.orm import sessionmaker

from berth.db import make_engine
from services.alerts import mail
from services.alerts.models import Base, MailMessage

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
SMTP = mail.SmtpConfig(host="smtp.invalid", port=2525, sender="Berth <noreply@berth.test>")
BASE, CAP = 15.0, 100.0


class FakeSmtp:
    """The ``send`` callable: records what it was given, or fails like a dead server."""

    def __init__(self, error=None):
        self.sent = []
        self.error = error

    def __call__(self, config, email):
        if self.error is not None:
            raise self.error
        self.sent.append((config, email))


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += dt.timedelta(seconds=seconds)


def put(session_factory, to="alice@example.com", subject="Hello", body="Body text",
        now=T0, event_id=None):
    with session_factory() as session:
        message = mail.enqueue(session, "test", to, subject, body, event_id=event_id, now=now)
        session.commit()
        return message.id


def load(session_factory, message_id) -> MailMessage:
    with session_factory() as session:
        return session.get(MailMessage, message_id)


def claim(session_factory, now, **kwargs):
    with session_factory() as session:
        return [m.id for m in mail.claim_due(session, now, **kwargs)]


# --- enqueue and claim -----------------------------------------------------------------------

def test_enqueue_makes_a_pending_row_due_now(session_factory):
    message_id = put(session_factory)
    message = load(session_factory, message_id)
    assert message.status == "pending" and message.attempts == 0
    assert message.next_attempt_at == T0 and message.created_at == T0
    assert message.sent_at is None and message.claimed_until is None


def test_a_claimed_row_is_not_claimed_again_until_its_lease_expires(session_factory):
    message_id = put(session_factory)
    assert claim(session_factory, T0) == [message_id]
    assert claim(session_factory, T0) == []
    lease = mail.LEASE.total_seconds()
    assert claim(session_factory, T0 + dt.timedelta(seconds=lease - 1)) == []
    assert claim(session_factory, T0 + dt.timedelta(seconds=lease + 1)) == [message_id]


def test_only_due_pending_rows_are_claimed(session_factory):
    due = put(session_factory, now=T0)
    future = put(session_factory, now=T0 + dt.timedelta(seconds=30))
    sent = put(session_factory, now=T0)
    with session_factory() as session:
        mail.mark_sent(session, session.get(MailMessage, sent), T0)
        session.commit()
    assert claim(session_factory, T0) == [due]
    # within the first claim's lease, so only the newly due row comes back
    assert claim(session_factory, T0 + dt.timedelta(seconds=30)) == [future]


def test_claim_respects_ids_and_limit(session_factory):
    ids = [put(session_factory) for _ in range(4)]
    assert claim(session_factory, T0, ids=[ids[2]]) == [ids[2]]
    assert claim(session_factory, T0, limit=2) == ids[:2]
    assert claim(session_factory, T0) == [ids[3]]


# --- deliver ---------------------------------------------------------------------------------

def test_deliver_sends_and_marks_sent(session_factory):
    message_id = put(session_factory, to="bob@example.com", subject="Welcome", body="Hi Bob")
    smtp, clock = FakeSmtp(), Clock(T0 + dt.timedelta(seconds=3))
    counts = mail.deliver(session_factory, SMTP, clock, BASE, CAP, send=smtp)
    assert counts == {"sent": 1, "failed": 0}
    [(config, email)] = smtp.sent
    assert config is SMTP
    assert email["To"] == "bob@example.com" and email["Subject"] == "Welcome"
    assert email["From"] == "Berth <noreply@berth.test>"
    assert email.get_content().strip() == "Hi Bob"
    message = load(session_factory, message_id)
    assert message.status == "sent" and message.attempts == 1
    assert message.sent_at == clock.now and message.last_error is None
    assert message.claimed_until is None


def test_a_row_from_before_input_was_checked_is_sent_with_a_one_line_subject(
        session_factory):
    """Text bound for a mail is checked at input now (test_text_input.py); a row stored
    before that, with a line break in its subject, is sent as one line, not retried for
    ever, and adds no header."""
    message_id = put(session_factory, subject="[Berth alert] Host lost\r\nBcc: x@example.com",
                     body="line one\nline two")
    smtp = FakeSmtp()
    assert mail.deliver(session_factory, SMTP, Clock(), BASE, CAP, send=smtp)["sent"] == 1
    [(_, email)] = smtp.sent
    assert email["Subject"] == "[Berth alert] Host lost Bcc: x@example.com"
    assert email["Bcc"] is None
    assert email.get_content() == "line one\nline two\n"
    assert load(session_factory, message_id).status == "sent"


def test_a_sent_message_is_not_sent_again(session_factory):
    put(session_factory)
    smtp, clock = FakeSmtp(), Clock()
    mail.deliver(session_factory, SMTP, clock, BASE, CAP, send=smtp)
    clock.advance(3600)
    assert mail.deliver(session_factory, SMTP, clock, BASE, CAP, send=smtp) == {
        "sent": 0, "failed": 0}
    assert len(smtp.sent) == 1


def test_deliver_only_the_given_ids(session_factory):
    first, second = put(session_factory, to="a@example.com"), put(session_factory,
                                                                    to="b@example.com")
    smtp = FakeSmtp()
    mail.deliver(session_factory, SMTP, Clock(), BASE, CAP, ids=[second], send=smtp)
    assert [email["To"] for _, email in smtp.sent] == ["b@example.com"]
    assert load(session_factory, first).status == "pending"


@pytest.mark.parametrize("error", [ConnectionRefusedError(111, "Connection refused"),
                                   smtplib.SMTPServerDisconnected("gone")])
def test_a_failed_send_keeps_the_message_pending_with_backoff(session_factory, error):
    message_id = put(session_factory)
    clock = Clock(T0 + dt.timedelta(seconds=1))
    counts = mail.deliver(session_factory, SMTP, clock, BASE, CAP, send=FakeSmtp(error))
    assert counts == {"sent": 0, "failed": 1}
    message = load(session_factory, message_id)
    assert message.status == "pending" and message.attempts == 1
    assert type(error).__name__ in message.last_error
    assert message.next_attempt_at == clock.now + dt.timedelta(seconds=BASE)
    assert message.claimed_until is None and message.sent_at is None


def test_backoff_doubles_per_attempt_up_to_the_cap(session_factory):
    message_id = put(session_factory)
    clock, broken = Clock(), FakeSmtp(OSError("network unreachable"))
    delays = []
    for _ in range(5):
        assert mail.deliver(session_factory, SMTP, clock, BASE, CAP, send=broken)["failed"] == 1
        message = load(session_factory, message_id)
        delays.append((message.next_attempt_at - clock.now).total_seconds())
        # not retried before its time ...
        assert mail.deliver(session_factory, SMTP, clock, BASE, CAP, send=broken) == {
            "sent": 0, "failed": 0}
        clock.now = message.next_attempt_at
    assert delays == [15, 30, 60, 100, 100]
    assert load(session_factory, message_id).attempts == 5
    # ... and sent once the server is back
    working = FakeSmtp()
    assert mail.deliver(session_factory, SMTP, clock, BASE, CAP, send=working)["sent"] == 1
    message = load(session_factory, message_id)
    assert message.status == "sent" and message.attempts == 6 and message.last_error is None


def test_backoff_function():
    assert [mail.backoff(n, 10, 75).total_seconds() for n in (0, 1, 2, 3, 4, 9)] == [
        10, 10, 20, 40, 75, 75]


def test_one_failure_does_not_stop_the_rest_of_the_batch(session_factory):
    bad = put(session_factory, to="bad@example.com")
    good = put(session_factory, to="good@example.com")
    sent = []

    def send(config, email):
        if email["To"] == "bad@example.com":
            raise smtplib.SMTPRecipientsRefused({"bad@example.com": (550, b"no such user")})
        sent.append(email["To"])

    assert mail.deliver(session_factory, SMTP, Clock(), BASE, CAP, send=send) == {
        "sent": 1, "failed": 1}
    assert sent == ["good@example.com"]
    assert load(session_factory, bad).status == "pending"
    assert load(session_factory, good).status == "sent"


def test_without_an_smtp_host_nothing_is_sent_and_mail_stays_in_the_outbox(session_factory):
    message_id = put(session_factory)
    smtp = FakeSmtp()
    counts = mail.deliver(session_factory, mail.SmtpConfig(host=None), Clock(), BASE, CAP,
                          send=smtp)
    assert counts == {"sent": 0, "failed": 0}
    assert smtp.sent == []
    message = load(session_factory, message_id)
    assert message.status == "pending" and message.attempts == 0
    assert message.claimed_until is None


# --- the message -----------------------------------------------------------------------------

def test_build_email_headers_and_a_stable_message_id(session_factory):
    first = load(session_factory, put(session_factory, to="alice@example.com",
                                      subject="Verify your address", body="Click"))
    second = load(session_factory, put(session_factory))
    email = mail.build_email(first, "Berth <noreply@berth.test>")
    assert email["To"] == "alice@example.com"
    assert email["Subject"] == "Verify your address"
    assert email["From"] == "Berth <noreply@berth.test>"
    assert email["Date"]
    message_id = email["Message-ID"]
    assert message_id.startswith("<") and message_id.endswith(">") and "@" in message_id
    # the same row always gets the same Message-ID (a resend is recognisable as a repeat) ...
    assert mail.build_email(first, "other sender")["Message-ID"] == message_id
    # ... and another row another one
    assert mail.build_email(second, "Berth <noreply@berth.test>")["Message-ID"] != message_id


def test_render_verification_carries_the_link_and_expiry():
    subject, body = mail.render_verification("alice", "http://h/api/verify_email/tok",
                                             "2024-05-02T12:00:00Z")
    assert "Verify" in subject
    assert "alice" in body and "http://h/api/verify_email/tok" in body
    assert "2024-05-02T12:00:00Z" in body


def test_different_messages_from_different_outboxes_get_different_message_ids(tmp_path):
    ids = []
    for name, to in (("a", "alice@example.com"), ("b", "bob@example.com")):
        engine = make_engine(f"sqlite:///{tmp_path}/{name}.sqlite3")
        Base.metadata.create_all(engine)
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        message = load(factory, put(factory, to=to, subject=f"for {to}"))
        ids.append(mail.build_email(message, SMTP.sender)["Message-ID"])
        engine.dispose()
    assert ids[0] != ids[1]


def test_a_pass_that_lost_its_lease_does_not_send_the_message(session_factory):
    """Replica A claims a row, stalls past the lease; replica B claims and sends it. When A
    gets to the row, its lease renewal fails and it must not send the message again."""
    with session_factory() as session:
        message_id = mail.enqueue(session, "test", "x@example.com", "s", "b", now=T0).id
        session.commit()
    with session_factory() as session:
        assert [m.id for m in mail.claim_due(session, T0, token="replica-a")] == [message_id]
    later = T0 + mail.LEASE + dt.timedelta(seconds=1)
    with session_factory() as session:
        assert [m.id for m in mail.claim_due(session, later, token="replica-b")] == [message_id]
    with session_factory() as session:
        assert mail.renew_lease(session, message_id, "replica-a", later) is None
        assert mail.renew_lease(session, message_id, "replica-b", later) is not None


class DatabaseGoesAway:
    """A session factory that works for the first ``sessions`` sessions, then fails like a
    database that was stopped (every later session raises)."""

    def __init__(self, session_factory, sessions: int):
        self.session_factory, self.left = session_factory, sessions

    def __call__(self):
        if self.left <= 0:
            raise ConnectionError("the database went away")
        self.left -= 1
        return self.session_factory()


def test_rows_a_pass_claimed_before_the_database_went_away_are_sent_by_the_next_pass(
        session_factory):
    """The pass claims the row (one session), then the database goes: the row's lease would
    hold it for two minutes, but the pass has ended in this process, so the next pass sends
    it at once."""
    message_id = put(session_factory)
    smtp, clock = FakeSmtp(), Clock(T0)
    with pytest.raises(ConnectionError):
        mail.deliver(DatabaseGoesAway(session_factory, 1), SMTP, clock, BASE, CAP, send=smtp)
    assert smtp.sent == [] and load(session_factory, message_id).claimed_until is not None
    clock.advance(1)
    assert mail.deliver(session_factory, SMTP, clock, BASE, CAP, send=smtp) == \
        {"sent": 1, "failed": 0}
    assert len(smtp.sent) == 1 and load(session_factory, message_id).status == "sent"


def test_a_message_sent_before_the_database_went_away_is_marked_not_sent_again(
        session_factory):
    """Claim, renew and send work; marking it sent fails. The next pass records it as sent
    (at the time it went out) without sending it a second time."""
    message_id = put(session_factory)
    smtp, clock = FakeSmtp(), Clock(T0 + dt.timedelta(seconds=2))
    with pytest.raises(ConnectionError):
        mail.deliver(DatabaseGoesAway(session_factory, 2), SMTP, clock, BASE, CAP, send=smtp)
    assert len(smtp.sent) == 1 and load(session_factory, message_id).status == "pending"
    sent_at = clock.now
    clock.advance(5)
    assert mail.deliver(session_factory, SMTP, clock, BASE, CAP, send=smtp) == \
        {"sent": 0, "failed": 0}
    message = load(session_factory, message_id)
    assert len(smtp.sent) == 1
    assert message.status == "sent" and message.sent_at == sent_at and message.attempts == 1


def test_a_running_pass_keeps_its_rows_from_another_pass_of_the_same_process(session_factory):
    message_id = put(session_factory)
    with mail.delivery_pass() as first:
        assert len(first) <= MailMessage.claimed_by.type.length  # PostgreSQL checks it
        assert claim(session_factory, T0, token=first) == [message_id]
        with mail.delivery_pass() as second:
            assert claim(session_factory, T0, token=second) == []
    with mail.delivery_pass() as third:  # both ended: free for this process at once
        assert claim(session_factory, T0, token=third) == [message_id]


# --- mail to every admin ---------------------------------------------------------------------

def test_mail_to_a_role_is_expanded_into_one_message_per_address_when_sent(session_factory):
    with session_factory() as session:
        parent = mail.enqueue(session, "alert_raised", None, "Down", "Server down", now=T0,
                              to_role="admin").id
        session.commit()
    smtp = FakeSmtp()
    counts = mail.deliver(session_factory, SMTP, Clock(), BASE, CAP, send=smtp,
                          resolve_role=lambda role: ["b@example.com", "a@example.com"])
    assert counts == {"sent": 2, "failed": 0}
    assert sorted(email["To"] for _, email in smtp.sent) == ["a@example.com", "b@example.com"]
    assert load(session_factory, parent).status == "expanded"
    # nothing more to send, ever
    assert mail.deliver(session_factory, SMTP, Clock(T0 + dt.timedelta(hours=1)), BASE, CAP,
                        send=smtp, resolve_role=lambda role: ["c@example.com"]) == {
        "sent": 0, "failed": 0}


def test_a_role_whose_addresses_cannot_be_looked_up_is_retried(session_factory):
    with session_factory() as session:
        parent = mail.enqueue(session, "alert_raised", None, "Down", "x", now=T0,
                              to_role="admin").id
        session.commit()

    def users_down(role):
        raise TimeoutError("users did not answer")

    clock = Clock()
    assert mail.deliver(session_factory, SMTP, clock, BASE, CAP, send=FakeSmtp(),
                        resolve_role=users_down) == {"sent": 0, "failed": 1}
    message = load(session_factory, parent)
    assert message.status == "pending" and "TimeoutError" in message.last_error
    clock.now = message.next_attempt_at
    smtp = FakeSmtp()
    assert mail.deliver(session_factory, SMTP, clock, BASE, CAP, send=smtp,
                        resolve_role=lambda role: ["a@example.com"])["sent"] == 1


def test_render_two_factor_locked_tells_the_owner_their_password_is_known():
    subject, body = mail.render_two_factor_locked("alice", 10, 15)
    assert subject == "Wrong two-factor codes for your Berth account"
    assert "Hello alice" in body and "10 wrong two-factor codes" in body
    assert "change your password" in body and "15 minutes" in body
