"""Mail survives an SMTP outage (delivered once when it returns) and a missing SMTP host."""
from __future__ import annotations

import time

import pytest

from tests.e2e.helpers import links_in, settle, to_address
from tests.support import SmtpServer, Vhost, free_port, poll, report, running_platform

pytestmark = pytest.mark.e2e


def test_mail_queued_during_an_smtp_outage_is_delivered_exactly_once(tmp_path, amqp_uri):
    port = free_port()
    smtp = SmtpServer(tmp_path / "smtp", port=port)  # not started: the mail server is down
    (tmp_path / "smtp").mkdir()
    folder = tmp_path / "platform"
    folder.mkdir()
    names = [f"patient{n}" for n in range(5)]
    with running_platform(folder, amqp_uri, smtp_port=port) as stack:
        for name in names:
            status, body = stack.request("POST", "/api/add_user", {
                "username": name, "password": "user-password-1",
                "email": f"{name}@example.com"})
            assert status == 200, body
        settle(4)  # several delivery attempts fail meanwhile (retry interval 1 s)
        assert smtp.messages() == []

        smtp.start()
        back = time.monotonic()
        try:
            wanted = {f"{n}@example.com" for n in names}
            poll(lambda: {to_address(m) for m in smtp.messages()},
                 until=lambda reached: reached >= wanted, timeout=20, interval=0.2,
                 what="every mail to arrive", details=stack.logs)
            delivered_after = time.monotonic() - back
            settle(5)  # retries keep running; none may send a mail again
            counts = [sum(1 for m in smtp.messages() if to_address(m) == f"{n}@example.com")
                      for n in names]
            report(f"smtp outage: {len(names)} verification mails queued while the SMTP "
                   f"server was down (4 s, attempts failing every 1 s); all delivered "
                   f"{delivered_after:.1f} s after it came back; copies per mail: {counts}")
            assert counts == [1] * len(names)
            arrived = [m for m in smtp.messages() if to_address(m) == "patient0@example.com"]
        finally:
            smtp.stop()
        # the link in the late mail still works
        link = next(u for u in links_in(arrived[0]) if "/api/verify_email/" in u)
        status, body = stack.request("GET", link[len(stack.url):])
        assert status == 200, body


def test_without_an_smtp_host_registration_works_and_the_mail_is_logged(tmp_path):
    folder = tmp_path / "platform"
    folder.mkdir()
    with Vhost() as amqp_uri, running_platform(folder, amqp_uri) as stack:
            assert "BERTH_SMTP_HOST" not in stack.env
            status, body = stack.request("POST", "/api/add_user", {
                "username": "offline", "password": "user-password-1",
                "email": "offline-user@example.com"})
            assert status == 200, body
            log = folder / "alerts.log"
            poll(lambda: log.read_text(errors="replace"),
                 until=lambda logged: "offline-user@example.com" in logged, timeout=20,
                 interval=0.3, what="the mail in the alerts log", details=stack.logs)
            text = log.read_text(errors="replace")
            assert "/api/verify_email/" in text  # the link is recoverable from the log
            assert stack.login("offline", "user-password-1")
