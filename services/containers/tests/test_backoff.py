"""Supervision's restart backoff (pure: no engine, no database)."""
import datetime as dt

from services.containers.fleet import Backoff

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_the_first_restart_is_at_once_then_the_wait_doubles_up_to_the_longest():
    backoff = Backoff(first=10, longest=60, stable_after=30)
    assert backoff.due(0, None, T0)
    assert not backoff.due(1, T0, at(9.9)) and backoff.due(1, T0, at(10))
    assert not backoff.due(2, T0, at(19.9)) and backoff.due(2, T0, at(20))
    assert not backoff.due(3, T0, at(39.9)) and backoff.due(3, T0, at(40))
    assert not backoff.due(4, T0, at(59.9)) and backoff.due(4, T0, at(60))
    assert backoff.due(10_000, T0, at(60))  # capped, and no overflow for a long crash loop


def test_a_container_is_stable_once_it_stayed_up_long_enough():
    backoff = Backoff(first=10, longest=60, stable_after=30)
    assert backoff.stable(None, T0)
    assert not backoff.stable(T0, at(29.9)) and backoff.stable(T0, at(30))
