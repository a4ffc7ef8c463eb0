"""Container-create benchmark: ``make bench-containers`` (``python -m benchmarks.containers``).

It starts a private platform as benchmarks.gateway does (benchmarks.common.own_platform),
registers the local Docker engine as a server, and as admin adds the offline test image
(tests.docker_support.TEST_IMAGE: the host's static busybox serving files on port 80, loaded
without a registry) to the image catalogue, makes a plan offering it, and generates a rental
serial for that plan, which a new customer redeems. Then, one request at a time, alternating:

  customer  POST /api/containers {"container_name", "image"} with the customer's token: the
            containers service asks billing for the rental's plan, checks the image against
            its catalogue and the container count, picks the server and a free host port for
            the image's port 80, creates the copy confined under the plan's limits on the
            engine's berth network and starts it
  admin     the same as admin for the admin's own container, with a host port it names (no
            question to billing: an admin's container has the operator's default limits)

Each create's HTTP round trip is timed, from opening the connection (loopback, ~0.1 ms) to
the whole answer read. The image is on the host already, so nothing is pulled. After each
create the container is deleted through the API (not timed), so every create finds the host
as the one before did; ``--keep`` keeps them all until the end instead (the plan allows every
one). One create of each kind before the measured ones is a warm-up (the services' first
engine connection, the berth network) and printed apart. Beside the latency it prints the
CPU the whole machine and the platform (gateway and services) used during the creates, per
create (other load on the machine shows up in the first).

Printed per kind: count, p50, p95, max, mean (nearest-rank percentiles). Benchmarks print
figures and never judge them: the exit status is 1 only when a create was not answered 200,
2 when the platform did not start or the setup (server, image, plan, serial) was refused.

Everything it made goes at the end, also on an error or Ctrl-C: the containers (through the
API, then whatever of its names is still on the engine) and the platform. Not beside the
Docker tests on the same engine: they remove every container labelled berth.managed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import sys
import time
import uuid

from benchmarks.common import (ROOT, PlatformFailed, busy_before, cpu_seconds, http_json,
                               machine, machine_cpu_seconds, machine_line, own_platform,
                               percentile)

RESULTS = ROOT / "var" / "bench-containers.json"
CUSTOMER = {"username": "bench-customer", "password": "bench-password-1",
            "email": "bench-customer@example.com"}
PLAN_LIMITS = {"cpus": 0.5, "memory_mib": 64, "pids_limit": 64, "max_ports": 1,
               "log_max_mib": 3}
MAX_CONTAINERS = 1000  # the most a plan may allow (billing's schema)


class BenchError(RuntimeError):
    """A request the benchmark needed was refused."""


def ok(stack, method: str, path: str, body=None, token: str | None = None) -> dict:
    status, reply = stack.request(method, path, body, token=token)
    if status != 200:
        raise BenchError(f"{method} {path}: {status} {reply}")
    return reply


class Run:
    """One kind of create: its timings and what it left on the platform."""

    def __init__(self, kind: str, token: str, body_for):
        self.kind, self.token, self.body_for = kind, token, body_for
        self.latency: list[float] = []
        self.warmup: float | None = None
        self.machine_cpu = 0.0
        self.platform_cpu = 0.0
        self.failures: list[str] = []
        self.kept: list[str] = []

    def summary(self) -> dict:
        values = sorted(self.latency)
        n = len(values)
        return {"kind": self.kind, "count": n,
                "p50_ms": percentile(values, 50) * 1000, "p95_ms": percentile(values, 95) * 1000,
                "max_ms": values[-1] * 1000 if values else float("nan"),
                "mean_ms": statistics.fmean(values) * 1000 if values else float("nan"),
                "warmup_ms": self.warmup * 1000 if self.warmup is not None else None,
                "machine_cpu_s_per_create": self.machine_cpu / n if n else float("nan"),
                "platform_cpu_s_per_create": self.platform_cpu / n if n else float("nan"),
                "failures": self.failures}


def setup(stack, docker_url: str, max_containers: int) -> tuple[str, str]:
    """The server, catalogue image, plan and redeemed serial: (admin token, customer token)."""
    from tests.docker_support import TEST_IMAGE

    admin = stack.admin_token()
    ok(stack, "POST", "/api/add_server", {"server_name": "local", "ip_address": "127.0.0.1",
                                          "docker_url": docker_url, "status": "online"}, admin)
    image = ok(stack, "POST", "/api/images", {"reference": TEST_IMAGE, "display_name": "web",
                                              "container_port": 80}, admin)["image"]
    plan = ok(stack, "POST", "/api/plans", {"name": "bench", **PLAN_LIMITS,
                                            "max_containers": max_containers,
                                            "image_ids": [image["image_id"]]}, admin)["plan"]
    expiry = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    serial = ok(stack, "POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": expiry, "plan_id": plan["plan_id"]}, admin)
    ok(stack, "POST", "/api/add_user", CUSTOMER)
    customer = stack.login(CUSTOMER["username"], CUSTOMER["password"])
    ok(stack, "POST", "/api/serial/redeem", {"serial_code": serial["serial_code"]}, customer)
    return admin, customer


def create_once(stack, run: Run, name: str, sessions: set[int], timed: bool) -> None:
    body = run.body_for(name)
    in_platform = (lambda comm, session: session in sessions)
    platform0 = cpu_seconds(in_platform)  # (scanning /proc costs: outside the machine's window)
    machine0 = machine_cpu_seconds()
    started = time.perf_counter()
    try:
        status, reply = http_json(stack.url, "POST", "/api/containers", body, run.token,
                                  timeout=60)
    except OSError as exc:
        status, reply = 0, f"{type(exc).__name__}: {exc}"
    elapsed = time.perf_counter() - started
    machine1 = machine_cpu_seconds()
    platform1 = cpu_seconds(in_platform)
    if status != 200:
        run.failures.append(f"{name}: {status} {reply}"[:300])
        return
    if not timed:
        run.warmup = elapsed
    else:
        run.latency.append(elapsed)
        run.machine_cpu += machine1 - machine0
        run.platform_cpu += platform1 - platform0
    run.kept.append(name)


def delete(stack, run: Run, name: str) -> None:
    """Untimed; as the one who created it."""
    status, reply = stack.request("DELETE", f"/api/containers/{name}", token=run.token)
    if status != 200:
        raise BenchError(f"DELETE /api/containers/{name}: {status} {reply}")
    run.kept.remove(name)


def measure(stack, args, admin: str, customer: str, prefix: str) -> list[Run]:
    from tests.docker_support import TEST_IMAGE
    from tests.support import free_port

    runs = [Run("customer (catalogue, plan limits, Berth picks the port)", customer,
                lambda name: {"container_name": name, "image": TEST_IMAGE}),
            Run("admin (own container, names its port)", admin,
                lambda name: {"container_name": name, "image": TEST_IMAGE,
                              "ports": {"80/tcp": free_port()}})]
    sessions = {proc.pid for proc in stack.procs.values()}  # each started a session
    try:
        for i in range(-1, args.creates):  # -1: the warm-up
            for tag, run in zip("ca", runs):
                name = f"{prefix}-{tag}{i + 1:03d}"
                create_once(stack, run, name, sessions, timed=i >= 0)
                if name in run.kept and not args.keep:
                    delete(stack, run, name)
            if i >= 0 and (i + 1) % 10 == 0:
                print(f"  {i + 1}/{args.creates} of each", flush=True)
    finally:
        for run in runs:
            for name in list(run.kept):
                try:
                    delete(stack, run, name)
                except (BenchError, OSError) as exc:
                    print(f"cleanup: {exc}", file=sys.stderr)
    return runs


def remove_leftovers(prefix: str) -> int:
    """Whatever of this run's containers is still on the engine (a platform that died
    mid-run): the names all start with ``prefix``."""
    from tests.docker_support import connect, default_engine_url

    client = connect(default_engine_url())
    try:
        rows = client.api.containers(all=True, filters={"name": prefix})
        rows = [r for r in rows if any(n.lstrip("/").startswith(prefix) for n in r["Names"])]
        for row in rows:
            client.api.remove_container(row["Id"], force=True)
        return len(rows)
    finally:
        client.close()


def fmt(value) -> str:
    return "-" if value is None or value != value else f"{value:.1f}"


def report(runs: list[Run], args) -> dict:
    summaries = [run.summary() for run in runs]
    head = (f"{'create (POST /api/containers)':<56} {'n':>4} {'p50 ms':>7} {'p95 ms':>7} "
            f"{'max ms':>7} {'mean ms':>7} {'warm-up':>8}")
    print()
    print(head)
    print("-" * len(head))
    for s in summaries:
        print(f"{s['kind']:<56} {s['count']:>4} {fmt(s['p50_ms']):>7} {fmt(s['p95_ms']):>7} "
              f"{fmt(s['max_ms']):>7} {fmt(s['mean_ms']):>7} {fmt(s['warmup_ms']):>8}")
    print("-" * len(head))
    kept = "kept until the end" if args.keep else "each deleted after its create (not timed)"
    print(f"one request at a time; {kept}; warm-up: the first create of each kind, not counted")
    print(f"CPU per create (seconds; machine: all {os.cpu_count()} cores, anything running; "
          f"platform: gateway + services):")
    for s in summaries:
        print(f"  {s['kind'].split(' ')[0]:<9} machine {s['machine_cpu_s_per_create']:.3f}, "
              f"platform {s['platform_cpu_s_per_create']:.3f}")
    for s in summaries:
        for failure in s["failures"]:
            print(f"  refused: {failure}")
    result = {"timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "config": {"creates": args.creates, "keep": args.keep,
                                               "database": args.database,
                                               "cores_busy_before_start": args.busy_before},
              "runs": summaries}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results written to {RESULTS.relative_to(ROOT)}")
    return result


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.containers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--creates", type=int, default=30, help="measured creates of each kind (30)")
    p.add_argument("--keep", action="store_true", help="keep every container until the end "
                   "instead of deleting each after its create")
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = p.parse_args(argv)
    if args.creates < 1 or (args.keep and args.creates + 1 > MAX_CONTAINERS):
        p.error(f"--creates must be 1 .. {MAX_CONTAINERS - 1} (with --keep the plan must "
                f"allow them all)")
    return args


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from tests.docker_support import build_test_images, connect, default_engine_url, require_engine

    print("Berth container-create benchmark")
    print(machine_line())
    print(f"configuration: {args.creates} creates of each kind, one at a time; database "
          f"{args.database}; own platform (5 services + gunicorn), the local engine")
    args.busy_before, line = busy_before()
    print(line, flush=True)
    url = default_engine_url()
    require_engine(url)
    client = connect(url)
    try:
        build_test_images(client)  # offline: loaded from the host's busybox, never pulled
    finally:
        client.close()
    prefix = f"cbench-{uuid.uuid4().hex[:6]}"
    try:
        with own_platform(args.database, label="berth-bench-containers-") as stack:
            try:
                admin, customer = setup(stack, url, MAX_CONTAINERS if not args.keep
                                        else args.creates + 1)
            except BenchError as exc:
                print(f"\npreparing the benchmark failed: {exc}", file=sys.stderr)
                print(stack.logs(), file=sys.stderr)
                return 2
            print(f"server, catalogue image, plan and a redeemed serial ready; creating "
                  f"{prefix}-* ...", flush=True)
            runs = measure(stack, args, admin, customer, prefix)
            report(runs, args)
        return 1 if any(run.failures for run in runs) else 0
    except PlatformFailed:
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        left = remove_leftovers(prefix)
        if left:
            print(f"removed {left} containers the platform left on the engine")


if __name__ == "__main__":
    sys.exit(main())
