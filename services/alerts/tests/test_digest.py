"""Alert mail does not flood (issue 13), on the real broker and a real SMTP server, against
SQLite and PostgreSQL: a host with 20 containers going down and coming back is a digest or two
per admin naming every container, a subject flapping inside its mail window is one mail, a
crash loop's repeated deaths are one alert and one mail, and maintenance mutes and resolves."""
from __future__ import annotations


import pytest
from sqlalchemy import func, select

from berth.db import make_engine

from berth.events import (ContainerDied, ContainerRecovered, ServerCameBack, ServerRemoved,
                          ServerUpdated, ServerWentDown)
from berth.settings import reload_settings
from services.alerts.models import AlertNotice, MailMessage
from services.alerts.service import AlertsService
from services.users.service import UsersService
from tests.support import poll

ADMINS = ("ops1@example.com", "ops2@example.com")




@pytest.fixture
def quiet(databases):
    """True once nothing is left to mail: no notice waiting for a digest, no mail pending."""
    engine = make_engine(databases.url("alerts"))

    def check() -> bool:
        with engine.connect() as conn:
            waiting = conn.scalar(select(func.count()).select_from(AlertNotice)
                                  .where(AlertNotice.status == "queued"))
            pending = conn.scalar(select(func.count()).select_from(MailMessage)
                                  .where(MailMessage.status == "pending"))
        return waiting == 0 and pending == 0
    yield check
    engine.dispose()


@pytest.fixture
def mailed(make_service, rpc, smtp_server, monkeypatch):
    """Alerts with SMTP, a users service with two admins; digests after 2 s."""
    monkeypatch.setenv("BERTH_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("BERTH_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("BERTH_ALERT_DIGEST_SECONDS", "2")
    reload_settings()
    make_service(UsersService)
    make_service(AlertsService, ALERT_CHECK_INTERVAL=3600)
    for address in ADMINS:
        user_id = rpc.users.add_user({"username": address.split("@")[0],
                                      "password": "password-1", "email": address})["user_id"]
        rpc.users.update_user(user_id, {"role": "admin"})
    return smtp_server


def subject(message) -> str:
    return " ".join(message["Subject"].split())  # unfolded


def alert_mails(smtp):
    return [m for m in smtp.messages() if subject(m).startswith("[Berth")]


def per_admin(mails) -> dict:
    counts = {address: 0 for address in ADMINS}
    for m in mails:
        counts[m["To"]] = counts.get(m["To"], 0) + 1
    return counts


def body(message) -> str:
    return message.get_payload(decode=True).decode()


def host(server_id=7, **extra):
    return dict(server_id=server_id, server_name="rack-7", ip_address="10.0.0.7", **extra)


def container(n, server_id=7):
    return dict(container_id=100 + n, container_name=f"app-{n:02d}", user_id=42,
                server_id=server_id)


def wait_for_alerts(rpc, count: int, status="open") -> None:
    poll(lambda: rpc.alerts.list_alerts({"status": status})["total"],
         until=lambda total: total == count, what=f"{count} {status} alerts")


def wait_for_digests(mailed, quiet, enough=bool) -> None:
    """Until ``enough(number of alert mails)`` holds and nothing is left to mail."""
    poll(lambda: ([subject(m) for m in alert_mails(mailed)], quiet()),
         until=lambda seen: enough(len(seen[0])) and seen[1],
         what="the alert mails sent and nothing left to mail (last: subjects, quiet)")


def test_a_host_with_20_containers_going_down_and_back_is_two_digests_per_admin(
        mailed, rpc, dispatch, quiet):
    dispatch(ServerWentDown.new(**host(), last_seen_at=None, reason="ping timed out"))
    for n in range(20):
        dispatch(ContainerDied.new(**container(n), status="missing", exit_code=None))
    wait_for_alerts(rpc, 21)
    wait_for_digests(mailed, quiet)
    down = alert_mails(mailed)
    dispatch(ServerCameBack.new(**host(), down_since=None))
    for n in range(20):
        dispatch(ContainerRecovered.new(**container(n)))
    wait_for_alerts(rpc, 21, "resolved")
    wait_for_digests(mailed, quiet, lambda sent: sent > len(down))
    mails = alert_mails(mailed)
    assert per_admin(mails) == {address: 2 for address in ADMINS}, [subject(m) for m in mails]
    first, second = (sorted((m for m in mails if m["To"] == ADMINS[0]),
                            key=lambda m: "21 raised" not in subject(m)))
    assert subject(first).startswith("[Berth alerts] 21 raised, 0 resolved")
    assert subject(second).startswith("[Berth alerts] 0 raised, 21 resolved")
    for message in (first, second):
        text = body(message)
        assert all(f"app-{n:02d}" in text for n in range(20)), text
        assert "rack-7" in text
    assert len(down) == 2


def flap(rpc, dispatch, times: int):
    for _ in range(times):
        dispatch(ContainerDied.new(**container(1), status="exited", exit_code=3))
        wait_for_alerts(rpc, 1)
        dispatch(ContainerRecovered.new(**container(1)))
        wait_for_alerts(rpc, 0)


def test_one_subject_flapping_ten_times_inside_its_window_is_one_mail(mailed, rpc, dispatch,
                                                                     quiet, monkeypatch):
    # ten flaps must fit in one digest's wait: on a loaded machine they can take over the
    # fixture's 2 s, and the digest then goes out in two parts (what this test is not about)
    monkeypatch.setenv("BERTH_ALERT_DIGEST_SECONDS", "8")
    reload_settings()
    flap(rpc, dispatch, 10)
    assert rpc.alerts.list_alerts({})["total"] == 10  # every flap is on record
    wait_for_digests(mailed, quiet)
    mails = alert_mails(mailed)
    assert per_admin(mails) == {address: 1 for address in ADMINS}, [subject(m) for m in mails]
    assert "app-01" in body(mails[0])


def test_an_outage_held_inside_the_window_is_mailed_when_it_ends_with_the_flap_count(
        mailed, rpc, dispatch, quiet, monkeypatch):
    monkeypatch.setenv("BERTH_ALERT_MAIL_WINDOW_SECONDS", "6")
    reload_settings()
    flap(rpc, dispatch, 1)
    wait_for_digests(mailed, quiet)  # the first flap: mailed
    flap(rpc, dispatch, 2)  # inside the window: suppressed
    dispatch(ContainerDied.new(**container(1), status="exited", exit_code=3))  # lasting
    wait_for_alerts(rpc, 1)
    wait_for_digests(mailed, quiet, lambda sent: sent == 4)
    mails = [m for m in alert_mails(mailed) if m["To"] == ADMINS[0]]
    later = [m for m in mails if "flapped" in body(m)]
    assert len(later) == 1 and "flapped 2 times" in body(later[0]), [body(m) for m in mails]
    assert per_admin(alert_mails(mailed)) == {address: 2 for address in ADMINS}


def test_repeated_deaths_of_a_crash_looping_container_are_one_alert_and_one_mail(
        mailed, rpc, dispatch, quiet):
    for _ in range(5):  # each a new event (a new event id), as a restarted loop would send
        dispatch(ContainerDied.new(**container(3), status="exited", exit_code=3))
    poll(lambda: rpc.alerts.realtime_alerts()["alerts"],
         until=lambda alerts: alerts and alerts[0]["occurrences"] == 5,
         what="one alert of 5 occurrences")
    assert rpc.alerts.list_alerts({})["total"] == 1
    wait_for_digests(mailed, quiet)
    assert per_admin(alert_mails(mailed)) == {address: 1 for address in ADMINS}


def test_maintenance_mutes_a_server_and_its_containers_and_a_removed_server_resolves(
        mailed, rpc, dispatch):
    dispatch(ServerWentDown.new(**host(maintenance=True), last_seen_at=None, reason="planned"))
    dispatch(ContainerDied.new(**container(1), status="exited", exit_code=0, maintenance=True))
    dispatch(ContainerDied.new(**container(2, server_id=8), status="exited", exit_code=1))
    dispatch(ServerWentDown.new(**host(9), last_seen_at=None, reason="ping timed out"))
    wait_for_alerts(rpc, 2)  # the muted ones raised nothing
    assert {a["subject"]["id"] for a in rpc.alerts.realtime_alerts()["alerts"]} == {102, 9}

    dispatch(ServerUpdated.new(server_id=8, server_name="rack-8", ip_address="10.0.0.8",
                               changed=["maintenance"], maintenance=True, actor_id=1))
    wait_for_alerts(rpc, 1)  # container 102 lives on server 8
    dispatch(ServerRemoved.new(**host(9), actor_id=1))
    wait_for_alerts(rpc, 0)
    resolutions = {a["subject"]["id"]: a["resolution"]
                   for a in rpc.alerts.list_alerts({})["alerts"]}
    assert resolutions == {102: "maintenance", 9: "the server was removed"}


def test_a_distinct_condition_of_a_subject_is_not_held_by_the_window_of_another(
        mailed, rpc, dispatch, quiet):
    """The throttle is per condition: a server already mailed as down (no rule) that then
    breaks two rules' thresholds is mailed again at once, both rules in that one digest."""
    dispatch(ServerWentDown.new(**host(), last_seen_at=None, reason="ping timed out"))
    wait_for_alerts(rpc, 1)
    wait_for_digests(mailed, quiet)
    for name in ("Rack lost", "Page ops"):
        rpc.alerts.add_alert({"user_id": 1}, {"alert_type": "server_health", "threshold": 0,
                                              "message": name})
    dispatch(ServerWentDown.new(**host(), last_seen_at=None, reason="ping timed out"))
    wait_for_alerts(rpc, 3)  # the rule-less alert stays open beside the two rules' ones
    wait_for_digests(mailed, quiet, lambda sent: sent == 4)
    # the mail server's list is not in delivery order: find the second digest by its content
    # (the first was sent before the rules existed)
    mine = [body(m) for m in alert_mails(mailed) if m["To"] == ADMINS[0]]
    assert [text for text in mine if "Rack lost: server rack-7" in text
            and "Page ops: server rack-7" in text], mine
    assert per_admin(alert_mails(mailed)) == {address: 2 for address in ADMINS}
