"""The one shape every chaos test repeats: take a part down (the broker, PostgreSQL, a
service, a Docker engine), keep it down a while under load, bring it back and wait until the
platform answers again, then let the load run on.

    with outage_of("the broker", stop=rabbit.stop, start=rabbit.start, down_for=10,
                   back=platform.wait_healthy, load=load, stopping="stopping",
                   phase="outage") as down:
        ...  # whatever the test does while the part is away
    down.recovered  # seconds from the part's return until ``back()`` returned

``load`` is anything with a ``phase`` attribute (tests/chaos/load.py's ``Load``): each request
it records is tagged with the phase it was sent in, which this helper moves along:
``stopping`` while ``stop()`` runs, ``phase`` while the part is down, ``restarting`` while
``start()`` runs (both ``phase`` unless given), then ``"recovery"`` until ``back()`` returns,
then ``"after"`` for ``settle`` seconds. Without ``load`` no phase is touched.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator


@dataclasses.dataclass
class Outage:
    """When it happened (``time.monotonic()``) and how long each step took (seconds)."""
    part: str
    began: float  # stop() called
    down_at: float = 0.0  # stop() returned
    back_at: float = 0.0  # start() returned: the part is back
    stop_seconds: float = 0.0
    start_seconds: float = 0.0
    recovered: float = 0.0  # from the part's return until back() returned
    since_stop: float = 0.0  # from the stop until back() returned


@contextlib.contextmanager
def outage_of(part: str, *, stop: Callable[[], object], start: Callable[[], object],
              down_for: float, back: Callable[[], object], load=None, phase: str = "down",
              stopping: str | None = None, restarting: str | None = None,
              settle: float = 0.0) -> Iterator[Outage]:
    """``part`` down for ``down_for`` seconds from the moment ``stop()`` is called (however
    long the body takes, at least that long), then ``start()``, then ``back()``: a wait that
    returns once the platform answers again and fails loudly otherwise (``Platform.
    wait_healthy``, a ``poll``). If the body fails, the part is started again all the same
    (later tests of the module need it) and the body's error is what the test reports. An
    error names ``part`` in a note."""
    def move(to: str) -> None:
        if load is not None:
            load.phase = to

    move(stopping or phase)
    record = Outage(part, began=time.monotonic())
    stop()
    record.down_at = time.monotonic()
    record.stop_seconds = record.down_at - record.began
    move(phase)
    try:
        yield record
    except BaseException as exc:
        exc.add_note(f"(while {part} was down; it was started again)")
        move(restarting or phase)
        start()
        raise
    time.sleep(max(0.0, down_for - (time.monotonic() - record.began)))
    move(restarting or phase)
    restarting_at = time.monotonic()
    start()
    record.back_at = time.monotonic()
    record.start_seconds = record.back_at - restarting_at
    move("recovery")
    try:
        back()
    except Exception as exc:
        exc.add_note(f"(waiting for the platform after {part} came back, "
                     f"{record.start_seconds:.1f} s to start)")
        raise
    answering_at = time.monotonic()
    record.recovered = answering_at - record.back_at
    record.since_stop = answering_at - record.began
    move("after")
    time.sleep(settle)
