"""What idle live streams cost the gateway: ``python -m benchmarks.live`` (``make bench-live``).

Starts a platform of its own (benchmarks.common.own_platform: five services and gunicorn with
two workers, SQLite), then measures the CPU seconds the gateway's processes (gunicorn's
master and workers) use per second of wall time, over ``--window`` seconds each:

  1. with no stream open (the baseline: an idle gateway);
  2. with ``--streams`` streams open (GET /api/stream, default 50, spread over 10 customers),
     nothing happening on the platform: each stream costs its heartbeat every
     BERTH_STREAM_HEARTBEAT_SECONDS and a session re-check every
     BERTH_STREAM_RECHECK_SECONDS (a dict lookup; one users.token_state RPC per customer per
     worker every BERTH_TOKEN_CHECK_SECONDS), and each worker holding a stream polls
     traffic.realtime every BERTH_STREAM_TRAFFIC_SECONDS (one RPC per worker, whatever the
     number of streams).

Prints the figures, the gateway's threads and resident memory in both states, and the
machine. The streams are read by tests/e2e/sse.py clients in this process (their own CPU is
not counted). Settings as in production unless given in the environment; BERTH_STREAM_LIMIT
is raised to 64 so 50 streams fit on one worker whichever way gunicorn spreads them.
"""
from __future__ import annotations

import argparse
import os
import time

from benchmarks.common import busy_before, cpu_seconds, machine_line, own_platform, processes

PASSWORD = "bench password 1"


def gateway_pids(session: int) -> list[int]:
    return [pid for pid, _comm, rest in processes() if int(rest[3]) == session]


def threads_and_rss(session: int) -> tuple[int, float]:
    threads, rss_kib = 0, 0
    for pid in gateway_pids(session):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("Threads:"):
                        threads += int(line.split()[1])
                    elif line.startswith("VmRSS:"):
                        rss_kib += int(line.split()[1])
        except OSError:
            continue
    return threads, rss_kib / 1024


def gateway_cpu(session: int, window: float) -> float:
    """Cores the gateway kept busy over ``window`` seconds (CPU seconds per second)."""
    def mine(_comm, sid):
        return sid == session
    before, began = cpu_seconds(mine), time.monotonic()
    time.sleep(window)
    return (cpu_seconds(mine) - before) / (time.monotonic() - began)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.live", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=50)
    p.add_argument("--users", type=int, default=10, help="customers the streams belong to")
    p.add_argument("--window", type=float, default=30.0, help="seconds per measurement (30)")
    args = p.parse_args()

    from tests.e2e.sse import LiveStream

    _busy, line = busy_before()
    print(machine_line())
    print(line)
    env = {"BERTH_STREAM_LIMIT": os.environ.get("BERTH_STREAM_LIMIT", "64")}
    with own_platform("sqlite", extra_env=env, label="berth-bench-live-") as stack:
        session = stack.procs["gateway"].pid  # gunicorn runs in a session of its own
        tokens = [stack.new_user(f"live{i}", PASSWORD)[1] for i in range(args.users)]
        time.sleep(3)
        idle_threads, idle_rss = threads_and_rss(session)
        idle = gateway_cpu(session, args.window)
        streams = [LiveStream(stack.url, tokens[i % len(tokens)], f"s{i}").__enter__()
                   for i in range(args.streams)]
        try:
            opened = time.monotonic()
            for stream in streams:
                stream.wait_for("hello", timeout=60)
            print(f"{len(streams)} streams open after {time.monotonic() - opened:.1f} s "
                  f"(statuses {sorted({s for st in streams for s in st.statuses})})")
            time.sleep(3)
            held_threads, held_rss = threads_and_rss(session)
            beats = sum(s.heartbeats for s in streams)
            held = gateway_cpu(session, args.window)
            beats = sum(s.heartbeats for s in streams) - beats
            still = sum(1 for s in streams if not s.finished.is_set())
        finally:
            for stream in streams:
                stream.stop()
            for stream in streams:
                stream.close()
    extra = held - idle
    print(f"gateway CPU, idle, no stream:     {idle * 1000:7.1f} ms/s  "
          f"({idle_threads} threads, {idle_rss:.0f} MiB resident)")
    print(f"gateway CPU, {args.streams} idle streams: {held * 1000:7.1f} ms/s  "
          f"({held_threads} threads, {held_rss:.0f} MiB resident)")
    print(f"  the streams' share: {extra * 1000:.1f} ms/s in all, "
          f"{extra / args.streams * 1e6:.0f} µs/s per stream "
          f"({extra * 100:.2f} % of one core); {beats} heartbeats received in the "
          f"{args.window:.0f} s window; {still} of {args.streams} streams still open")


if __name__ == "__main__":
    main()
