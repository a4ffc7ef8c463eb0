"""The audit log end to end: state-changing calls and domain events with actor, subject and
time; no secret ever in it; the system log filters and pages; a user's log is self or admin."""
from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from tests.docker_support import TEST_IMAGE, TEST_IMAGE_V2, remove_berth_containers
from tests.e2e.helpers import links_in, mails_to
from tests.support import poll

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin_token()


def logs(platform, token, query=""):
    status, body = platform.request("GET", f"/api/logs/system?limit=200{query}", token=token)
    assert status == 200, body
    return body


def test_a_state_changing_call_is_logged_with_actor_subject_and_time(platform, admin):
    user_id, _ = platform.new_user("audited")
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    status, body = platform.request("POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": "2030-01-01", "user_id": user_id}, token=admin)
    assert status == 200, body
    serial_id = body["serial_id"]

    def row():
        rows = logs(platform, admin, "&action=/api/serial/generate")["logs"]
        return [r for r in rows if r["subject"] == {"type": "serial", "id": str(serial_id)}]
    [entry] = poll(row, what="the audit row of the serial")
    assert entry["source"] == "api" and entry["action"] == "POST /api/serial/generate"
    assert entry["actor"]["username"] == platform.admin["username"]
    assert entry["actor"]["role"] == "admin" and isinstance(entry["actor"]["user_id"], int)
    assert entry["user_id"] == user_id  # the user it concerns
    assert entry["status_code"] == 200 and isinstance(entry["log_id"], int)
    stamp = dt.datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
    assert before <= stamp <= dt.datetime.now(dt.timezone.utc)
    assert platform.admin["username"] in entry["message"]
    # reads are not audited
    platform.request("GET", "/api/serials", token=admin)
    time.sleep(1)
    assert not [r for r in logs(platform, admin)["logs"] if r["action"] == "GET /api/serials"]


def test_a_callers_request_id_cannot_hide_a_write_from_the_log(platform, admin):
    """X-Request-ID is the caller's to choose (it shows in Berth's logs beside theirs), so it
    must not be what makes an audit row unique: two writes sent with one id are two rows."""
    user_id, _ = platform.new_user("same-request-id")
    serial_ids = []
    for _ in range(2):
        status, body = platform.request(
            "POST", "/api/serial/generate",
            {"type": "rental", "expiry_date": "2030-01-01", "user_id": user_id},
            token=admin, headers={"X-Request-ID": "one-id-for-both"})
        assert status == 200, body
        serial_ids.append(str(body["serial_id"]))

    def rows():
        found = logs(platform, admin, "&action=/api/serial/generate")["logs"]
        return {r["subject"]["id"] for r in found if r["subject"]["type"] == "serial"} \
            & set(serial_ids)
    poll(rows, until=lambda found: found == set(serial_ids), timeout=10,
         what="an audit row for each of the two serials")


def test_a_domain_event_is_logged_once_with_system_actor(platform, admin):
    user_id, _ = platform.new_user("evented")

    def row():
        return [r for r in logs(platform, admin, "&action=verification_email_requested")["logs"]
                if r["subject"] == {"type": "user", "id": str(user_id)}]
    [entry] = poll(row, what="the audit row of the event")
    assert entry["source"] == "event" and entry["actor"]["type"] == "system"
    assert entry["user_id"] == user_id and "evented" in entry["message"]
    # the registration call itself is there too, anonymous, naming the new user
    calls = poll(lambda: [r for r in logs(platform, admin,
                                          f"&user_id={user_id}&source=api")["logs"]
                          if r["action"] == "POST /api/add_user"],
                 what="the audit row of the registration")
    assert len(calls) == 1 and calls[0]["actor"]["type"] == "anonymous"


def test_no_secret_reaches_the_audit_log(platform, admin, module_smtp):
    password = "Correct-Horse-Battery-9"
    user_id, token = platform.new_user("secretive", password=password)
    status, body = platform.request("POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": "2030-01-01"}, token=admin)
    assert status == 200, body
    code = body["serial_code"]
    status, body = platform.request("POST", "/api/serial/redeem", {"serial_code": code},
                                    token=token)
    assert status == 200, body
    mail = poll(lambda: mails_to(module_smtp, "secretive@example.com"),
                what="the verification mail", details=module_smtp.summary)
    link = next(u for u in links_in(mail[0]) if "/api/verify_email/" in u)
    token_part = link.rsplit("/", 1)[1]
    poll(lambda: [r for r in logs(platform, admin, f"&user_id={user_id}")["logs"]
                  if r["action"] == "POST /api/serial/redeem"], what="the audit row of the redeem")
    everything = json.dumps(logs(platform, admin))
    for secret in (password, code, code.replace("-", ""), token_part, token):
        assert secret not in everything
    # a serial's id is no secret: the redeem row names it, and the rental it started
    [redeemed] = [r for r in logs(platform, admin, f"&user_id={user_id}")["logs"]
                  if r["action"] == "POST /api/serial/redeem"]
    assert redeemed["details"]["reply_ids"] == {"rental_id": body["rental_id"],
                                                "serial_id": body["serial_id"]}


def test_user_logs_by_time_are_self_or_admin(platform, admin):
    user_id, token = platform.new_user("timely")
    other_id, other_token = platform.new_user("nosy")
    platform.request("POST", "/api/serial/redeem", {"serial_code": "x"}, token=token)  # 400
    today = dt.datetime.now(dt.timezone.utc).date()
    query = f"user_id={user_id}&start={today}&end={today}"

    def own():
        status, body = platform.request("GET", f"/api/logs/user_by_time?{query}", token=token)
        assert status == 200, body
        return body["logs"]
    rows = poll(lambda: [r for r in own() if r["action"] == "POST /api/login"],
                what="the audit row of the login")
    [login] = rows  # the sign-in is the user's own act, about that user (by id)
    assert login["actor"] == {"type": "user", "user_id": user_id, "username": "timely",
                              "role": "user"}
    assert login["subject"] == {"type": "user", "id": str(user_id)}
    assert all(r["user_id"] == user_id or r["actor"]["user_id"] == user_id for r in own())
    status, body = platform.request("GET", f"/api/logs/user_by_time?{query}", token=admin)
    assert status == 200 and body["user_id"] == user_id and body["logs"]
    status, body = platform.request("GET", f"/api/logs/user_by_time?{query}",
                                    token=other_token)
    assert status == 403, body
    assert platform.request("GET", f"/api/logs/user_by_time?{query}")[0] == 401
    yesterday = today - dt.timedelta(days=1)
    status, body = platform.request(
        "GET", f"/api/logs/user_by_time?user_id={user_id}&start={yesterday}&end={yesterday}",
        token=token)
    assert status == 200 and body["logs"] == []
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)  # end is exclusive
    now = soon.strftime("%Y-%m-%dT%H:%M:%SZ")
    status, body = platform.request(
        "GET", f"/api/logs/user_by_time?user_id={user_id}&start={yesterday}&end={now}",
        token=token)
    assert status == 200 and body["logs"], body
    for bad in (f"user_id={user_id}&start=yesterday&end={today}",
                f"user_id={user_id}&start={today}&end={yesterday}",
                f"user_id={user_id}&end={yesterday}T00:00:00Z&start={today}",
                f"user_id=0&start={today}&end={today}", "limit=0",
                "end=0001-01-01T00:00:00Z"):
        status, body = platform.request("GET", f"/api/logs/user_by_time?{bad}", token=token)
        assert status == 400, (bad, body)
    # as a seed client calls it, with no query: the caller's own log of the last 24 hours
    status, body = platform.request("GET", "/api/logs/user_by_time", token=token)
    assert status == 200 and body["user_id"] == user_id, body
    assert any(r["action"] == "POST /api/login" for r in body["logs"]), body
    for partial in (f"start={today}", f"user_id={user_id}&start={today}", f"end={now}"):
        status, body = platform.request("GET", f"/api/logs/user_by_time?{partial}",
                                        token=token)
        assert status == 200 and body["user_id"] == user_id and body["logs"], (partial, body)
    status, body = platform.request("GET", f"/api/logs/user_by_time?end={yesterday}",
                                    token=token)  # the 24 hours before yesterday began
    assert status == 200 and body["logs"] == [], body
    assert platform.request("GET", "/api/logs/system", token=token)[0] == 403


def test_a_users_log_does_not_show_the_address_of_an_admin_who_acted_on_them(platform, admin):
    """Issue 16 item 7: the admin's PUT about the user is in the user's log, without the
    address it came from; the admin sees the address, the user sees their own."""
    user_id, token = platform.new_user("acted-on")
    status, body = platform.request("PUT", f"/api/users/{user_id}", {"traffic_limit": 10**9},
                                    token=admin)
    assert status == 200, body
    today = dt.datetime.now(dt.timezone.utc).date()
    query = f"/api/logs/user_by_time?user_id={user_id}&start={today}&end={today}"

    def rows(as_token, action):
        status, body = platform.request("GET", query, token=as_token)
        assert status == 200, body
        return [r for r in body["logs"] if r["action"] == action]
    put = "PUT /api/users/<int:user_id>"
    [by_admin] = poll(lambda: rows(token, put), what="the admin's call in the user's log")
    assert by_admin["actor"]["role"] == "admin" and by_admin["user_id"] == user_id
    assert by_admin["details"]["body"] == {"traffic_limit": 10**9}
    assert "remote_addr" not in by_admin["details"], by_admin
    [as_admin_sees_it] = rows(admin, put)
    assert as_admin_sees_it["details"]["remote_addr"] == "127.0.0.1"
    [own_login] = rows(token, "POST /api/login")
    assert own_login["details"]["remote_addr"] == "127.0.0.1"


def test_system_log_pages_and_rows_can_be_edited_and_deleted(platform, admin):
    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for n in range(3):
        platform.new_user(f"pager{n}")
    # Page over a set that no longer grows: other rows of this platform keep arriving from
    # the gateway's batches and events, and would shift an offset between two pages.
    only = f"&action=POST%20/api/add_user&since={started}"
    poll(lambda: logs(platform, admin, only), until=lambda page: page["total"] == 3,
         what="the 3 registrations in the audit log")
    status, first = platform.request("GET", f"/api/logs/system?limit=2{only}", token=admin)
    assert status == 200 and len(first["logs"]) == 2 and first["total"] == 3, first
    status, second = platform.request("GET", f"/api/logs/system?limit=2&offset=2{only}",
                                      token=admin)
    assert status == 200 and len(second["logs"]) == 1, second
    assert {r["log_id"] for r in first["logs"]}.isdisjoint(r["log_id"] for r in second["logs"])
    assert platform.request("GET", "/api/logs/system?limit=201", token=admin)[0] == 400
    assert platform.request("GET", "/api/logs/system?since=soon", token=admin)[0] == 400

    log_id = first["logs"][0]["log_id"]
    status, body = platform.request("PUT", f"/api/logs/update/{log_id}",
                                    {"message": "Updated log message"}, token=admin)
    assert status == 200 and body["message"] == "Log updated successfully", body
    status, body = platform.request("PUT", f"/api/logs/update/{log_id}", {}, token=admin)
    assert status == 400 and body["error"] == "Invalid log data"
    status, body = platform.request("PUT", "/api/logs/update/987654",
                                    {"message": "x"}, token=admin)
    assert status == 404
    edited = [r for r in logs(platform, admin)["logs"] if r["log_id"] == log_id]
    assert edited[0]["message"] == "Updated log message" and edited[0]["original_message"]

    status, body = platform.request("DELETE", f"/api/logs/delete/{log_id}", token=admin)
    assert status == 200 and body["message"] == "Log deleted successfully", body
    assert platform.request("DELETE", f"/api/logs/delete/{log_id}", token=admin)[0] == 404
    status, body = platform.request("DELETE", "/api/logs/delete/abc", token=admin)
    assert status == 400 and body["error"] == "Invalid log ID"
    # the deletion itself is on record
    poll(lambda: [r for r in logs(platform, admin)["logs"]
                  if r["action"] == "DELETE /api/logs/delete/<int:id>"
                  and r["subject"] == {"type": "log", "id": str(log_id)}],
         what="the audit row of the deletion")


def test_every_row_about_a_container_is_found_by_its_id(platform, admin, docker_url,
                                                         docker_client):
    """Create, stop, update and delete (the last three name the container in the path) and
    the events about it are all ``subject_type=container&subject_id=<id>``."""
    status, body = platform.request("POST", "/api/add_server", {
        "server_name": "audit-local", "ip_address": "127.0.0.1", "docker_url": docker_url,
        "status": "online"}, token=admin)
    assert status == 200, body
    try:
        status, created = platform.request("POST", "/api/containers", {
            "container_name": "audited", "image": TEST_IMAGE}, token=admin)
        assert status == 200, created
        container_id = created["container_id"]
        for method, path, change in (("POST", "/api/containers/audited/stop", None),
                                     # a rename only: in place, and its reply names the id too
                                     ("PUT", "/api/containers/audited",
                                      {"container_name": "audited2"}),
                                     ("PUT", "/api/containers/audited2",
                                      {"image": TEST_IMAGE_V2}),
                                     ("DELETE", "/api/containers/audited2", None)):
            status, reply = platform.request(method, path, change, token=admin)
            assert status == 200, (path, reply)
            assert reply["container_id"] == container_id, (path, reply)
        expected = {"POST /api/containers", "POST /api/containers/<container_name>/stop",
                    "PUT /api/containers/<container_name>",
                    "DELETE /api/containers/<container_name>", "container_created",
                    "container_stopped", "container_removed"}

        def actions():
            rows = logs(platform, admin,
                        f"&subject_type=container&subject_id={container_id}")["logs"]
            return sorted(r["action"] for r in rows)
        poll(actions, until=lambda seen: set(seen) >= expected
             and seen.count("PUT /api/containers/<container_name>") == 2,
             what="every row about the container")
        assert set(actions()) >= expected, actions()
        assert actions().count("PUT /api/containers/<container_name>") == 2, actions()
        assert not logs(platform, admin, "&subject_type=container_name")["logs"]
    finally:
        remove_berth_containers(docker_client)


def test_deleting_a_rental_by_its_serial_is_logged_about_the_rental(platform, admin):
    """``DELETE /api/rental/delete/<serial_id>`` and the ``rental_expired`` event of the same
    deletion are one subject: ``subject_type=rental&subject_id=<rental id>``."""
    user_id, token = platform.new_user("unrented")
    expiry = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    status, serial = platform.request("POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": expiry, "user_id": user_id}, token=admin)
    assert status == 200, serial
    status, rented = platform.request("POST", "/api/serial/redeem",
                                      {"serial_code": serial["serial_code"]}, token=token)
    assert status == 200, rented
    status, reply = platform.request("DELETE", f"/api/rental/delete/{serial['serial_id']}",
                                     token=admin)
    assert status == 200, reply
    assert (reply["rental_id"], reply["user_id"]) == (rented["rental_id"], user_id)
    expected = {"DELETE /api/rental/delete/<int:serial_id>", "rental_expired"}

    def rows():
        return logs(platform, admin,
                    f"&subject_type=rental&subject_id={rented['rental_id']}")["logs"]
    poll(lambda: {r["action"] for r in rows()}, until=lambda seen: seen >= expected,
         what="both rows about the rental")
    found = {r["action"]: r for r in rows()}
    assert set(found) >= expected, sorted(found)
    assert found["DELETE /api/rental/delete/<int:serial_id>"]["user_id"] == user_id
