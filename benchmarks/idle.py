"""The idle footprint of issue 18 (item 6): the whole platform, started and healthy, with no
load, for a while (60 s by default): its memory and CPU.

"The platform" is every process of it: the five services and the gateway's gunicorn master
and workers, i.e. every process in the sessions tests.support.Platform started (each process
it spawns leads a session of its own). RabbitMQ (and PostgreSQL) are shared servers that the
platform did not start: the broker's figures are printed beside, not counted.

Memory is read at the end of the window (and the peak of a reading every few seconds is
kept). Two sums are printed: RSS, which counts a page shared by several processes (the
interpreter, the libraries, everything a gunicorn worker shares with its master after the
fork) once per process, and PSS (``/proc/<pid>/smaps_rollup``), which splits each shared
page between the processes sharing it, so the PSS sum is what the platform really holds in
RAM. The target is checked against the PSS sum (the RSS sum where PSS cannot be read).
MB here are 10^6 bytes.

CPU is user + system time over the window, as a percentage of one core.
"""
from __future__ import annotations

import os
import time

from benchmarks.common import processes

TARGET_MB = 600.0
TARGET_CPU_PCT = 3.0
SAMPLE_EVERY = 5.0
MB = 1_000_000


def _memory(pid: int) -> tuple[int | None, int | None]:
    """(RSS, PSS) in bytes; PSS None where smaps_rollup cannot be read, both None when the
    process is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return (int(fields["Rss"].split()[0]) * 1024, int(fields["Pss"].split()[0]) * 1024)
    except (OSError, KeyError, ValueError):
        pass
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"), None
    except OSError:
        return None, None


def _members(stack) -> dict:
    """(pid, start time) -> (name, CPU ticks) of every platform process, and of the broker."""
    leaders = {proc.pid: name for name, proc in stack.procs.items()}
    out = {}
    for pid, comm, rest in processes():
        session = int(rest[3])
        if session in leaders:
            name = leaders[session] if pid == session else f"{leaders[session]} child"
        elif comm == "beam.smp":
            name = "rabbitmq (shared, not counted)"
        else:
            continue
        out[(pid, rest[19])] = (name, int(rest[11]) + int(rest[12]))
    return out


def measure_idle(stack, seconds: float = 60) -> dict:
    """Watch the idle platform for ``seconds``; print and return its memory and CPU, per
    process and in total, against the targets."""
    print(f"idle footprint: {seconds:g} s with no load ...", flush=True)
    tick = os.sysconf("SC_CLK_TCK")
    before = _members(stack)
    started = time.monotonic()
    peak_pss = peak_rss = 0
    while True:
        left = started + seconds - time.monotonic()
        if left > 0:
            time.sleep(min(SAMPLE_EVERY, left))
        after = _members(stack)
        memory = {key: _memory(key[0]) for key in after}
        counted = [m for key, m in memory.items() if not after[key][0].startswith("rabbitmq")]
        peak_rss = max(peak_rss, sum(rss or 0 for rss, _ in counted))
        peak_pss = max(peak_pss, sum(pss or rss or 0 for rss, pss in counted))
        if left <= 0:
            break
    elapsed = time.monotonic() - started

    rows = []
    for key, (name, ticks) in sorted(after.items(), key=lambda kv: (kv[1][0], kv[0][0])):
        rss, pss = memory[key]
        if rss is None:
            continue  # gone since it was listed
        cpu_s = (ticks - before.get(key, (name, 0))[1]) / tick
        rows.append({"name": name, "pid": key[0], "rss_mb": (rss or 0) / MB,
                     "pss_mb": None if pss is None else pss / MB,
                     "cpu_pct": cpu_s / elapsed * 100, "counted": not name.startswith("rabbitmq")})
    gone = [before[k][0] for k in before if k not in after]
    counted = [r for r in rows if r["counted"]]
    pss_known = all(r["pss_mb"] is not None for r in counted)
    result = {
        "seconds": round(elapsed, 1),
        "processes": rows,
        "exited_during_window": gone,
        "rss_mb": sum(r["rss_mb"] for r in counted),
        "pss_mb": sum(r["pss_mb"] for r in counted) if pss_known else None,
        "peak_rss_mb": peak_rss / MB, "peak_pss_mb": peak_pss / MB if pss_known else None,
        "cpu_pct_of_one_core": sum(r["cpu_pct"] for r in counted),
        "memory_checked_against": "pss" if pss_known else "rss",
        "target_mb": TARGET_MB, "target_cpu_pct": TARGET_CPU_PCT,
    }
    checked = result["pss_mb"] if pss_known else result["rss_mb"]
    result["memory_met"] = checked <= TARGET_MB
    result["cpu_met"] = result["cpu_pct_of_one_core"] <= TARGET_CPU_PCT
    print_idle(result)
    return result


def print_idle(result: dict) -> None:
    print(f"\nidle footprint over {result['seconds']:g} s (MB = 10^6 bytes; CPU in % of one "
          f"core):")
    head = f"{'process':<32} {'pid':>7} {'RSS MB':>8} {'PSS MB':>8} {'CPU %':>7}"
    print(head)
    print("-" * len(head))
    for r in result["processes"]:
        pss = "-" if r["pss_mb"] is None else f"{r['pss_mb']:.1f}"
        print(f"{r['name']:<32} {r['pid']:>7} {r['rss_mb']:>8.1f} {pss:>8} "
              f"{r['cpu_pct']:>7.2f}")
    print("-" * len(head))
    pss = "-" if result["pss_mb"] is None else f"{result['pss_mb']:.1f}"
    print(f"{'platform total':<32} {'':>7} {result['rss_mb']:>8.1f} {pss:>8} "
          f"{result['cpu_pct_of_one_core']:>7.2f}")
    if result["exited_during_window"]:
        print(f"(exited during the window, their CPU not counted: "
              f"{', '.join(result['exited_during_window'])})")
    basis = result["memory_checked_against"].upper()
    checked = result["pss_mb"] if basis == "PSS" else result["rss_mb"]
    print(f"target: memory <= {TARGET_MB:g} MB ({basis} sum; peak {basis} "
          f"{result['peak_' + basis.lower() + '_mb']:.1f} MB): "
          f"{'MET' if result['memory_met'] else 'NOT MET'} ({checked:.1f} MB; RSS sum "
          f"{result['rss_mb']:.1f} MB)")
    print(f"target: CPU <= {TARGET_CPU_PCT:g} % of one core: "
          f"{'MET' if result['cpu_met'] else 'NOT MET'} "
          f"({result['cpu_pct_of_one_core']:.2f} %)", flush=True)
