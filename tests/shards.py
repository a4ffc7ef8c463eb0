"""`make test`: the whole suite as two pytest processes at once, one per shard.

The suite mostly waits (on Docker engines, the broker, timers, browsers): run as one process
on a 2-core machine, it left the CPU about 85 % idle and took 46 minutes. ``conftest.py``
splits it by module (``BERTH_TEST_SHARD``): "engine", every module with a test on the default
Docker engine (whose tests count and remove every Berth-labelled container on it, so they
must run one at a time) and the compose deployment; "rest", everything else. The shards share
nothing else: each test module has its own RabbitMQ vhost, databases, Redis key prefix and
private brokers or engines, and each shard chooses its ports from its own half of the test
range (``tests.support.TEST_PORTS``).

Both shards print as they go, each line prefixed with its shard's name; the exit status is
the first failing one (pytest's own codes), else 0; a shard with nothing to run
(a selection in the arguments) is not a failure unless neither had any.

    python -m tests.shards [pytest arguments, given to both shards]
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

SHARDS = ("engine", "rest")
NO_TESTS = 5  # pytest's exit status when no test was collected


def on_the_default_engine(item) -> bool:
    """A test on the default Docker engine (the ``docker_url`` fixture, at any depth), or the
    compose deployment (marker ``deploy``), which runs on it too."""
    return ("docker_url" in getattr(item, "fixturenames", ())
            or item.get_closest_marker("deploy") is not None)


def split(items: list, shard: str) -> tuple[list, list]:
    """The collected ``items`` in ``shard``, and the others. By module: a module goes whole
    to "engine" when one of its tests is on the default engine, so that a module's shared
    platform starts once, in one shard; decided from the fixtures, so no list to keep."""
    engine_modules = {item.path for item in items if on_the_default_engine(item)}
    kept, left = [], []
    for item in items:
        (kept if (item.path in engine_modules) == (shard == "engine") else left).append(item)
    return kept, left


def _relay(shard: str, proc: subprocess.Popen, lock: threading.Lock, ended: dict) -> None:
    """Print the shard's lines as they come, then note its exit status and when it ended."""
    width = max(map(len, SHARDS))
    for line in iter(proc.stdout.readline, b""):
        with lock:
            sys.stdout.buffer.write(f"[{shard:<{width}}] ".encode() + line)
            sys.stdout.buffer.flush()
    ended[shard] = (proc.wait(), time.monotonic())


def main(args: list[str]) -> int:
    started = time.monotonic()
    lock = threading.Lock()
    ended: dict[str, tuple[int, float]] = {}
    procs, relays = [], []
    try:
        for shard in SHARDS:
            env = {**os.environ, "BERTH_TEST_SHARD": shard, "PYTHONUNBUFFERED": "1"}
            procs.append(subprocess.Popen([sys.executable, "-m", "pytest", *args], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            relays.append(threading.Thread(target=_relay, args=(shard, procs[-1], lock, ended)))
            relays[-1].start()
        for relay in relays:
            relay.join()
    finally:  # interrupted: no shard left running
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
    print("\n" + "; ".join(f"shard {shard}: exit {code}, {(at - started) / 60:.1f} min"
                           for shard, (code, at) in ended.items())
          + f"; the whole suite {(time.monotonic() - started) / 60:.1f} min", flush=True)
    return combined([ended[shard][0] if shard in ended else 1 for shard in SHARDS])


def combined(codes: list[int]) -> int:
    """The suite's exit status from its shards'."""
    if all(code == NO_TESTS for code in codes):
        return NO_TESTS
    # a selection (PYTEST_ARGS="-k ...") may leave one shard nothing to run: not a failure
    return next((code for code in codes if code not in (0, NO_TESTS)), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
