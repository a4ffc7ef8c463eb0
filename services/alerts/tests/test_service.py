"""Alerts service on the real broker: verification mail from a users event to a real SMTP
server, retried while SMTP is down, never lost when the event precedes alerts' queue, never
sent twice by two replicas."""
import time

import pytest

from services.alerts.service import AlertsService, DigestTimer
from services.users.service import UsersService
from tests.support import poll


def verification_mails(smtp, address):
    return smtp.wait_for(lambda m: m["To"] == address, timeout=20)


def register(rpc, name):
    return rpc.users.add_user({"username": name, "password": "password-1",
                               "email": f"{name}@example.com"})["user_id"]


def test_registration_mail_reaches_the_smtp_server(make_service, rpc, smtp_server,
                                                   monkeypatch):
    monkeypatch.setenv("BERTH_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("BERTH_SMTP_PORT", str(smtp_server.port))
    from berth.settings import reload_settings
    reload_settings()
    make_service(UsersService)
    make_service(AlertsService)
    register(rpc, "mailme")
    mails = verification_mails(smtp_server, "mailme@example.com")
    assert len(mails) == 1
    assert "/api/verify_email/" in mails[0].get_payload()


def test_event_recorded_before_alerts_ever_started_is_delivered_later(
        make_service, rpc, smtp_server, monkeypatch):
    monkeypatch.setenv("BERTH_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("BERTH_SMTP_PORT", str(smtp_server.port))
    from berth.settings import reload_settings
    reload_settings()
    make_service(UsersService, OUTBOX_RELAY_INTERVAL=0.5)
    # a fresh vhost has no queue bound for the event yet: mandatory publishing must keep it
    register(rpc, "early")
    time.sleep(1.5)
    assert smtp_server.messages() == []
    make_service(AlertsService)
    mails = verification_mails(smtp_server, "early@example.com")
    assert len(mails) == 1


def test_smtp_outage_delays_mail_but_loses_none_and_two_replicas_send_once(
        make_service, rpc, tmp_path, monkeypatch):
    from tests.support import SmtpServer, free_port
    port = free_port()
    monkeypatch.setenv("BERTH_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("BERTH_SMTP_PORT", str(port))
    monkeypatch.setenv("BERTH_MAIL_MAX_BACKOFF", "1")
    from berth.settings import reload_settings
    reload_settings()
    make_service(UsersService)
    make_service(AlertsService, MAIL_RETRY_INTERVAL=0.5)
    make_service(AlertsService, MAIL_RETRY_INTERVAL=0.5)  # a second replica
    for n in range(5):
        register(rpc, f"outage{n}")
    time.sleep(2)  # attempts fail: nothing listens on the port
    smtp = SmtpServer(tmp_path, port=port).start()
    try:
        poll(smtp.messages, until=lambda arrived: len(arrived) >= 5, timeout=30, interval=0.3,
             what="the 5 mails", details=smtp.summary)
        time.sleep(2)  # any duplicate would show up now
        received = sorted(m["To"] for m in smtp.messages())
        assert received == sorted(f"outage{n}@example.com" for n in range(5))
    finally:
        smtp.stop()


@pytest.fixture(autouse=True)
def _fresh_settings():
    yield
    from berth.settings import reload_settings
    reload_settings()


def test_the_digest_timer_and_the_digest_read_the_delay_from_the_settings_only(make_service,
                                                                              monkeypatch):
    """BERTH_ALERT_DIGEST_SECONDS sets the tick (a quarter of it); a nameko config key of the
    old name changes nothing: flush reads the settings, so must the timer."""
    from berth.settings import reload_settings
    monkeypatch.setenv("BERTH_ALERT_DIGEST_SECONDS", "2")
    reload_settings()
    container = make_service(AlertsService, ALERT_DIGEST_SECONDS=40)
    [timer] = [e for e in container.entrypoints if isinstance(e, DigestTimer)]
    assert timer.interval == 0.5  # 2 s / 4 (the config's 40 s would tick every 5 s)
