"""Billing end to end through HTTP only: serials, redeeming, rentals, distributors, access
rules, and the rental mails reaching a real SMTP server."""
from __future__ import annotations

import datetime as dt
import itertools

import pytest

from tests.e2e.helpers import body_text, jwt_claims, mails_to, settle
from tests.support import poll

pytestmark = pytest.mark.e2e

_names = itertools.count(1)


def day(n: int) -> str:
    return (dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=n)).isoformat()


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin_token()


def new_user(platform, prefix: str = "renter") -> dict:
    name = f"{prefix}{next(_names)}"
    user_id, token = platform.new_user(name)
    return {"id": user_id, "token": token, "username": name, "email": f"{name}@example.com"}


def ok(platform, method, path, body=None, token=None) -> dict:
    status, reply = platform.request(method, path, body, token=token)
    assert status == 200, (method, path, status, reply)
    return reply


def generate(platform, token, expiry=None, user_id=None, serial_type="rental") -> dict:
    body = {"type": serial_type, "expiry_date": expiry or day(30)}
    if user_id is not None:
        body["user_id"] = user_id
    return ok(platform, "POST", "/api/serial/generate", body, token)


def redeem(platform, token, code):
    return platform.request("POST", "/api/serial/redeem", {"serial_code": code}, token=token)


def rent(platform, admin, user, expiry=None) -> dict:
    """Give ``user`` a rental through a serial generated for them; the redeem reply."""
    serial = generate(platform, admin, expiry, user["id"])
    status, reply = redeem(platform, user["token"], serial["serial_code"])
    assert status == 200, reply
    return {**reply, "serial_code": serial["serial_code"]}


def typo(code: str) -> str:
    position = 7 if code[7] != "-" else 8
    return code[:position] + ("7" if code[position] != "7" else "8") + code[position + 1:]


def expect_error(status_reply, status: int, message: str | None = None):
    got, reply = status_reply
    assert got == status, reply
    assert isinstance(reply, dict) and isinstance(reply.get("error"), str), reply
    if message is not None:
        assert reply["error"] == message, reply
    return reply


# --- serials -----------------------------------------------------------------------------

def test_generate_check_update_delete_with_the_seed_shapes(platform, admin):
    alice = new_user(platform)
    reply = generate(platform, admin, day(30), alice["id"])
    assert reply["message"] == "Serial number generated successfully"
    assert isinstance(reply["serial_code"], str) and isinstance(reply["serial_id"], int)
    code, serial_id = reply["serial_code"], reply["serial_id"]

    check = ok(platform, "GET", f"/api/serial/check/{code}", token=alice["token"])
    assert {"serial_code", "status", "issued_to"} <= set(check)
    assert check["serial_code"] == code
    assert check["status"] == "valid"
    assert check["issued_to"] == alice["email"]
    assert check["expiry_date"] == day(30)
    lower = ok(platform, "GET", f"/api/serial/check/{code.lower()}", token=alice["token"])
    assert lower["serial_id"] == serial_id

    bearer = generate(platform, admin, day(30))
    assert ok(platform, "GET", f"/api/serial/check/{bearer['serial_code']}",
              token=alice["token"])["issued_to"] is None

    reply = ok(platform, "PUT", f"/api/serial/update/{serial_id}",
               {"expiry_date": day(60)}, admin)
    assert reply["message"] == "Serial number updated successfully"
    assert ok(platform, "GET", f"/api/serial/check/{code}", token=admin)["expiry_date"] == \
        day(60)
    reply = ok(platform, "PUT", f"/api/serial/update/{serial_id}", {"status": "revoked"}, admin)
    assert reply["message"] == "Serial number updated successfully"
    assert ok(platform, "GET", f"/api/serial/check/{code}", token=admin)["status"] == "revoked"
    expect_error(redeem(platform, alice["token"], code), 409)

    reply = ok(platform, "DELETE", f"/api/serial/delete/{serial_id}", token=admin)
    assert reply == {"message": "Serial number deleted successfully"}
    expect_error(platform.request("GET", f"/api/serial/check/{code}", token=admin), 404)
    expect_error(platform.request("DELETE", f"/api/serial/delete/{serial_id}", token=admin),
                 404)


def test_serial_code_replacement_must_be_well_formed_and_free(platform, admin):
    first, second = generate(platform, admin), generate(platform, admin)
    expect_error(platform.request("PUT", f"/api/serial/update/{second['serial_id']}",
                                  {"serial_code": "XYZ789"}, token=admin), 400,
                 "Invalid serial code")
    expect_error(platform.request("PUT", f"/api/serial/update/{second['serial_id']}",
                                  {"serial_code": first["serial_code"]}, token=admin), 409)
    expect_error(platform.request("PUT", "/api/serial/update/999999",
                                  {"status": "revoked"}, token=admin), 404)


def test_bad_serial_input(platform, admin):
    alice = new_user(platform)
    expect_error(platform.request("POST", "/api/serial/generate",
                                  {"type": "rental", "expiry_date": day(0)}, token=admin), 400)
    expect_error(platform.request("POST", "/api/serial/generate",
                                  {"type": "gift", "expiry_date": day(3)}, token=admin), 400)
    expect_error(platform.request("POST", "/api/serial/generate",
                                  {"type": "rental", "expiry_date": "31/12/2030"}, token=admin),
                 400)
    expect_error(platform.request("POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": day(3), "user_id": 999999}, token=admin), 404)
    code = generate(platform, admin)["serial_code"]
    expect_error(platform.request("GET", f"/api/serial/check/{typo(code)}",
                                  token=alice["token"]), 400, "Invalid serial code")
    expect_error(redeem(platform, alice["token"], typo(code)), 400, "Invalid serial code")
    expect_error(redeem(platform, alice["token"], "ABC123"), 400, "Invalid serial code")
    expect_error(platform.request("GET", "/api/serial/check/0000000000000000000000000",
                                  token=alice["token"]), 400, "Invalid serial code")
    status, _ = platform.request("GET", f"/api/serial/check/{code}")
    assert status == 401
    # the code itself is still good after all that
    assert ok(platform, "GET", f"/api/serial/check/{code}", token=alice["token"])["status"] == \
        "valid"


# --- redeeming and rentals ---------------------------------------------------------------

def test_redeem_rental_info_and_both_histories(platform, admin):
    alice = new_user(platform)
    info = ok(platform, "GET", "/api/user/rental_info", token=alice["token"])
    assert info["user_id"] == alice["id"] and info["rental_status"] == "none"

    serial = generate(platform, admin, day(30), alice["id"])
    status, reply = redeem(platform, alice["token"], serial["serial_code"].lower())
    assert status == 200, reply
    assert reply["rental_status"] == "active" and reply["rental_expiry"] == day(30)
    rental_id = reply["rental_id"]
    expect_error(redeem(platform, alice["token"], serial["serial_code"]), 409)
    check = ok(platform, "GET", f"/api/serial/check/{serial['serial_code']}", token=admin)
    assert check["status"] == "used"

    info = ok(platform, "GET", "/api/user/rental_info", token=alice["token"])
    assert info == {**info, "user_id": alice["id"], "rental_status": "active",
                    "rental_expiry": day(30)}
    # the plan the serial sold (the default) and what is used of it, asked of containers and
    # traffic
    assert info["plan"]["is_default"] and info["plan"]["max_containers"] >= 1
    assert info["used"] == {**info["used"], "containers": 0, "traffic_bytes": 0,
                            "unavailable": []}
    row = {"rental_id": rental_id, "status": "active", "start_date": day(0),
           "end_date": day(30)}
    history = ok(platform, "GET", f"/api/rental/history/{alice['id']}", token=alice["token"])
    assert history["user_id"] == alice["id"]
    assert [{k: r[k] for k in row} for r in history["rental_history"]] == [row]
    history = ok(platform, "GET", f"/api/user/history/{alice['id']}", token=alice["token"])
    assert history["user_id"] == alice["id"]
    assert [{k: r[k] for k in row} for r in history["history"]] == [row]
    assert ok(platform, "GET", f"/api/rental/history/{alice['id']}", token=admin) == \
        ok(platform, "GET", f"/api/rental/history/{alice['id']}", token=alice["token"])


def test_a_serial_for_someone_else_or_a_shorter_one_is_refused(platform, admin):
    alice, bob = new_user(platform), new_user(platform)
    for_alice = generate(platform, admin, day(30), alice["id"])
    expect_error(redeem(platform, bob["token"], for_alice["serial_code"]), 403)
    rent(platform, admin, alice, day(40))
    expect_error(redeem(platform, alice["token"], for_alice["serial_code"]), 409)
    assert ok(platform, "GET", f"/api/serial/check/{for_alice['serial_code']}",
              token=admin)["status"] == "valid"
    distributor_code = generate(platform, admin, serial_type="distributor")["serial_code"]
    expect_error(redeem(platform, bob["token"], distributor_code), 400)


def test_renew_edit_and_delete_rentals(platform, admin):
    alice = new_user(platform)
    rental = rent(platform, admin, alice, day(20))
    rental_id = rental["rental_id"]

    reply = expect_error(platform.request("POST", "/api/rental/renew", {
        "rental_id": rental_id, "new_expiry_date": day(10)}, token=admin), 400)
    assert reply.get("details"), reply
    expect_error(platform.request("POST", "/api/rental/renew", {
        "rental_id": 999999, "new_expiry_date": day(90)}, token=admin), 404)
    reply = ok(platform, "POST", "/api/rental/renew",
               {"rental_id": rental_id, "new_expiry_date": day(90)}, admin)
    assert reply["message"] == "Rental renewed successfully"
    info = ok(platform, "GET", "/api/user/rental_info", token=alice["token"])
    assert info["rental_expiry"] == day(90) and info["rental_status"] == "active"
    # the history says the same word as the rental info; being renewed is renewed_at
    [row] = ok(platform, "GET", f"/api/rental/history/{alice['id']}",
               token=alice["token"])["rental_history"]
    assert (row["status"], row["end_date"]) == ("active", day(90)) and row["renewed_at"]
    [row] = ok(platform, "GET", f"/api/user/history/{alice['id']}",
               token=alice["token"])["history"]
    assert row["status"] == "active"
    reply = expect_error(platform.request("PUT", f"/api/rental/history/update/{rental_id}", {
        "status": "paused"}, token=admin), 400)
    assert reply["details"][0]["field"] == "status", reply

    expect_error(platform.request("PUT", f"/api/rental/history/update/{rental_id}", {
        "start_date": day(5), "end_date": day(1)}, token=admin), 400)
    expect_error(platform.request("PUT", "/api/rental/history/update/999999",
                                  {"status": "expired"}, token=admin), 404)
    reply = ok(platform, "PUT", f"/api/rental/history/update/{rental_id}",
               {"status": "renewed", "start_date": day(-10), "end_date": day(-2)}, admin)
    assert reply["message"] == "User rental history updated successfully"
    history = ok(platform, "GET", f"/api/rental/history/{alice['id']}", token=admin)
    # the seed's "renewed" is taken as active: the rental runs (until the sweep expires it)
    assert [(r["status"], r["start_date"], r["end_date"]) for r in history["rental_history"]] \
        == [("active", day(-10), day(-2))]

    expired = ok(platform, "GET", "/api/rental/check_expiry", token=admin)["expired_rentals"]
    assert {"rental_id": rental_id, "user_id": alice["id"], "expiry_date": day(-2)} in expired

    reply = ok(platform, "DELETE", f"/api/rental/delete/{rental['serial_id']}", token=admin)
    assert reply == {"message": "Rental deleted successfully", "rental_id": rental_id,
                     "user_id": alice["id"]}
    expect_error(platform.request("DELETE", f"/api/rental/delete/{rental['serial_id']}",
                                  token=admin), 404)
    assert ok(platform, "GET", f"/api/rental/history/{alice['id']}",
              token=admin)["rental_history"] == []

    second = rent(platform, admin, alice, day(15))
    reply = ok(platform, "DELETE", f"/api/rental/history/delete/{second['rental_id']}",
               token=admin)
    assert reply == {"message": "User rental history deleted successfully"}
    expect_error(platform.request("DELETE", f"/api/rental/history/delete/{second['rental_id']}",
                                  token=admin), 404)
    assert ok(platform, "GET", "/api/user/rental_info",
              token=alice["token"])["rental_status"] == "none"


# --- mail --------------------------------------------------------------------------------

def test_redeeming_and_an_expiry_notice_mail_the_user(platform, admin, module_smtp):
    alice = new_user(platform)
    rent(platform, admin, alice, day(25))
    started = module_smtp.wait_for(lambda m: (m["To"] or "").lower() == alice["email"]
                                   and "rental is active" in (m["Subject"] or ""))
    assert len(started) == 1 and day(25) in body_text(started[0])

    reply = ok(platform, "POST", "/api/rental/send_expiry_notifications",
               {"user_id": alice["id"], "expiry_date": day(25)}, admin)
    assert reply == {"message": "Expiry notification sent"}
    notices = module_smtp.wait_for(lambda m: (m["To"] or "").lower() == alice["email"]
                                   and "expiry date" in (m["Subject"] or ""))
    assert len(notices) == 1
    assert day(25) in body_text(notices[0])
    expect_error(platform.request("POST", "/api/rental/send_expiry_notifications",
                                  {"user_id": 999999, "expiry_date": day(25)}, token=admin),
                 404)
    settle(1.0)
    subjects = [m["Subject"] for m in mails_to(module_smtp, alice["email"])]
    assert subjects.count("Your Berth rental expiry date") == 1, subjects


# --- access ------------------------------------------------------------------------------

def test_a_plain_user_gets_403_on_every_admin_billing_route(platform, admin):
    alice = new_user(platform)
    rental = rent(platform, admin, alice, day(20))
    serial = generate(platform, admin)
    routes = [
        ("POST", "/api/serial/generate", {"type": "rental", "expiry_date": day(10)}),
        ("GET", "/api/serials", None),
        ("PUT", f"/api/serial/update/{serial['serial_id']}", {"status": "revoked"}),
        ("DELETE", f"/api/serial/delete/{serial['serial_id']}", None),
        ("GET", "/api/rental/check_expiry", None),
        ("POST", "/api/rental/send_expiry_notifications",
         {"user_id": alice["id"], "expiry_date": day(20)}),
        ("POST", "/api/rental/renew",
         {"rental_id": rental["rental_id"], "new_expiry_date": day(200)}),
        ("DELETE", f"/api/rental/delete/{rental['serial_id']}", None),
        ("PUT", f"/api/rental/history/update/{rental['rental_id']}", {"status": "expired"}),
        ("DELETE", f"/api/rental/history/delete/{rental['rental_id']}", None),
    ]
    for method, path, body in routes:
        expect_error(platform.request(method, path, body, token=alice["token"]), 403)
        status, _ = platform.request(method, path, body)
        assert status == 401, (method, path)
    # nothing changed
    assert ok(platform, "GET", f"/api/serial/check/{serial['serial_code']}",
              token=admin)["status"] == "valid"
    info = ok(platform, "GET", "/api/user/rental_info", token=alice["token"])
    assert (info["rental_status"], info["rental_expiry"]) == ("active", day(20))


def test_a_user_gets_403_on_another_users_records(platform, admin):
    alice, bob = new_user(platform), new_user(platform)
    rent(platform, admin, alice)
    for path in (f"/api/rental/history/{alice['id']}", f"/api/user/history/{alice['id']}"):
        expect_error(platform.request("GET", path, token=bob["token"]), 403)
    code = generate(platform, admin, serial_type="distributor")["serial_code"]
    expect_error(platform.request("POST", "/api/user/apply_distributor", {
        "user_id": alice["id"], "distributor_code": code}, token=bob["token"]), 403)
    assert ok(platform, "GET", f"/api/serial/check/{code}", token=admin)["status"] == "valid"


# --- distributors ------------------------------------------------------------------------

def distributor_token(platform, who) -> str:
    """The next login after the application answered 200 carries the role (billing has
    users grant it before answering)."""
    token = platform.login(who["username"], "user-password-1")
    assert jwt_claims(token)["role"] == "distributor", jwt_claims(token)
    return token


def default_plan_id(platform, admin) -> int:
    plans = ok(platform, "GET", "/api/plans?limit=200", token=admin)["plans"]
    return next(p["plan_id"] for p in plans if p["is_default"])


def allot(platform, admin, who, serials: int) -> dict:
    """An admin grants ``who`` (a distributor) ``serials`` serials of the default plan."""
    return ok(platform, "POST", f"/api/distributors/{who['id']}/allotments",
              {"plan_id": default_plan_id(platform, admin), "serials": serials}, admin)


def new_distributor(platform, admin, prefix: str = "dealer") -> tuple[dict, str]:
    """A user who applied a distributor serial, and their distributor token."""
    who = new_user(platform, prefix)
    code = generate(platform, admin, serial_type="distributor")["serial_code"]
    ok(platform, "POST", "/api/user/apply_distributor",
       {"user_id": who["id"], "distributor_code": code}, who["token"])
    return who, distributor_token(platform, who)


def test_a_distributor_issues_rental_serials_and_sees_only_its_own(platform, admin):
    dealer, rival = new_user(platform, "dealer"), new_user(platform, "dealer")
    for who in (dealer, rival):
        expect_error(platform.request("POST", "/api/serial/generate",
                                      {"type": "rental", "expiry_date": day(10)},
                                      token=who["token"]), 403)
        code = generate(platform, admin, serial_type="distributor")["serial_code"]
        reply = ok(platform, "POST", "/api/user/apply_distributor",
                   {"user_id": who["id"], "distributor_code": code}, who["token"])
        assert reply == {"message": "Distributor application successful"}
        expect_error(platform.request("POST", "/api/user/apply_distributor", {
            "user_id": who["id"], "distributor_code": code}, token=who["token"]), 409)

    dealer_token = distributor_token(platform, dealer)
    rival_token = distributor_token(platform, rival)
    for who in (dealer, rival):
        allot(platform, admin, who, 5)
    buyer, stranger = new_user(platform, "buyer"), new_user(platform, "buyer")
    mine = [generate(platform, dealer_token, day(30 + n)) for n in range(2)]
    # the buyer redeems the dealer's serial like any other
    status, reply = redeem(platform, buyer["token"], mine[0]["serial_code"])
    assert status == 200, reply
    assert reply["rental_expiry"] == day(30)
    # issue 15: a dealer names only their own customers (a stranger is a 404, as no user is)
    mine.append(generate(platform, dealer_token, day(60), buyer["id"]))
    expect_error(platform.request("POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": day(60), "user_id": stranger["id"]},
        token=dealer_token), 404)
    theirs = generate(platform, rival_token, day(30))
    expect_error(platform.request("POST", "/api/serial/generate",
                                  {"type": "distributor", "expiry_date": day(10)},
                                  token=dealer_token), 403)

    listed = ok(platform, "GET", "/api/serials?limit=100", token=dealer_token)
    assert listed["total"] == 3
    assert sorted(r["serial_id"] for r in listed["serials"]) == \
        sorted(s["serial_id"] for s in mine)
    assert {r["distributor_id"] for r in listed["serials"]} == {dealer["id"]}
    everything = []
    offset = 0
    while True:
        page = ok(platform, "GET", f"/api/serials?limit=100&offset={offset}", token=admin)
        everything += page["serials"]
        offset += len(page["serials"])
        if not page["serials"] or offset >= page["total"]:
            break
    ids = {r["serial_id"] for r in everything}
    assert {s["serial_id"] for s in mine} | {theirs["serial_id"]} <= ids
    assert len(ids) > 4  # the admin's own serials too

    # and the one issued to them, by name, extends their rental
    status, reply = redeem(platform, buyer["token"], mine[2]["serial_code"])
    assert status == 200, reply
    assert reply["rental_expiry"] == day(60)


def test_apply_distributor_with_a_rental_code_or_twice_is_refused(platform, admin):
    alice = new_user(platform)
    rental_code = generate(platform, admin)["serial_code"]
    expect_error(platform.request("POST", "/api/user/apply_distributor", {
        "user_id": alice["id"], "distributor_code": rental_code}, token=alice["token"]), 400,
        "Invalid distributor data")
    expect_error(platform.request("POST", "/api/user/apply_distributor", {
        "user_id": alice["id"]}, token=alice["token"]), 400, "Invalid distributor data")
    first, second = (generate(platform, admin, serial_type="distributor")["serial_code"]
                     for _ in range(2))
    ok(platform, "POST", "/api/user/apply_distributor",
       {"user_id": alice["id"], "distributor_code": first}, admin)
    token = distributor_token(platform, alice)
    expect_error(platform.request("POST", "/api/user/apply_distributor", {
        "user_id": alice["id"], "distributor_code": second}, token=token), 409)
    assert ok(platform, "GET", f"/api/serial/check/{second}", token=admin)["status"] == "valid"
    assert ok(platform, "GET", f"/api/serial/check/{first}", token=admin)["status"] == "used"


def test_a_distributor_sells_from_an_allotment_to_customers_it_then_sees(platform, admin):
    dealer, dealer_token = new_distributor(platform, admin)
    customer = new_user(platform, "customer")
    plan_id = default_plan_id(platform, admin)
    path = f"/api/distributors/{dealer['id']}/allotments"
    # only a distributor is granted an allotment, of a plan that exists; only an admin grants
    expect_error(platform.request("POST", f"/api/distributors/{customer['id']}/allotments",
                                  {"plan_id": plan_id, "serials": 2}, token=admin), 409)
    reply = expect_error(platform.request("POST", path, {"plan_id": 999999, "serials": 2},
                                          token=admin), 400)
    assert reply["details"][0]["field"] == "plan_id"
    expect_error(platform.request("POST", path, {"plan_id": plan_id, "serials": 2},
                                  token=dealer_token), 403)
    expect_error(platform.request("POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": day(30)}, token=dealer_token), 409)  # none yet

    granted = allot(platform, admin, dealer, 2)["allotment"]
    assert (granted["unit"], granted["serials_left"]) == ("serials", 2)
    expect_error(platform.request("POST", path, {"plan_id": plan_id, "serials": -3},
                                  token=admin), 409)  # never below zero
    mine = ok(platform, "GET", path, token=dealer_token)["allotments"]
    assert [(a["plan_id"], a["serials_left"]) for a in mine] == [(plan_id, 2)]
    expect_error(platform.request("GET", f"/api/distributors/{customer['id']}/allotments",
                                  token=dealer_token), 403)

    # beyond the horizon (BERTH_DISTRIBUTOR_MAX_DAYS, 366 by default): 400, nothing spent
    reply = expect_error(platform.request("POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": day(400)}, token=dealer_token), 400)
    assert reply["details"][0]["field"] == "expiry_date"
    first, second = (generate(platform, dealer_token, day(30 + n)) for n in range(2))
    reply = expect_error(platform.request("POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": day(30)}, token=dealer_token), 409)
    assert "plan standard" in reply["error"] and "0 serials left" in reply["error"]
    assert ok(platform, "GET", path, token=admin)["allotments"][0]["serials_left"] == 0

    # the dealer cannot buy from themselves; the serial stays for the customer
    expect_error(redeem(platform, dealer_token, first["serial_code"]), 403)
    assert ok(platform, "GET", f"/api/serial/check/{first['serial_code']}",
              token=admin)["status"] == "valid"
    status, redeemed = redeem(platform, customer["token"], first["serial_code"])
    assert status == 200, redeemed

    sales = ok(platform, "GET", "/api/distributor/sales", token=dealer_token)
    assert sales["total"] == 1
    [sale] = sales["sales"]
    assert sale["serial_id"] == first["serial_id"]
    assert sale["customer"] == {"user_id": customer["id"], "username": customer["username"]}
    assert sale["rental"] == {"rental_id": redeemed["rental_id"], "status": "active",
                              "end_date": day(30)}
    assert sales["summary"] == {"issued": 2, "redeemed": 1, "customers": 1,
                                "active_rentals": 1}
    assert customer["email"] not in str(sales) and "@" not in str(sales)
    assert second["serial_id"] not in [s["serial_id"] for s in sales["sales"]]
    as_admin = ok(platform, "GET", f"/api/distributor/sales?distributor_id={dealer['id']}",
                  token=admin)
    assert as_admin["sales"] == sales["sales"]
    expect_error(platform.request("GET", f"/api/distributor/sales?distributor_id="
                                         f"{customer['id']}", token=dealer_token), 403)
    expect_error(platform.request("GET", "/api/distributor/sales",
                                  token=customer["token"]), 403)

    # the grants are in the audit log, as the dealer's; spending is not an event
    def grants():
        rows = ok(platform, "GET", f"/api/logs/system?limit=200&action=allotment_changed"
                                   f"&user_id={dealer['id']}", token=admin)["logs"]
        return rows if len(rows) >= 1 else None
    [entry] = poll(grants, what="the allotment_changed audit row")
    assert entry["source"] == "event" and entry["subject"] == {"type": "user",
                                                                "id": str(dealer["id"])}
    assert "+2 serials, 2 left" in entry["message"]
