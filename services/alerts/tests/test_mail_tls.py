"""Mail over TLS verifies the server (issue 16 item 7): a real SMTP server (aiosmtpd) with a
certificate from a private CA, over STARTTLS and over SMTPS. Untrusted, the mail is not sent
and stays in the outbox to be retried; with BERTH_SMTP_CA_FILE naming that CA it goes out; a
certificate the CA signed for another name is refused too."""
import datetime as dt
import subprocess

import pytest

from berth.settings import Settings
from services.alerts import mail
from services.alerts.models import MailMessage
from tests.support import SmtpServer
from tests.tls_proxy import make_pki

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
BASE, CAP = 15.0, 100.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A private CA, a server certificate it signed for 127.0.0.1 (``server_pem``), and one
    it signed for mail.example.com only (``elsewhere_pem``)."""
    folder = tmp_path_factory.mktemp("smtp-pki")
    files = make_pki(folder)
    (folder / "elsewhere.ext").write_text("subjectAltName=DNS:mail.example.com\n")
    for args in (["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=mail.example.com",
                  "-keyout", "elsewhere.key", "-out", "elsewhere.csr"],
                 ["x509", "-req", "-in", "elsewhere.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                  "-CAcreateserial", "-days", "2", "-extfile", "elsewhere.ext",
                  "-out", "elsewhere.pem"]):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)
    return {**files, "elsewhere_pem": str(folder / "elsewhere.pem"),
            "elsewhere_key": str(folder / "elsewhere.key")}


def tls_server(folder, security, cert, key):
    mode = {"starttls": "starttls", "ssl": "smtps"}[security]
    return SmtpServer(folder, **{mode: (cert, key)}).start()


def queue(session_factory) -> int:
    with session_factory() as session:
        message = mail.enqueue(session, "test", "alice@example.com", "Over TLS", "Body", now=T0)
        session.commit()
        return message.id


def row(session_factory, message_id) -> MailMessage:
    with session_factory() as session:
        return session.get(MailMessage, message_id)


def config(server, security, ca_file=None):
    return mail.SmtpConfig(host="127.0.0.1", port=server.port, security=security,
                           sender="Berth <noreply@example.com>", timeout=5, ca_file=ca_file)


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_an_untrusted_certificate_keeps_the_mail_in_the_outbox_until_its_ca_is_configured(
        tmp_path, session_factory, pki, security):
    server = tls_server(tmp_path, security, pki["server_pem"], pki["server_key"])
    try:
        message_id = queue(session_factory)
        clock = Clock()
        # the server's CA is not in the system's store: nothing is sent
        assert mail.deliver(session_factory, config(server, security), clock, BASE, CAP) == {
            "sent": 0, "failed": 1}
        waiting = row(session_factory, message_id)
        assert waiting.status == "pending" and waiting.attempts == 1
        assert "CERTIFICATE_VERIFY_FAILED" in waiting.last_error, waiting.last_error
        assert server.messages() == []
        # BERTH_SMTP_CA_FILE names the CA: the retry delivers it, over TLS
        clock.now = waiting.next_attempt_at
        trusted = config(server, security, ca_file=pki["ca_pem"])
        assert mail.deliver(session_factory, trusted, clock, BASE, CAP) == {
            "sent": 1, "failed": 0}
        [received] = server.wait_for(lambda m: m["Subject"] == "Over TLS")
        assert received["To"] == "alice@example.com"
        assert row(session_factory, message_id).status == "sent"
    finally:
        server.stop()


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_a_trusted_certificate_for_another_name_is_refused(tmp_path, session_factory, pki,
                                                            security):
    server = tls_server(tmp_path, security, pki["elsewhere_pem"], pki["elsewhere_key"])
    try:
        message_id = queue(session_factory)
        trusted = config(server, security, ca_file=pki["ca_pem"])
        assert mail.deliver(session_factory, trusted, Clock(), BASE, CAP)["failed"] == 1
        waiting = row(session_factory, message_id)
        assert waiting.status == "pending"
        assert "CERTIFICATE_VERIFY_FAILED" in waiting.last_error, waiting.last_error
        assert "127.0.0.1" in waiting.last_error  # the name it does not cover
        assert server.messages() == []
    finally:
        server.stop()


def test_starttls_is_not_skipped_when_the_server_does_not_offer_it(tmp_path,
                                                                  session_factory):
    server = SmtpServer(tmp_path).start()  # plain SMTP: no STARTTLS advertised
    try:
        message_id = queue(session_factory)
        assert mail.deliver(session_factory, config(server, "starttls"), Clock(), BASE,
                            CAP)["failed"] == 1
        assert "STARTTLS" in row(session_factory, message_id).last_error
        assert server.messages() == []
    finally:
        server.stop()


def test_the_ca_file_and_security_come_from_the_settings():
    settings = Settings(env="test", smtp_host="mail.example.com", smtp_security="starttls",
                        smtp_ca_file="/etc/berth/smtp-ca.pem")
    smtp = mail.SmtpConfig.from_settings(settings)
    assert (smtp.security, smtp.ca_file) == ("starttls", "/etc/berth/smtp-ca.pem")
    with pytest.raises(ValueError):  # a typo is refused at start, not taken as plain text
        Settings(env="test", smtp_security="tls")
