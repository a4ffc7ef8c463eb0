"""Doing several things at once, for domain code that must not name the runtime.

Services run under eventlet (``berth.run`` patches the standard library first), so these are
greenthreads: cheap enough to have one per container of a sweep. Domain modules use this
module rather than importing eventlet (tests/unit/test_layers.py).
"""
from __future__ import annotations

from typing import Callable, Iterable, TypeVar

import eventlet

T = TypeVar("T")
R = TypeVar("R")


class Pool:
    """At most ``size`` calls in flight at once, across everyone mapping over this pool."""

    def __init__(self, size: int):
        self._pool = eventlet.GreenPool(max(1, size))

    def map(self, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[function(item) for item in items]``, run concurrently; results in item order.
        Every call runs on this pool (a GreenPile over it), so concurrent maps share its size;
        ``GreenPool.imap`` would give each map a fresh pool of the same size."""
        pile = eventlet.GreenPile(self._pool)
        for item in items:
            pile.spawn(function, item)
        return list(pile)


def run_all(calls: Iterable[Callable[[], object]]) -> list:
    """Start every call at once, then wait for all of them; their results in order (the first
    exception raised by one of them is raised here, after the calls before it finished)."""
    threads = [eventlet.spawn(call) for call in calls]
    return [thread.wait() for thread in threads]


def sleep(seconds: float) -> None:
    """Pause this greenthread only."""
    eventlet.sleep(seconds)
