"""Where the authenticated read's CPU goes, hop by hop: ``make bench-profile``
(``python -m benchmarks.profile_hops``).

It starts a private platform (``benchmarks.common.own_platform``), registers the benchmark
user (``benchmarks.gateway.prepare_user``) and drives ``GET /api/security/user_acl_info/<id>``
in a closed loop with ``benchmarks.gateway``'s client (16 clients by default), twice:

(a) window 1, unsampled: every process's CPU ticks from /proc, printed as CPU-ms per request
    per process group: gateway workers, the users service, the other four services,
    RabbitMQ, Redis, PostgreSQL (with ``--database postgresql``), and the kernel's part;
(b) window 2: py-spy samples the gateway workers and the users service (``record --format raw
    --nonblocking``, idle threads left out, so a sample is a moment of work) and each sample
    is sorted into a hop with ``HOPS``, a plain table of frame patterns. A hop's CPU-ms per
    request is its share of the group's samples times the group's window-1 CPU-ms per
    request (py-spy's own CPU slows what it competes with, so window 2's /proc figures are
    printed only for comparison);
(c) the top self-time functions per sampled group (the innermost frame of each sample).

A thread py-spy sees as runnable counts as active: one just preempted after waking another
process (a send on loopback) is counted too, so frames right after a wake-up weigh more than
their CPU. The hop figures rank the hops; compare changes with ``benchmarks.gateway``.
In the gateway's threads that bias is large (a thread woken by a reply counts while it waits
for the GIL): ``--gil`` samples only the thread holding the GIL, so the shares are of
Python's own CPU (time in system calls, with the GIL released, is then spread over the
rest). An eventlet process shows some samples with no Python frame under ``--gil``: py-spy
does not find the running greenlet's frames at those moments (``perf`` shows the process
inside the interpreter then, not in greenlet or the kernel).

py-spy is not a Berth dependency: it is found on PATH, or at ``$PY_SPY``. Install it into any
virtualenv (``python -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy``) and put that
``bin`` on PATH. It reads the processes' memory (ptrace rights over them: run as their user
or root).

Exit status: 0; 1 if any answer was not 200; 2 if the platform did not start; 3 without py-spy.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from benchmarks.common import PlatformFailed, busy_before, machine_line, own_platform, processes
from benchmarks.gateway import CLIENTS, DEFAULT_PROCS, CpuAccount, Job, prepare_user, run_job

# --- the classifier -------------------------------------------------------------------------
# A sample is the stack py-spy saw, frames written "function (file:line)", file relative to
# its sys.path entry ("kombu/messaging.py", "gateway/rpc.py"). The FIRST row whose pattern
# matches ANY frame of the stack names the sample's hop, so the order is the priority: what
# runs inside other hops (logging, metrics, JSON) comes before the layers that call it
# (SQLAlchemy, AMQP, nameko, Flask, gunicorn), which catch whatever is left of their own.
HOPS: list[tuple[str, str]] = [
    ("logging", r"\(logging/|\(berth/logs\.py"),
    ("metrics (prometheus)", r"\(prometheus_client/|\(gateway/metrics\.py|\(berth/metrics\.py"),
    ("JWT / token checks", r"\(jwt/|\(berth/tokens\.py|\(gateway/sessions\.py|\(hmac\.py"),
    # (not gateway/limits.py as a whole: its TrustedProxies middleware wraps every request)
    ("rate limits (Redis)", r"\(limits/|\(redis/|\._(limit|count) \(gateway/limits\.py"),
    ("audit publishing", r"\(gateway/audit\.py"),
    ("schema validation (pydantic)", r"\(pydantic|\(berth/validation\.py|model_validate"),
    ("serialization (json/kombu)", r"\(json/|\(kombu/serialization\.py|\(kombu/utils/json\.py"
                                   r"|\(flask/json/|\(nameko/serialization\.py"),
    ("SQL driver (execute/fetch)", r"do_execute|do_commit|do_rollback|\(sqlite3/|\(pg8000/"
                                   r"|\(psycopg2/|\(psycogreen/"),
    ("SQLAlchemy (ORM/core/pool)", r"\(sqlalchemy/"),
    ("AMQP publish (request/reply)", r"Publisher\.publish|Producer\.publish|basic_publish"
                                     r"|\(kombu/pools\.py|\(kombu/resource\.py"
                                     r"|^publish(_and_ack)? \(berth/amqp_wire\.py"),
    ("AMQP consume/wait (reply/request)", r"drain_events|\(amqp/|\(kombu/"
                                          r"|\(nameko/standalone/rpc\.py|\(berth/amqp_wire\.py"),
    ("service handler (domain code)", r"\(services/"),
    ("nameko worker spawn/entrypoint/DI", r"\(nameko/|\(berth/service\.py|\(berth/context\.py"),
    ("eventlet hub/scheduling", r"\(eventlet/|\(greenlet"),
    ("gateway RPC pool/glue", r"\(gateway/rpc\.py|\(berth/remote\.py"),
    ("Flask routing/request/response", r"\(flask/|\(werkzeug/|\(gateway/"),
    # gunicorn's event loop and its thread pool's hand-offs (concurrent/futures)
    ("HTTP parsing/gunicorn", r"\(gunicorn/|\(concurrent/futures/|\(socket\.py|\(selectors\.py"),
]
OTHER = "other"
NO_PYTHON = "(no Python frame: native thread)"
_COMPILED = [(hop, re.compile(pattern)) for hop, pattern in HOPS]


def classify(frames: list[str]) -> str:
    """The hop of one sample (its frames, outermost first)."""
    if not frames:
        return NO_PYTHON
    for hop, pattern in _COMPILED:
        if any(pattern.search(frame) for frame in frames):
            return hop
    return OTHER


def parse_raw(text: str):
    """py-spy's raw format: one stack a line, frames joined by ';', then a count."""
    for line in text.splitlines():
        stack, _, count = line.strip().rpartition(" ")
        if count.isdigit():
            yield (stack.split(";") if stack else []), int(count)


def self_function(frame: str) -> str:
    """A frame without its line number: ``function (file)``."""
    return re.sub(r":\d+\)$", ")", frame)


# --- the processes ----------------------------------------------------------------------------

PYTHON_GROUPS = ("gateway workers", "users service", "other services")
GROUPS = PYTHON_GROUPS + ("gateway master", "rabbitmq", "redis", "postgresql")


def platform_processes(stack, postgres: bool) -> dict[int, str]:
    """pid -> group of every process whose CPU the platform's requests cost."""
    sessions = {proc.pid: name for name, proc in stack.procs.items()}
    gateway = stack.procs["gateway"].pid
    out = {}
    for pid, comm, rest in processes():
        session = int(rest[3])
        if session in sessions:
            name = sessions[session]
            if name == "gateway":
                out[pid] = "gateway master" if pid == gateway else "gateway workers"
            else:
                out[pid] = "users service" if name == "users" else "other services"
        elif comm == "beam.smp":
            out[pid] = "rabbitmq"
        elif comm == "redis-server":
            out[pid] = "redis"
        elif postgres and comm.startswith("postgres"):
            out[pid] = "postgresql"
    return out


def ticks_of(pids: dict[int, str]) -> dict[str, tuple[int, int]]:
    """(user, system) ticks so far per group (processes started since are not counted)."""
    user, system = dict.fromkeys(GROUPS, 0), dict.fromkeys(GROUPS, 0)
    for pid, _comm, rest in processes():
        group = pids.get(pid)
        if group:
            user[group] += int(rest[11])
            system[group] += int(rest[12])
    return {g: (user[g], system[g]) for g in GROUPS}


class WindowAccount(CpuAccount):
    """``benchmarks.gateway.CpuAccount`` that also keeps our per-group ticks of the same two
    instants run_job reads (the start and the end of the measured window)."""

    def __init__(self, pids: dict[int, str]):
        super().__init__()
        self.pids = pids
        self.readings: list[dict[str, tuple[int, int]]] = []

    def snapshot(self, client_pids):
        self.readings.append(ticks_of(self.pids))
        return super().snapshot(client_pids)


def find_py_spy() -> str | None:
    return os.environ.get("PY_SPY") or shutil.which("py-spy")


class Sampler:
    """One ``py-spy record`` per Python process, started at the window's start."""

    def __init__(self, py_spy: str, pids: dict[int, str], groups: tuple[str, ...], rate: int,
                 folder: Path, gil: bool = False):
        self.py_spy, self.rate, self.folder, self.gil = py_spy, rate, folder, gil
        self.targets = {pid: group for pid, group in pids.items() if group in groups}
        self.procs: dict[int, subprocess.Popen] = {}

    def start(self, duration: float) -> None:
        for pid in self.targets:
            out = self.folder / f"{pid}.txt"
            self.procs[pid] = subprocess.Popen(
                [self.py_spy, "record", "--format", "raw", "--rate", str(self.rate),
                 "--pid", str(pid), "--duration", str(max(1, round(duration))),
                 "--nonblocking", *(["--gil"] if self.gil else []), "--output", str(out)],
                stdout=subprocess.DEVNULL, stderr=open(self.folder / f"{pid}.err", "wb"))

    def finish(self) -> dict[int, str]:
        """pid -> raw text of every sampler that wrote one."""
        out = {}
        for pid, proc in self.procs.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
                proc.wait(10)
            path = self.folder / f"{pid}.txt"
            if path.exists():
                out[pid] = path.read_text()
            else:
                err = (self.folder / f"{pid}.err").read_text(errors="replace").strip()
                print(f"py-spy got nothing from pid {pid} ({self.targets[pid]}): "
                      f"{err.splitlines()[0] if err else 'no output'}", file=sys.stderr)
        return out


# --- the report -------------------------------------------------------------------------------

def analyse(raw: dict[int, str], targets: dict[int, str]):
    """Per group: samples per hop, and self samples per function."""
    hops = {g: collections.Counter() for g in PYTHON_GROUPS}
    selfs = {g: collections.Counter() for g in PYTHON_GROUPS}
    for pid, text in raw.items():
        group = targets[pid]
        for frames, count in parse_raw(text):
            hops[group][classify(frames)] += count
            selfs[group][self_function(frames[-1]) if frames else NO_PYTHON] += count
    return hops, selfs


def run_line(label: str, r: dict) -> str:
    lat = r["latency_ms"]
    return (f"  {label:<22} {r['answered']:>6} answers, {r['rate']:>6.1f} req/s, "
            f"p50 {lat['p50']:>6.1f} ms, p99 {lat['p99']:>7.1f} ms, {r['non_200']} non-200")


def print_report(clean: dict, sampled: dict, cpu_ms: dict[str, float],
                 kernel_ms: dict[str, float], sampled_ms: dict[str, float], hops, selfs, top: int,
                 spy_cores: float) -> None:
    print()
    print(f"closed loop, {clean['clients']} clients:")
    print(run_line("window 1 (unsampled)", clean))
    print(run_line("window 2 (py-spy)", sampled) + f"; py-spy itself {spy_cores:.2f} cores")
    print()
    print("(a) CPU-ms per request per process group (/proc): window 1, of it in the kernel, "
          "and window 2")
    for group in GROUPS:
        if group in cpu_ms:
            print(f"  {group:<22} {cpu_ms[group]:>7.3f}  {kernel_ms[group]:>7.3f}  "
                  f"{sampled_ms[group]:>7.3f}")
    print(f"  {'total':<22} {sum(cpu_ms.values()):>7.3f}  {sum(kernel_ms.values()):>7.3f}  "
          f"{sum(sampled_ms.values()):>7.3f}")
    print()
    print("(b) CPU-ms per request per hop: the group's share of window 2's samples in the hop "
          "x its window-1 CPU-ms per request")
    names = [h for h, _ in HOPS] + [OTHER, NO_PYTHON]
    sampled_groups = [g for g in PYTHON_GROUPS if sum(hops[g].values())]
    print(f"  {'hop':<36}" + "".join(f"{g:>17}" for g in sampled_groups) + f"{'all':>9}")
    rows = []
    for hop in names:
        rows.append((hop, [hops[g][hop] / sum(hops[g].values()) * cpu_ms.get(g, 0.0)
                           for g in sampled_groups]))
    for hop, cells in sorted(rows, key=lambda r: -sum(r[1])):
        if sum(cells) >= 0.0005:
            print(f"  {hop:<36}" + "".join(f"{c:>17.3f}" for c in cells) + f"{sum(cells):>9.3f}")
    print(f"  {'(samples)':<36}" + "".join(f"{sum(hops[g].values()):>17}"
                                           for g in sampled_groups))
    print()
    print(f"(c) top {top} self-time functions per process group (share of its samples)")
    for group in sampled_groups:
        n = sum(selfs[group].values())
        print(f"  {group} ({n} samples):")
        for function, count in selfs[group].most_common(top):
            print(f"    {count / n * 100:5.1f}%  {function}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_hops", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--duration", type=float, default=20.0,
                   help="measured seconds per window (20)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before the window (3)")
    p.add_argument("--clients", type=int, default=CLIENTS)
    p.add_argument("--procs", type=int, default=DEFAULT_PROCS, choices=(1, 2, 4, 8))
    p.add_argument("--rate", type=int, default=50, help="py-spy samples per second (50)")
    p.add_argument("--sample", type=lambda text: tuple(g.strip() for g in text.split(",")),
                   default=PYTHON_GROUPS[:2], help="process groups py-spy samples, comma "
                   f"separated, of {', '.join(PYTHON_GROUPS)} (default: the first two; the "
                   "other services are idle while the read runs, and every sampled process "
                   "costs py-spy CPU)")
    p.add_argument("--gil", action="store_true",
                   help="sample only the thread holding the GIL (py-spy --gil): Python's own CPU, "
                   "without threads that py-spy sees runnable while they wait (see above)")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--keep-raw", type=Path, help="keep py-spy's raw stacks in this folder")
    return p.parse_args(argv)


def cpu_per_request(account: WindowAccount, result: dict, postgres: bool,
                    part: slice = slice(0, 2)) -> dict[str, float]:
    """CPU-ms per answered request per group over run_job's measured window: user + system
    time, or only the ``part`` given (``slice(1, 2)``: system time)."""
    before, after = account.readings[-2:]
    tck = os.sysconf("SC_CLK_TCK")
    answered = max(1, result["answered"])
    return {g: (sum(after[g][part]) - sum(before[g][part])) / tck * 1000 / answered
            for g in GROUPS if g != "postgresql" or postgres}


def profile(args, stack, py_spy: str) -> int:
    """Two closed-loop windows on one platform: the first unsampled, for the CPU per request
    per group (py-spy's own CPU would slow every process it competes with); the second with
    py-spy, for each group's shares by hop, applied to the first window's figures."""
    postgres = args.database == "postgresql"
    target = prepare_user(stack)
    path = f"{target.prefix}/api/security/user_acl_info/{target.user_id}"
    headers = {"Authorization": f"Bearer {target.token}"}

    def job(name: str) -> Job:
        return Job(name, target.host, target.port, "GET", path, None, headers, args.clients,
                   None, args.warmup, args.duration)

    print(f"user {target.user_id} ready; warming up 3 s ...", flush=True)
    run_job(Job("warm-up", target.host, target.port, "GET", path, None, headers, args.clients,
                None, 0.0, 3.0), args.procs, CpuAccount())
    pids = platform_processes(stack, postgres)

    print(f"window 1: closed loop {args.warmup:g} s + {args.duration:g} s, no sampling ...",
          flush=True)
    account = WindowAccount(pids)
    clean = run_job(job("clean"), args.procs, account)
    cpu_ms = cpu_per_request(account, clean, postgres)
    kernel_ms = cpu_per_request(account, clean, postgres, slice(1, 2))

    folder = args.keep_raw or Path(tempfile.mkdtemp(prefix="berth-pyspy-"))
    folder.mkdir(parents=True, exist_ok=True)
    sampler = Sampler(py_spy, pids, args.sample, args.rate, folder, args.gil)
    # run_job starts its clients 1 s after it is called and measures after the warm-up: the
    # samplers start then (attaching takes a few ms) and sample the window's length
    timer = threading.Timer(1.0 + args.warmup, sampler.start, (args.duration,))
    print(f"window 2: the same with py-spy on {len(sampler.targets)} processes ...", flush=True)
    children0 = os.times()
    account = WindowAccount(pids)
    timer.start()
    sampled = run_job(job("sampled"), args.procs, account)
    raw = sampler.finish()
    children1 = os.times()
    spy_cpu = (children1.children_user + children1.children_system
               - children0.children_user - children0.children_system)
    sampled_ms = cpu_per_request(account, sampled, postgres)
    hops, selfs = analyse(raw, sampler.targets)
    print_report(clean, sampled, cpu_ms, kernel_ms, sampled_ms, hops, selfs, args.top,
                 spy_cpu / max(0.001, args.duration))
    if args.keep_raw:
        print(f"\nraw py-spy stacks kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if clean["non_200"] or sampled["non_200"] else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    py_spy = find_py_spy()
    if not py_spy:
        print("py-spy not found: install it into a virtualenv of its own "
              "(python -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy) and put its "
              "bin on PATH, or set PY_SPY to the program", file=sys.stderr)
        return 3
    print("Berth per-hop profile: GET /api/security/user_acl_info/<id>")
    print(machine_line())
    print(f"database {args.database}; {args.clients} clients in {args.procs} processes; "
          f"py-spy {args.rate} Hz ({py_spy})")
    print(busy_before()[1], flush=True)
    try:
        with own_platform(args.database, label="berth-profile-") as stack:
            return profile(args, stack, py_spy)
    except PlatformFailed:
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
