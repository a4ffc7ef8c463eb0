"""The console's distributor and operator areas (issue 17, items 4, 5 and 7) in a real headless
Chromium against the running platform (no Docker engine): a distributor generates serials from
their allotment (an incomplete form refused before it is sent; copy, CSV), a customer redeems
one and the distributor sees the sale; an operator opens the dashboard, fails over (confirmed,
with the list of actions), is refused an invalid server and plan before they are sent, adds a
plan, disables a user (cancelled once, then confirmed) and reads the audit log filtered by
actor; 390 px wide nothing scrolls sideways. No console error, nothing from outside, every
control labelled. The journeys are in ``console_area_journeys.py``; the screenshots go to
folders this test reports."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import report

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def built_console():
    """The console as the platform serves it (web/dist), built by `make web` if stale."""
    done = subprocess.run(["make", "--no-print-directory", "web"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def journey(platform, name: str, **arguments) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "tests.e2e.console_area_journeys", name], cwd=ROOT,
        input=json.dumps({"origin": platform.url, **arguments}), capture_output=True,
        text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["problems"] == [], seen["problems"]
    assert seen["foreign"] == [], seen["foreign"]
    assert len(seen["aborted"]) <= 5, seen["aborted"]  # queries the page gave up: a few
    assert seen["unlabelled"] == {}, seen["unlabelled"]
    return seen


def ok(platform, method, path, body=None, token=None):
    status, reply = platform.request(method, path, body, token=token)
    assert status == 200, (method, path, status, reply)
    return reply


def test_a_distributor_sells_serials_a_customer_redeems(platform, tmp_path_factory):
    admin = platform.admin_token()
    plan = ok(platform, "POST", "/api/plans", {
        "name": "area-resale", "cpus": 0.5, "memory_mib": 128, "pids_limit": 64,
        "max_containers": 1, "max_ports": 1, "log_max_mib": 5}, admin)["plan"]
    dist_id, _ = platform.new_user("area-dist", "distributor password 1")
    ok(platform, "PUT", f"/api/users/{dist_id}", {"role": "distributor"}, admin)
    ok(platform, "POST", f"/api/distributors/{dist_id}/allotments",
       {"plan_id": plan["plan_id"], "serials": 5}, admin)

    shots = tmp_path_factory.mktemp("console-distributor-screenshots")
    seen = journey(platform, "distributor_generates", shots=str(shots), username="area-dist",
                   password="distributor password 1", plan="area-resale")
    report(f"console distributor journey screenshots: {shots}")

    assert seen["who"] == "Signed in as area-dist (distributor)"
    assert seen["nav"] == ["My rental", "My containers", "Traffic", "My account",
                           "Distributor"]  # no operator area
    assert seen["left_before"] == "5 serials left"
    assert seen["sales_before"].startswith("None of your serials")
    assert seen["sent_invalid"] == []  # refused in the page
    assert "Choose a plan" in seen["refused_errors"]
    assert "A whole number from 1 to 100" in seen["refused_errors"]
    assert seen["generate_calls"] == 3 and len(set(seen["codes"])) == 3
    assert seen["left_after"] == "2 serials left"
    assert seen["clipboard"].split("\n") == seen["codes"]
    assert seen["csv_name"].startswith("berth-serials-") and seen["csv_name"].endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(seen["csv"])))
    assert [row["serial_code"] for row in rows] == seen["codes"]
    assert {row["plan_id"] for row in rows} == {str(plan["plan_id"])}
    assert all("valid" in text.lower() for text in seen["listed"])
    assert seen["overflow_390"] <= 0
    # what the API says the distributor holds
    listed = ok(platform, "GET", "/api/serials", token=platform.login(
        "area-dist", "distributor password 1"))
    assert {s["serial_code"] for s in listed["serials"]} == set(seen["codes"])

    _, customer = platform.new_user("area-buyer", "buyer password 1")
    ok(platform, "POST", "/api/serial/redeem", {"serial_code": seen["codes"][0]}, customer)
    sales = journey(platform, "distributor_sales", shots=str(shots), username="area-dist",
                    password="distributor password 1")
    assert [c.split()[0] for c in sales["customers"]] == ["area-buyer"]
    assert "3" in sales["summary"] and "1" in sales["summary"]  # issued, redeemed


def test_an_operator_runs_the_platform_from_the_console(platform, tmp_path_factory):
    admin = platform.admin_token()
    victim_id, victim = platform.new_user("area-victim", "victim password 1")
    soon = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=3)
    serial = ok(platform, "POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": soon.isoformat()}, admin)["serial_code"]
    ok(platform, "POST", "/api/serial/redeem", {"serial_code": serial}, victim)
    expiring = ok(platform, "GET", "/api/rental/expiring", token=admin)
    assert [(r["username"], r["days_left"]) for r in expiring["rentals"]
            if r["user_id"] == victim_id] == [("area-victim", 3)]
    admin_id = ok(platform, "GET", "/api/users", token=admin)
    [me] = [u for u in admin_id["users"] if u["username"] == platform.admin["username"]]

    shots = tmp_path_factory.mktemp("console-operator-screenshots")
    seen = journey(platform, "operator", shots=str(shots), username=platform.admin["username"],
                   password=platform.admin["password"], admin_id=me["user_id"],
                   victim="area-victim")
    report(f"console operator journey screenshots: {shots}")

    assert seen["nav"][:5] == ["My rental", "My containers", "Traffic", "My account",
                               "Distributor"]
    assert seen["nav"][5:] == ["Dashboard", "Servers", "All containers", "Users",
                               "Plans and images", "Serials", "Rentals", "Alerts and rules",
                               "Audit log", "Traffic"]
    dash = seen["dashboard"]
    assert dash["servers-online"].endswith("0") and dash["servers-offline"].endswith("0")
    assert dash["alerts-open"].split()[-1].isdigit()
    assert dash["monitoring-status"].lower() in ("healthy", "degraded", "unhealthy")
    assert dash["traffic-in"].endswith("0 B")
    assert dash["rentals-expiring"].startswith("Rentals ending this week")
    assert int(dash["rentals-expiring"].split()[-1]) == expiring["total"] >= 1
    assert "Fail over" in seen["failover_confirm"] and "Cancel" in seen["failover_confirm"]
    assert "Nothing needed doing." in seen["failover_result"]
    assert seen["server_sent"] == []
    assert seen["server_errors"] == [
        "Letters, digits and _ . - (starting with a letter or digit), at most 64 characters",
        "An IPv4 or IPv6 address", "A client certificate needs its key"]
    assert seen["plan_errors"] == ["Required"] and seen["plan_sent_invalid"] == []
    assert "area plan" in seen["plan_row"]
    plans = ok(platform, "GET", "/api/plans", token=admin)["plans"]
    assert [p["cpus"] for p in plans if p["name"] == "area plan"] == [1]
    assert "Disable area-victim?" in seen["disable_confirm"]
    assert seen["sent_after_cancel"] == []
    assert "disabled" in seen["victim_row"].lower()
    users = ok(platform, "GET", "/api/users", token=admin)["users"]
    assert [u["disabled"] for u in users if u["user_id"] == victim_id] == [True]
    assert f"user_id={me['user_id']}" in seen["audit_request"]
    assert seen["audit_actors"] and all(
        a.startswith(platform.admin["username"]) for a in seen["audit_actors"])
    assert any(f"#{victim_id}" in row for row in seen["audit_rows"])
    assert seen["overflow_dashboard_390"] <= 0 and seen["overflow_users_390"] <= 0
    assert len(seen["screenshots"]) >= 10
