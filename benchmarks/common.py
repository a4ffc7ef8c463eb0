"""What the benchmarks share: a private platform to measure, the machine they ran on, and
nearest-rank percentiles. Imports nothing heavy (benchmarks.traffic monkey-patches eventlet
before its own imports)."""
from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import platform as pyplatform
import secrets
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class PlatformFailed(Exception):
    """The private platform did not start (what it said is already printed on stderr)."""


@contextlib.contextmanager
def own_platform(database: str, extra_env: dict | None = None, label: str = "berth-bench-"):
    """A whole platform of its own (tests.support.Platform: five services and gunicorn, a fresh
    RabbitMQ vhost, a temp folder, SQLite or fresh PostgreSQL databases, no SMTP, replies not
    checked against the OpenAPI document, as in production), started and
    healthy; torn down on the way out, also on an exception or Ctrl-C: services first, then
    their databases and vhost, then the folder (logs included).

    A platform that does not start raises PlatformFailed after printing why (``berth.manage
    init``'s own words, or every process's log tail) on stderr.
    """
    os.environ.setdefault("BERTH_JWT_SECRET", secrets.token_urlsafe(48))
    os.environ.setdefault("BERTH_SECRETS_KEY", secrets.token_urlsafe(48))
    # measured as deployed: the tests' platform also checks every reply against its OpenAPI
    # shape (BERTH_VALIDATE_RESPONSES=1), which production does not do
    extra_env = {"BERTH_VALIDATE_RESPONSES": "0", **deployed_timers(), **(extra_env or {})}
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.support import DatabaseSet, Platform, Vhost, rmtree

    folder = Path(tempfile.mkdtemp(prefix=label))
    databases = DatabaseSet(database, folder)
    vhost = Vhost()
    stack = None
    try:
        amqp_uri = vhost.__enter__()
        try:
            stack = Platform(folder, amqp_uri, databases.template, extra_env=extra_env)
            print(f"starting the platform in {folder} ...", flush=True)
            started = time.monotonic()
            stack.start()
            print(f"platform healthy at {stack.url} after {time.monotonic() - started:.1f} s",
                  flush=True)
        except Exception as exc:  # noqa: BLE001 - reported, then PlatformFailed
            print(f"\nthe platform failed to start: {exc}", file=sys.stderr)
            if getattr(exc, "stderr", None):                # berth.manage init's own words
                print(exc.stderr.decode(errors="replace")[-3000:], file=sys.stderr)
            if stack is not None and not isinstance(exc, TimeoutError):
                print(stack.logs(), file=sys.stderr)   # TimeoutError already has them
            raise PlatformFailed(str(exc)) from exc
        yield stack
    finally:
        print("tearing the platform down ...", flush=True)
        try:
            if stack is not None:
                stack.stop()
            databases.drop()
        except Exception as exc:  # noqa: BLE001 - best effort
            print(f"teardown: {exc}", file=sys.stderr)
        finally:
            vhost.__exit__(None, None, None)
            rmtree(folder)


def deployed_timers() -> dict:
    """The timers the tests' platform runs fast (so that tests do not wait: outbox relay and
    mail retries every second), at their production defaults: a benchmark measures the
    platform as deployed, and on a virtual machine every wake-up costs CPU (the idle
    footprint)."""
    from berth.settings import Settings
    return {f"BERTH_{name.upper()}": str(Settings.model_fields[name].default)
            for name in ("outbox_relay_interval", "mail_retry_interval", "mail_max_backoff")}


def http_json(url: str, method: str, path: str, body=None, token=None,
              timeout: float = 30) -> tuple[int, object]:
    """One request on a fresh connection: (status, the body decoded from JSON, else raw)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, parts.path.rstrip("/") + path,
                     body=json.dumps(body).encode() if body is not None else None,
                     headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"cpu_model": model, "cores": os.cpu_count(), "usable_cores": usable,
            "python": pyplatform.python_version(), "kernel": pyplatform.release()}


def machine_line() -> str:
    m = machine()
    cores = f"{m['cores']} cores" + (f" ({m['usable_cores']} usable)"
                                     if m["usable_cores"] != m["cores"] else "")
    return f"machine: {m['cpu_model']}, {cores}, Python {m['python']}, Linux {m['kernel']}"


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def processes():
    """(pid, command name, the /proc/<pid>/stat fields after the name) of every running
    process; one that exits while being read is skipped. Of the fields: [3] session id,
    [11] + [12] user + system ticks, [19] start time."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        yield (int(entry.name), raw[raw.index("(") + 1:raw.rindex(")")],
               raw[raw.rindex(")") + 2:].split())


def cpu_seconds(match) -> float:
    """CPU seconds (user + system) used so far by the running processes for which
    ``match(command_name, session_id)`` is true: take two readings and subtract. A process
    that exits in between takes its seconds with it (short-lived helpers such as runc are
    missed; ``machine_cpu_seconds`` has them)."""
    ticks = 0
    for _pid, comm, rest in processes():
        if match(comm, int(rest[3])):
            ticks += int(rest[11]) + int(rest[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def busy_before(sample: float = 1.0) -> tuple[float, str]:
    """How many cores the machine keeps busy now (a ``sample``-second reading) and a line
    saying so with the load average: other load disturbs every figure measured after it."""
    with open("/proc/stat") as f:
        before = [int(x) for x in f.readline().split()[1:]]
    time.sleep(sample)
    with open("/proc/stat") as f:
        after = [int(x) for x in f.readline().split()[1:]]
    delta = [b - a for a, b in zip(before, after)]
    idle = delta[3] + delta[4]
    total = sum(delta[:8])
    busy = round((total - idle) / max(1, total) * (os.cpu_count() or 1), 2)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return busy, (f"before start: {busy:.2f} of {os.cpu_count()} cores busy ({sample:g} s "
                  f"sample), load average {load}")


def machine_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (every core, /proc/stat), so far."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")
