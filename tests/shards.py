"""`make test`: the whole suite as two pytest processes at once, one per shard.

The suite mostly waits (on Docker engines, the broker, timers, browsers): run as one process
on a 2-core machine, it left the CPU 59 % idle on average (vmstat) and took 33 to 46 minutes
by the day; as two shards it took 21 minutes on a day it took 33 alone, the CPU still 47 %
idle. ``conftest.py`` splits it by module (``BERTH_TEST_SHARD``, ``select``): "engine", every module
with a test on the default Docker engine (whose tests count and remove every Berth-labelled
container on it, so they must run one at a time) and the compose deployment; "rest",
everything else. The shards share nothing else: each test module has its own RabbitMQ vhost,
databases, Redis key prefix and private brokers or engines, and each shard chooses its ports
from its own half of the test range (``tests.support.TEST_PORTS``).

Both shards print as they go, each line prefixed with its shard's name (a line shows when
it ends: pytest's progress dots come a file at a time); the exit status is the first failing
shard's (pytest's own codes), else 0. The arguments go to both shards: ``-x`` stops only the
shard that failed, and ``--pdb`` wants a shard alone (``BERTH_TEST_SHARD=rest pytest ...``).

    python -m tests.shards [pytest arguments, given to both shards]
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

SHARDS = ("engine", "rest")
VARIABLE = "BERTH_TEST_SHARD"  # the shard a pytest process runs (unset: the whole suite)
NO_TESTS = 5  # pytest's exit status when no test was collected
TEARDOWN_SECONDS = 120  # an interrupted shard's teardown, before it is killed
RELAY_SECONDS = 5.0  # for a shard's last lines after it ended


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


def current() -> str | None:
    """The shard this process runs, as set (``select`` checks it), or None: the whole suite."""
    return os.environ.get(VARIABLE) or None


def select(config, items: list) -> None:
    """conftest's collection hook: keep this process's shard's items, deselect the others."""
    import pytest
    shard = current()
    if shard is None:
        return
    if shard not in SHARDS:
        raise pytest.UsageError(f"{VARIABLE}={shard!r}: one of {', '.join(SHARDS)}")
    kept, left = split(items, shard)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


def _relay(shard: str, proc: subprocess.Popen, lock: threading.Lock) -> None:
    """Print the shard's lines as they come, prefixed with its name."""
    width = max(map(len, SHARDS))
    for line in iter(proc.stdout.readline, b""):
        with lock:
            sys.stdout.buffer.write(f"[{shard:<{width}}] ".encode() + line)
            sys.stdout.buffer.flush()


def _stop(procs: list[subprocess.Popen], forward: bool) -> None:
    """Interrupted: give each shard its teardown (platforms, private brokers and engines,
    vhosts and databases), then kill what is left. Ctrl-C reached the shards already (a
    second one would cut their teardown short); a SIGTERM to this process (``forward``) is
    passed on to them as the SIGINT pytest tears down on."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a repeated SIGTERM: teardown goes on
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for proc in procs:
        if forward and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + TEARDOWN_SECONDS
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


class _Terminated(Exception):
    pass


def _terminated(signum, frame):
    raise _Terminated


def main(args: list[str]) -> int:
    started = time.monotonic()
    lock = threading.Lock()
    signal.signal(signal.SIGTERM, _terminated)
    # started in the background by a shell, this process ignores SIGINT, and so would the
    # shards, which need it to stop with their teardown: they start with the default
    signal.signal(signal.SIGINT, signal.default_int_handler)
    procs: list[subprocess.Popen] = []
    relays: list[threading.Thread] = []
    ended: dict[str, tuple[int, float]] = {}
    try:
        for shard in SHARDS:
            env = {**os.environ, VARIABLE: shard, "PYTHONUNBUFFERED": "1"}
            procs.append(subprocess.Popen([sys.executable, "-m", "pytest", *args], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            # a daemon: a process a test left behind may hold the pipe open after pytest ends
            relays.append(threading.Thread(target=_relay, args=(shard, procs[-1], lock),
                                           daemon=True))
            relays[-1].start()
        while len(ended) < len(SHARDS):
            for shard, proc in zip(SHARDS, procs):
                if shard not in ended and proc.poll() is not None:
                    ended[shard] = (proc.returncode, time.monotonic())
            time.sleep(0.2)
    except (KeyboardInterrupt, _Terminated) as interrupted:
        _stop(procs, forward=isinstance(interrupted, _Terminated))
        return 130
    for relay in relays:  # what the shards wrote last, unless a leftover holds the pipe
        relay.join(RELAY_SECONDS)
    with lock:
        print("\n" + "; ".join(f"shard {shard}: exit {code}, {(at - started) / 60:.1f} min"
                               for shard, (code, at) in ended.items())
              + f"; the whole suite {(time.monotonic() - started) / 60:.1f} min", flush=True)
    selected = any(not arg.startswith("--durations") for arg in args)
    return combined([ended[shard][0] for shard in SHARDS], selected)


def combined(codes: list[int], selected: bool) -> int:
    """The suite's exit status from its shards'. A shard with nothing to run is a failure
    (the split went wrong) unless the arguments chose what to run (``selected``: a ``-k``,
    a ``-m``, a path), which may leave one shard nothing."""
    failed = next((code for code in codes if code not in (0, NO_TESTS)), None)
    if failed is not None:
        return failed
    if all(code == NO_TESTS for code in codes) or not selected and NO_TESTS in codes:
        return NO_TESTS
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
