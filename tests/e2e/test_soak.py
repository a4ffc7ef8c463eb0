"""Soak: a bounded run of a mixed, realistic workload through the gateway (loopback only),
sampling every process's resident memory. Passes when no request fails (every reply is the
one its scenario expects) and no process's memory keeps growing. Prints the figures.

``BERTH_SOAK_SECONDS`` (default 90) sets the length of the loaded phase.
"""
from __future__ import annotations

import datetime as dt
import os
import random
import statistics
import threading
import time
from pathlib import Path

import pytest

from tests.support import report, rmtree, running_platform

pytestmark = pytest.mark.e2e

SECONDS = float(os.environ.get("BERTH_SOAK_SECONDS", "90"))
CLIENTS = 6
WARM_UP = 0.25  # the first quarter of the run fills caches and pools: not judged


def rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants (gunicorn's workers)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


class Workload:
    """What customers and an operator do all day, each step checked for its expected status."""

    def __init__(self, stack, admin_token: str):
        self.stack = stack
        self.admin = admin_token
        self.counts: dict[str, int] = {}
        self.failures: list[str] = []
        self.lock = threading.Lock()

    def call(self, label, method, path, body=None, token=None, expect=(200,)):
        status, reply = self.stack.request(method, path, body, token=token, timeout=30)
        with self.lock:
            key = f"{label} {status}"
            self.counts[key] = self.counts.get(key, 0) + 1
            if status not in expect:
                self.failures.append(f"{method} {path} -> {status} {str(reply)[:200]}")
        return reply

    def customer(self, n: int, stop: threading.Event):
        rng = random.Random(n)
        name = f"soak{n}"
        password = "soak-password-1"
        self.call("register", "POST", "/api/add_user", {
            "username": name, "password": password, "email": f"{name}@example.com"})
        token = self.call("login", "POST", "/api/login",
                          {"username": name, "password": password})["token"]
        user_id = self.call("rental_info", "GET", "/api/user/rental_info",
                            token=token)["user_id"]
        self.call("acl", "POST", "/api/acl/generate", {"user_id": user_id,
                                                       "permissions": ["read"]},
                  token=self.admin)
        today = dt.datetime.now(dt.timezone.utc).date()
        day = 30
        while not stop.is_set():
            choice = rng.random()
            if choice < 0.30:
                self.call("acl_info", "GET", f"/api/security/user_acl_info/{user_id}",
                          token=token)
            elif choice < 0.45:
                self.call("containers", "GET", "/api/containers", token=token)
            elif choice < 0.55:
                self.call("traffic", "GET", f"/api/traffic/history/{user_id}", token=token)
            elif choice < 0.65:
                self.call("history", "GET", f"/api/rental/history/{user_id}", token=token)
            elif choice < 0.75:
                day += 1
                serial = self.call("generate", "POST", "/api/serial/generate", {
                    "type": "rental", "user_id": user_id,
                    "expiry_date": (today + dt.timedelta(days=day)).isoformat()},
                    token=self.admin)
                self.call("check", "GET", f"/api/serial/check/{serial['serial_code']}",
                          token=token)
                self.call("redeem", "POST", "/api/serial/redeem",
                          {"serial_code": serial["serial_code"]}, token=token)
            elif choice < 0.82:
                self.call("acl_update", "POST", "/api/acl/update", {
                    "user_id": user_id, "permissions": [f"topic.{rng.randint(1, 9)}"]},
                    token=self.admin)
            elif choice < 0.87:
                self.call("bad_login", "POST", "/api/login",
                          {"username": name, "password": "wrong-password"}, expect=(401, 429))
            elif choice < 0.92:
                self.call("alerts", "GET", "/api/alerts/realtime", token=self.admin)
            elif choice < 0.96:
                self.call("logs", "GET", f"/api/logs/user_by_time?user_id={user_id}&start="
                                         f"{today.isoformat()}&end={today.isoformat()}",
                          token=token)
            else:
                token = self.call("login", "POST", "/api/login",
                                  {"username": name, "password": password},
                                  expect=(200, 429)).get("token", token)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, amqp_uri, module_smtp):
    folder = tmp_path_factory.mktemp("soak")
    with running_platform(folder, amqp_uri, smtp_port=module_smtp.port) as platform:
        yield platform
    rmtree(folder)


def test_memory_stays_flat_and_nothing_fails_under_a_mixed_load(stack):
    workload = Workload(stack, stack.admin_token())
    stop = threading.Event()
    clients = [threading.Thread(target=workload.customer, args=(n, stop), daemon=True)
               for n in range(CLIENTS)]
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in stack.procs}
    started = time.monotonic()
    for client in clients:
        client.start()
    while time.monotonic() - started < SECONDS:
        now = time.monotonic() - started
        for name, proc in stack.procs.items():
            samples[name].append((now, rss_kib(proc.pid)))
        time.sleep(2)
    stop.set()
    for client in clients:
        client.join(60)
    elapsed = time.monotonic() - started

    total = sum(workload.counts.values())
    lines = [f"soak: {elapsed:.0f} s, {CLIENTS} clients, {total} requests "
             f"({total / elapsed:.0f}/s), {len(workload.failures)} unexpected replies"]
    for key in sorted(workload.counts):
        lines.append(f"  {key}: {workload.counts[key]}")
    growth = {}
    for name, points in samples.items():
        judged = [kib for t, kib in points if t >= WARM_UP * SECONDS]
        third = max(1, len(judged) // 3)
        early, late = statistics.median(judged[:third]), statistics.median(judged[-third:])
        growth[name] = (early, late)
        lines.append(f"  rss {name}: start {points[0][1] / 1024:.1f} MiB, after warm-up "
                     f"{early / 1024:.1f} MiB, end {late / 1024:.1f} MiB "
                     f"({(late - early) / 1024:+.1f} MiB)")
    report(*lines)
    assert not workload.failures, workload.failures[:10]
    assert total > 20 * CLIENTS  # the load really ran
    for name, (early, late) in growth.items():
        # flat: within 10 % (and 8 MiB) of the level reached after warm-up
        assert late <= early * 1.10 + 8 * 1024, (name, early, late)
