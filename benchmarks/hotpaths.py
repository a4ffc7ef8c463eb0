"""The other hot paths of issue 18 (item 5), measured by ``make bench-gateway`` after its
authenticated-read runs, on the same private platform, with the same load generator
(benchmarks.gateway.Job / run_job: 16 clients, closed loop, CPU accounted per process group).

  C  GET /api/containers?limit=50 as an admin, 1,000 containers in the containers database
  T  GET /api/traffic/history/<user_id>?granularity=hour&start=<31 days ago>, asked by a user
     with 20 containers that moved bytes every hour of those 31 days
  R  POST /api/serial/redeem: every request a fresh serial; each client is its own user,
     whose every redeem extends their rental (the first one starts it)
  L  POST /api/login: Argon2id verifies the password on every login (reported, not weakened)

The data is seeded straight into each service's own database with the service's own models,
as the service would have written it; nothing needs a Docker engine:

- the containers listing reads only the ``containers`` table (services.containers.lifecycle
  ``Fleet.listing``: a count and one page, ``container_row`` per row), so its 1,000 rows
  stand on one server row that no engine answers for: offline and in maintenance, so the
  health timer's failed probe changes nothing, failover leaves it alone, the traffic sampler
  skips it and alerts are muted;
- traffic history by hour reads only ``traffic_hourly`` (services.traffic.reports.history),
  which each sweep increments in the transaction that records its raw samples; so the 20 x
  744 hourly rows are seeded with the daily and monthly rollups the same sweeps would have
  kept. Raw samples are not seeded: no history by hour reads them (and the sweep prunes them
  after 14 days);
- redeem needs a valid rental serial per request: they are inserted as ``serials.generate``
  inserts an admin's bearer code of the default plan, each client's with an expiry date one
  day later than its previous one, so every redeem extends the rental (a serial that does
  not is refused with 409 and stays unused: services.billing.rentals.redeem).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import multiprocessing
import random
import secrets
import threading
import time

from benchmarks.gateway import CpuAccount, Job, print_cpu_table, print_table, run_job

LISTED_CONTAINERS = 1000
PAGE = 50
OWNED_CONTAINERS = 20
HISTORY_DAYS = 31
# how fast redeems could possibly go on this machine, to size the serials: a redeem is a
# write behind two RPC hops, and the whole platform shares 2 cores with the client. Serials
# for that rate over the warm-up and the run are seeded; a client that runs out anyway
# resends its last code, and the 409s show in the table (never hidden)
REDEEM_CEILING = 600.0
# after each run, wait for the platform to fall below this many cores busy (idle it uses
# about 0.01: benchmarks.idle), at most this long
QUIET_CORES = 0.05
SETTLE_LIMIT = 60.0

HOT_USER = {"username": "bench-owner", "password": "bench-owner-password-1",
            "email": "bench-owner@example.com"}


# --- per-client requests ----------------------------------------------------------------------

class LaneJob(Job):
    """A Job whose clients each send their own sequence of requests: a lane holds one
    client's headers (its own user's token) and its bodies, sent in order.

    benchmarks.gateway's worker makes every Client from the Job alone and the Client reads
    ``job.body`` and ``job.headers`` for each request, so the lane is resolved here, per
    client thread: a thread takes the next free lane on its first request (a counter shared
    by the forked worker processes) and keeps it. A lane that runs out resends its last body.
    """

    def __init__(self, name: str, host: str, port: int, method: str, path: str,
                 lanes: list[tuple[dict, list[bytes]]], clients: int, warmup: float,
                 duration: float):
        if len(lanes) < clients:
            raise ValueError(f"{clients} clients need {clients} lanes, not {len(lanes)}")
        self.lanes = lanes
        self._taken = multiprocessing.get_context("fork").Value("i", 0)
        self._mine = threading.local()
        super().__init__(name, host, port, method, path, None, {}, clients, None, warmup,
                         duration)

    def _lane(self):
        mine = self._mine
        if not hasattr(mine, "lane"):
            with self._taken.get_lock():
                mine.lane, mine.sent = self.lanes[self._taken.value], 0
                self._taken.value += 1
        return mine

    @property
    def headers(self) -> dict:
        return self._lane().lane[0]

    @headers.setter
    def headers(self, _fixed: dict) -> None:
        """Job.__init__ sets one set of headers for every client; a lane has its own."""

    @property
    def body(self) -> bytes:
        mine = self._lane()
        bodies = mine.lane[1]
        body = bodies[min(mine.sent, len(bodies) - 1)]
        mine.sent += 1
        return body

    @body.setter
    def body(self, _fixed: bytes | None) -> None:
        """Job.__init__ sets one body for every client; a lane has its own."""


# --- seeding, straight into the services' databases -------------------------------------------

@contextlib.contextmanager
def service_session(stack, service: str):
    """A session on ``service``'s database of this platform (the URL its processes use)."""
    from sqlalchemy.orm import Session

    from berth.db import make_engine
    engine = make_engine(stack.env["BERTH_DATABASE_URL"].format(service=service))
    try:
        with Session(engine, expire_on_commit=False) as session:
            yield session
    finally:
        engine.dispose()


def seed_containers(stack, owner_id: int, admin_id: int, listed: int = LISTED_CONTAINERS,
                    owned: int = OWNED_CONTAINERS) -> list[int]:
    """``listed`` container rows on one engine-less server: ``owned`` of them the owner's, the
    rest the admin's own. Returns the owner's container ids."""
    from services.containers.models import Container, Server
    now = dt.datetime.now(dt.timezone.utc)
    with service_session(stack, "containers") as session:
        server = Server(name="bench-engineless", ip_address="127.0.0.1",
                        docker_url="unix:///nonexistent/berth-bench-docker.sock",
                        status="offline", maintenance=True, down_since=now,
                        last_error="benchmark seed: no engine")
        session.add(server)
        session.flush()
        rows = [Container(name=f"bench-{i:04d}", user_id=owner_id if i < owned else admin_id,
                          server_id=server.id, image="busybox:latest",
                          command=["httpd", "-f", "-p", "80"], environment={"ROLE": "bench"},
                          ports={"80/tcp": 20000 + i}, engine_id=secrets.token_hex(32),
                          desired_state="running", status="running", observed_at=now)
                for i in range(listed)]
        session.add_all(rows)
        session.commit()
        return [c.id for c in rows[:owned]]


def seed_traffic(stack, owner_id: int, container_ids: list[int], days: int = HISTORY_DAYS) -> int:
    """What the sweeps would have left in the rollups after ``days`` days in which
    every container moved bytes every hour: hourly, daily and monthly rows (kept well under
    the default monthly quota, so no quota notice follows). Returns the hourly row count."""
    from sqlalchemy import insert

    from services.traffic.models import DailyTraffic, HourlyTraffic, MonthlyTraffic
    rng = random.Random(18)
    now = dt.datetime.now(dt.timezone.utc)
    last = now.replace(minute=0, second=0, microsecond=0)
    hours = [last - dt.timedelta(hours=h) for h in range(days * 24 - 1, -1, -1)]
    hourly, daily, monthly = [], {}, {}
    for container_id in container_ids:
        for hour in hours:
            got, sent = rng.randrange(1 << 20), rng.randrange(1 << 19)
            hourly.append({"user_id": owner_id, "hour": hour, "container_id": container_id,
                           "bytes_in": got, "bytes_out": sent})
            for table, key in ((daily, (hour.date(), container_id)),
                               (monthly, hour.strftime("%Y-%m"))):
                held = table.setdefault(key, [0, 0])
                held[0] += got
                held[1] += sent
    with service_session(stack, "traffic") as session:
        session.execute(insert(HourlyTraffic), hourly)
        session.execute(insert(DailyTraffic), [
            {"user_id": owner_id, "day": day, "container_id": cid, "bytes_in": i,
             "bytes_out": o} for (day, cid), (i, o) in daily.items()])
        session.execute(insert(MonthlyTraffic), [
            {"month": month, "user_id": owner_id, "bytes_in": i, "bytes_out": o}
            for month, (i, o) in monthly.items()])
        session.commit()
    return len(hourly)


def seed_serials(stack, admin_id: int, lanes: int, per_lane: int) -> list[list[str]]:
    """``lanes`` x ``per_lane`` rental serials of the default plan, as ``serials.generate``
    makes an admin's bearer code; lane i's k-th expires k + 1 days from today. Returns the
    codes as users type them, per lane in that order."""
    from services.billing import codes, plans
    from services.billing.models import Serial
    today = dt.date.today()
    with service_session(stack, "billing") as session:
        plan = plans.default_plan(session)
        out = []
        for _ in range(lanes):
            lane = [Serial(code=codes.generate(), type="rental", status="valid",
                           expiry_date=today + dt.timedelta(days=k + 1), created_by=admin_id,
                           plan_id=plan.id) for k in range(per_lane)]
            session.add_all(lane)
            out.append([codes.display(s.code) for s in lane])
        session.commit()
    return out


def new_user(stack, username: str, password: str) -> tuple[int, str]:
    status, body = stack.request("POST", "/api/add_user", {
        "username": username, "password": password, "email": f"{username}@example.com"})
    if status != 200:
        raise RuntimeError(f"add_user {username}: {status} {body}")
    return body["user_id"], stack.login(username, password)


def check_once(stack, method: str, path: str, token: str, body=None) -> object:
    """One request before the run: a route that does not answer 200 is not measured."""
    status, reply = stack.request(method, path, body, token=token)
    if status != 200:
        raise RuntimeError(f"{method} {path}: {status} {reply}")
    return reply


# --- the runs ---------------------------------------------------------------------------------

def run_hot_paths(stack, args, account) -> list[dict]:
    """Seed, check each route once, then run C, T, R and L (login unless --skip-login), each
    ``args.clients`` clients in a closed loop; print their table and where the CPU went.
    Returns the runs (benchmarks.gateway.run_job's dicts)."""
    results = []
    for job in hot_path_jobs(stack, args):
        print(f"running {job.name}, closed loop ({job.warmup:g} s warm-up + {job.duration:g} s)"
              f" ...", flush=True)
        result = run_job(job, args.procs, account)
        result["tail"] = settle(account)
        results.append(result)
    print(f"\nhot paths, {args.clients} clients, closed loop:")
    print_table(results)
    print_cpu_table(results, account)
    print_cost(results)
    for r in results:
        if r["non_200"] or r["request_errors"]:
            print(f"  {r['name'][:1]}: statuses {r['status_counts']}, request errors "
                  f"{r['request_errors']}")
    return results


def hot_path_jobs(stack, args) -> list[Job]:
    """Seed the data, make the users, check each route answers 200 once; the runs' Jobs."""
    from tests.support import Platform
    host, port = "127.0.0.1", stack.port
    print(f"\nhot paths: seeding {LISTED_CONTAINERS} containers, {OWNED_CONTAINERS} x "
          f"{HISTORY_DAYS * 24} hours of traffic, serials ...", flush=True)
    admin_token = stack.admin_token()
    admin_id = _user_id(admin_token, Platform.admin["username"])
    owner_id, owner_token = new_user(stack, HOT_USER["username"], HOT_USER["password"])
    owned = seed_containers(stack, owner_id, admin_id)
    hourly = seed_traffic(stack, owner_id, owned)

    per_lane = math.ceil(REDEEM_CEILING * (args.warmup + args.duration) / args.clients) + 10
    codes = seed_serials(stack, admin_id, args.clients, per_lane)
    lanes = []
    for i, lane_codes in enumerate(codes):
        _user, token = new_user(stack, f"bench-redeemer-{i:02d}", "bench-redeemer-password-1")
        lanes.append(({"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                      [json.dumps({"serial_code": c}).encode() for c in lane_codes]))
    print(f"  seeded: {LISTED_CONTAINERS} containers ({len(owned)} owned by user {owner_id}), "
          f"{hourly} hourly traffic rows, {args.clients} x {per_lane} serials for "
          f"{args.clients} redeeming users", flush=True)

    listing = f"/api/containers?limit={PAGE}"
    page = check_once(stack, "GET", listing, admin_token)
    start = (dt.date.today() - dt.timedelta(days=HISTORY_DAYS)).isoformat()
    history = f"/api/traffic/history/{owner_id}?granularity=hour&start={start}"
    points = check_once(stack, "GET", history, owner_token)
    print(f"  checked: the listing answers {len(page['containers'])} of {page['total']}, the "
          f"history {len(points['traffic_history'])} hourly points "
          f"(truncated: {points['truncated']})", flush=True)

    def auth(token):
        return {"Authorization": f"Bearer {token}"}

    jobs = [
        Job(f"C containers, page {PAGE} of {LISTED_CONTAINERS}", host, port, "GET",
            listing, None, auth(admin_token), args.clients, None, args.warmup, args.duration),
        Job(f"T history {HISTORY_DAYS} d x 24 h, {OWNED_CONTAINERS} containers", host, port,
            "GET", history, None, auth(owner_token), args.clients, None, args.warmup,
            args.duration),
        LaneJob("R serial redeem (fresh serial each)", host, port, "POST",
                "/api/serial/redeem", lanes, args.clients, args.warmup, args.duration),
    ]
    if not args.skip_login:
        body = json.dumps({"username": HOT_USER["username"],
                           "password": HOT_USER["password"]}).encode()
        jobs.append(Job("L login (Argon2id)", host, port, "POST", "/api/login", body,
                        {"Content-Type": "application/json"}, args.clients, None,
                        args.warmup / 2, args.login_duration))
    return jobs


def _user_id(token: str, username: str) -> int:
    """The id of the user a token is for (the admin's, to own the seeded rows)."""
    from benchmarks.gateway import token_subject
    user_id = token_subject(token)
    if user_id is None:
        raise RuntimeError(f"cannot tell {username}'s id from their token")
    return user_id


def settle(account, quiet_cores: float = QUIET_CORES, longest: float = SETTLE_LIMIT) -> dict:
    """After a run: wait until the platform is quiet again, counting the CPU it spends
    meanwhile. Work a request leaves behind (events consumed by other services, the outbox)
    is part of its cost, and must not be charged to the next run."""
    started = time.monotonic()
    cpu_s = {"gateway+services": 0.0, "rabbitmq": 0.0}
    before = account.snapshot(set())
    while True:
        time.sleep(1.0)
        after = account.snapshot(set())
        cores = CpuAccount.cores(before, after)
        for group in cpu_s:
            cpu_s[group] += cores.get(group, 0.0) * 1.0
        before = after
        if cores.get("gateway+services", 0.0) < quiet_cores:
            break
        if time.monotonic() - started > longest:
            break
    return {"seconds": round(time.monotonic() - started, 1),
            "cpu_s": {k: round(v, 3) for k, v in cpu_s.items()},
            "quiet": cores.get("gateway+services", 0.0) < quiet_cores}


def print_cost(results: list[dict]) -> None:
    """CPU per answered request of the platform's processes and of the broker (a shared
    server: other users' work counts too), in the measured window and with the tail the run
    left behind: what each request costs, whatever the machine's other load made of the
    latency."""
    print("CPU per request, ms: in the measured window, and with the work it left behind "
          "(until the platform was quiet)")
    print(f"  {'run':<4} {'gw+svc':>8} {'rabbitmq':>9}   {'gw+svc':>8} {'rabbitmq':>9}  tail")
    for r in results:
        cores, tail = r["cpu_cores"], r["tail"]
        answered = max(1, sum(n for code, n in r["status_counts"].items() if code != "0"))
        window = {g: cores.get(g, 0.0) * r["duration_s"] for g in tail["cpu_s"]}
        per = {g: window[g] * 1000 / answered for g in window}
        total = {g: (window[g] + tail["cpu_s"][g]) * 1000 / answered for g in window}
        print(f"  {r['name'][:1]:<4} {per['gateway+services']:>8.2f} {per['rabbitmq']:>9.2f}   "
              f"{total['gateway+services']:>8.2f} {total['rabbitmq']:>9.2f}  "
              f"{tail['seconds']:g} s{'' if tail['quiet'] else ' (still busy: cut off)'}")


def record_results(path, **sections) -> None:
    """Add ``sections`` (idle, hot_paths) to the results file benchmarks.gateway wrote."""
    report = json.loads(path.read_text()) if path.exists() else {}
    report.update({k: v for k, v in sections.items() if v is not None})
    path.write_text(json.dumps(report, indent=2) + "\n")
