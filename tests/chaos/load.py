"""A steady, realistic mixed load over HTTP, every request's outcome recorded, and the check
that every acknowledged operation (a 2xx) happened exactly once.

Each client thread walks customers through their life: register, log in, have a serial issued
to them (admin), redeem it, get an ACL and change it (admin), and reads in between. A step
that is not acknowledged (503, timeout) leaves that customer "ambiguous" for the step (it may
or may not have happened, but at most once) and the thread moves to a new customer, so every
acknowledged step can be checked against the system's own state afterwards:

* an acknowledged registration can log in, and its verification mail arrives exactly once;
* an acknowledged serial is the only serial issued to that customer (at most one otherwise);
* an acknowledged redeem is the customer's only rental, with that rental id;
* each acknowledged ACL change (a unique permission) is in the user's ACL history once;
* the audit log holds one row per acknowledged write, per route, none lost, none twice.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import socket
import threading
import time
import urllib.error
from collections import Counter, defaultdict

from tests.e2e.helpers import to_address
from tests.support import poll

VERIFY_SUBJECT = "Verify your e-mail address"
RENTAL_SUBJECT = "Your Berth rental is active"
# writes whose audit rows are counted (a login is audited too, but verify() logs in itself)
WRITE_ROUTES = ("/api/add_user", "/api/serial/generate", "/api/serial/redeem",
                "/api/acl/generate", "/api/acl/update")


@dataclasses.dataclass
class Outcome:
    op: str
    route: str
    phase: str
    started: float  # monotonic
    latency: float
    status: int  # 0: no HTTP answer (connection error or client timeout)


@dataclasses.dataclass
class Customer:
    username: str
    email: str
    password: str = "chaos-password-1"
    registered: bool | None = None  # None: not acknowledged (may or may not exist)
    user_id: int | None = None
    token: str | None = None
    serial: dict | None = None
    serial_ambiguous: bool = False
    rental: dict | None = None
    redeem_ambiguous: bool = False
    acl_acked: list[str] = dataclasses.field(default_factory=list)
    acl_tried: list[str] = dataclasses.field(default_factory=list)


class Load:
    """``with Load(platform, admin_token, tag) as load: load.phase = "outage" ...``."""

    CLIENT_TIMEOUT = 30.0

    def __init__(self, platform, admin_token: str, tag: str, threads: int = 4,
                 pause: float = 0.05, ops: tuple[str, ...] | None = None):
        self.platform = platform
        self.admin_token = admin_token
        self.tag = tag
        self.threads = threads
        self.pause = pause
        self.ops = ops
        self.phase = "before"
        self.outcomes: list[Outcome] = []
        self.customers: list[Customer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._names = itertools.count(1)
        self._perms = itertools.count(1)
        self.started_at = dt.datetime.now(dt.timezone.utc)

    # -- running
    def __enter__(self) -> Load:
        # the audit is asked for rows since a whole second (``_audit_rows``): the load starts
        # at the next one, so no write of an earlier test on the same platform is counted
        now = dt.datetime.now(dt.timezone.utc)
        self.started_at = now.replace(microsecond=0) + dt.timedelta(seconds=1)
        time.sleep((self.started_at - now).total_seconds())
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, name=f"load-{n}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.CLIENT_TIMEOUT + 5)
        self._workers = []

    def _request(self, op: str, route: str, method: str, path: str, body=None,
                 token: str | None = None):
        phase = self.phase
        began = time.monotonic()
        try:
            status, reply = self.platform.request(method, path, body, token=token,
                                                  timeout=self.CLIENT_TIMEOUT)
        except (urllib.error.URLError, socket.timeout, ConnectionError, OSError):
            status, reply = 0, None
        with self._lock:
            self.outcomes.append(Outcome(op, route, phase, began, time.monotonic() - began,
                                         status))
        return status, reply

    def _new_customer(self) -> Customer:
        name = f"{self.tag}{next(self._names)}"
        customer = Customer(username=name, email=f"{name}@example.com")
        with self._lock:
            self.customers.append(customer)
        return customer

    def _run(self) -> None:
        customer = self._new_customer()
        while not self._stop.is_set():
            try:
                if not self._step(customer):
                    customer = self._new_customer()
            except Exception as exc:  # noqa: BLE001 - a bug in the load must show, not hang
                with self._lock:
                    self.outcomes.append(Outcome(f"load-error {exc!r}", "-", self.phase,
                                                 time.monotonic(), 0, -1))
                customer = self._new_customer()
            self._stop.wait(self.pause)

    def _step(self, c: Customer) -> bool:
        """One request for customer ``c``; False when the customer is done or ambiguous."""
        admin = self.admin_token
        if c.registered is None and c.user_id is None:
            status, reply = self._request("register", "/api/add_user", "POST", "/api/add_user",
                                          {"username": c.username, "password": c.password,
                                           "email": c.email})
            if status == 200:
                c.registered, c.user_id = True, reply["user_id"]
                return True
            return False
        if c.token is None:
            status, reply = self._request("login", "/api/login", "POST", "/api/login",
                                          {"username": c.username, "password": c.password})
            if status == 200:
                c.token = reply["token"]
            return True  # a login may be retried: it changes nothing but the audit log
        # reads between the writes
        self._request("read users", "/api/users", "GET", "/api/users?limit=5", token=admin)
        self._request("read rental", "/api/user/rental_info", "GET", "/api/user/rental_info",
                      token=c.token)
        if c.serial is None:
            expiry = (dt.date.today() + dt.timedelta(days=30)).isoformat()
            status, reply = self._request("generate", "/api/serial/generate", "POST",
                                          "/api/serial/generate",
                                          {"type": "rental", "expiry_date": expiry,
                                           "user_id": c.user_id}, token=admin)
            if status == 200:
                c.serial = reply
                return True
            c.serial_ambiguous = True
            return False
        if c.rental is None:
            status, reply = self._request("redeem", "/api/serial/redeem", "POST",
                                          "/api/serial/redeem",
                                          {"serial_code": c.serial["serial_code"]},
                                          token=c.token)
            if status == 200:
                c.rental = reply
                return True
            c.redeem_ambiguous = True
            return False
        self._request("read acl", "/api/security/user_acl_info", "GET",
                      f"/api/security/user_acl_info/{c.user_id}", token=c.token)
        if len(c.acl_tried) >= 3:
            return False  # this customer's life is complete
        permission = f"chaos.p{next(self._perms)}"
        route = "/api/acl/generate" if not c.acl_tried else "/api/acl/update"
        c.acl_tried.append(permission)
        status, _ = self._request("acl", route, "POST", route,
                                  {"user_id": c.user_id, "permissions": [permission]},
                                  token=admin)
        if status == 200:
            c.acl_acked.append(permission)
            return True
        return False

    # -- figures
    def by_phase(self) -> dict[str, Counter]:
        table: dict[str, Counter] = defaultdict(Counter)
        for o in self.outcomes:
            kind = "2xx" if 200 <= o.status < 300 else "503" if o.status == 503 else \
                "no answer" if o.status == 0 else str(o.status)
            table[o.phase][kind] += 1
        return table

    def summary(self) -> list[str]:
        lines = []
        for phase, counts in self.by_phase().items():
            latencies = [o.latency for o in self.outcomes if o.phase == phase]
            lines.append(f"  {phase:>10}: " + ", ".join(f"{k} {v}" for k, v in
                                                       sorted(counts.items()))
                         + f"; max latency {max(latencies):.2f} s")
        return lines

    def report_phases(self, say) -> None:
        """The summary, in the figures (``say``: the ``chaos_report`` fixture)."""
        say("observed requests by phase (phase = when the request was sent):")
        for line in self.summary():
            say(line)

    def unexpected(self) -> list[Outcome]:
        """Anything but a 2xx or 503: a 500, a client error the load never provokes, no
        answer at all (a hang past the client timeout), or a bug in the load itself."""
        return [o for o in self.outcomes if not (200 <= o.status < 300 or o.status == 503)]

    def acked(self, route: str) -> int:
        return sum(1 for o in self.outcomes if o.route == route and 200 <= o.status < 300)

    # -- verification against the system's own state
    def verify(self, smtp=None, wait: float = 45.0) -> list[str]:
        """Check every acknowledged operation happened exactly once; returns what was
        checked (lines for the report). Raises AssertionError on the first violation."""
        p, admin = self.platform, self.admin_token
        registered = [c for c in self.customers if c.registered]
        for c in registered:
            status, reply = p.request("POST", "/api/login",
                                      {"username": c.username, "password": c.password})
            assert status == 200, f"acknowledged registration {c.username} cannot log in: " \
                                  f"{status} {reply}"
        serials = _all_pages(p, "/api/serials", "serials", admin)
        issued = Counter((s.get("issued_to") or "").lower() for s in serials)
        for c in self.customers:
            if c.serial:
                assert issued[c.email] == 1, (c.username, issued[c.email], c.serial)
                status, reply = p.request("GET", f"/api/serial/check/{c.serial['serial_code']}",
                                          token=admin)
                assert status == 200 and reply["serial_id"] == c.serial["serial_id"], reply
            else:
                assert issued[c.email] <= 1, (c.username, issued[c.email])
            if c.user_id is None:
                continue
            status, history = p.request("GET", f"/api/rental/history/{c.user_id}", token=admin)
            assert status == 200, history
            rentals = history["rental_history"]
            if c.rental:
                assert [r["rental_id"] for r in rentals] == [c.rental["rental_id"]], \
                    (c.username, rentals, c.rental)
            else:
                assert len(rentals) <= 1, (c.username, rentals)
            if c.acl_tried:
                logs = _all_pages(p, f"/api/acl/logs/{c.user_id}", "logs", admin)
                seen = Counter(perm for row in logs if row["action"] in ("created", "updated")
                               for perm in row["permissions"])
                for perm in c.acl_acked:
                    assert seen[perm] == 1, (c.username, perm, logs)
                for perm in c.acl_tried:
                    assert seen[perm] <= 1, (c.username, perm, logs)
        checked = [f"{len(registered)} acknowledged registrations log in",
                   f"{sum(1 for c in self.customers if c.serial)} acknowledged serials exist "
                   f"once (no customer has two)",
                   f"{sum(1 for c in self.customers if c.rental)} acknowledged redeems have "
                   f"exactly one rental",
                   f"{sum(len(c.acl_acked) for c in self.customers)} acknowledged ACL changes "
                   f"logged once"]
        if smtp is not None:
            def mails(subject: str) -> Counter:
                return Counter(to_address(m) for m in smtp.messages()
                               if subject in (m["Subject"] or ""))
            rented = [c for c in self.customers if c.rental]

            def still_unmailed() -> list[tuple[str, str]]:
                verify, started = mails(VERIFY_SUBJECT), mails(RENTAL_SUBJECT)
                return [(c.username, VERIFY_SUBJECT) for c in registered
                        if not verify[c.email]] + [(c.username, RENTAL_SUBJECT)
                                                   for c in rented if not started[c.email]]
            poll(still_unmailed, until=lambda missing: not missing, timeout=wait, interval=0.5,
                 what="a mail for every acknowledged registration and redeem (last: missing)")
            time.sleep(2)  # a retry of the mail relay would show as a second message
            for subject, acked in ((VERIFY_SUBJECT, registered), (RENTAL_SUBJECT, rented)):
                counts = mails(subject)
                wrong = [(c.username, counts[c.email]) for c in acked if counts[c.email] != 1]
                assert not wrong, f"{subject!r} mail not exactly once: {wrong}"
                assert all(n <= 1 for n in counts.values()), (subject, counts)
            checked.append(f"{len(registered)} verification mails and {len(rented)} rental "
                           f"mails arrived exactly once")
        want = {route: self.acked(route) for route in WRITE_ROUTES}
        poll(lambda: {route: self._audit_rows(route) for route in WRITE_ROUTES},
             until=lambda audit: audit == want, timeout=wait, interval=1,
             what=f"audit rows per route to match the acknowledged writes {want}")
        checked.append(f"audit: one row per acknowledged write ({sum(want.values())})")
        return checked

    def verify_and_report(self, smtp, say) -> None:
        """``verify``, then what it checked and how long that took, in the figures."""
        began = time.monotonic()
        for line in self.verify(smtp):
            say(f"verified: {line}")
        say(f"verification took {time.monotonic() - began:.1f} s")

    def _audit_rows(self, route: str) -> int:
        since = self.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        status, reply = self.platform.request(
            "GET", f"/api/logs/system?source=api&action=POST%20{route}&since={since}&limit=1",
            token=self.admin_token)
        assert status == 200, reply
        return reply["total"]


def _all_pages(platform, path: str, key: str, token: str) -> list[dict]:
    rows, offset = [], 0
    joiner = "&" if "?" in path else "?"
    while True:
        status, reply = platform.request("GET", f"{path}{joiner}limit=200&offset={offset}",
                                         token=token)
        assert status == 200, (path, status, reply)
        rows += reply[key]
        offset += len(reply[key])
        if not reply[key] or offset >= reply.get("total", offset):
            return rows
