"""tests.support.poll, the one way tests wait: it returns what it waited for, and when time is
up it fails saying what it waited for, for how long, and what it last saw."""
from __future__ import annotations

import itertools
import re
import time

import pytest

from tests.support import poll


def counter(start: int = 1):
    """A probe returning start, start + 1, ... one call after another."""
    return itertools.count(start).__next__


def test_returns_the_first_truthy_value():
    values = iter([None, [], ["mail"], ["mail", "another"]])
    assert poll(lambda: next(values), interval=0.001) == ["mail"]


def test_returns_the_first_value_the_condition_accepts():
    probe = counter()
    assert poll(probe, until=lambda n: n >= 3, interval=0.001) == 3
    assert probe() == 4  # called no more than it took


def test_a_value_at_once_is_returned_without_sleeping():
    began = time.monotonic()
    assert poll(lambda: "ready", interval=5) == "ready"
    assert time.monotonic() - began < 1


def test_timeout_names_what_how_long_and_the_last_value():
    probe = counter()
    with pytest.raises(AssertionError) as failure:
        poll(probe, until=lambda n: n < 0, timeout=0.2, interval=0.01,
             what="a negative number")
    message = str(failure.value)
    tries = int(re.search(r"\((\d+) tries\)", message).group(1))
    assert message.startswith("timed out after 0.2 s (")
    assert f"waiting for a negative number; last returned {tries}" in message
    assert tries >= 5  # polled all along, not once
    assert failure.value.__cause__ is None


def test_the_last_value_is_repr_d():
    with pytest.raises(AssertionError, match=r"last returned \(503, \{'users': 'down'\}\)"):
        poll(lambda: (503, {"users": "down"}), until=lambda r: r[0] == 200, timeout=0.05,
             interval=0.01)


def test_a_long_last_value_keeps_its_head_and_tail():
    text = "head-" + "x" * 10_000 + "-tail"
    with pytest.raises(AssertionError) as failure:
        poll(lambda: text, until=lambda t: "wanted" in t, timeout=0.05, interval=0.01)
    message = str(failure.value)
    assert len(message) < 1000
    assert "'head-xxx" in message and "xxx-tail'" in message
    assert re.search(r"\.\.\.\[\d+ characters\]\.\.\.", message)


def test_until_the_probe_stops_raising():
    attempts = []

    def download():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionRefusedError("not listening yet")
        return None  # any value is fine once it does not raise

    assert poll(download, until=None, retry_on=OSError, interval=0.001) is None
    assert len(attempts) == 3


def test_timeout_after_exceptions_shows_the_last_one_and_chains_it():
    def probe():
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(AssertionError) as failure:
        poll(probe, until=None, retry_on=OSError, timeout=0.05, interval=0.01,
             what="the server")
    message = str(failure.value)
    assert "waiting for the server; last raised ConnectionRefusedError: " \
           "[Errno 111] Connection refused" in message
    assert isinstance(failure.value.__cause__, ConnectionRefusedError)


def test_the_last_attempt_decides_what_is_shown():
    outcomes = iter([OSError("refused"), (503, "starting")] * 1000)

    def probe():
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    with pytest.raises(AssertionError) as failure:
        poll(probe, until=lambda r: r[0] == 200, retry_on=OSError, timeout=0.1, interval=0.01)
    message = str(failure.value)
    assert ("last returned (503, 'starting')" in message) != ("last raised OSError" in message)


def test_an_exception_not_retried_propagates_at_once():
    began = time.monotonic()
    with pytest.raises(KeyError):
        poll(lambda: {}["status"], retry_on=OSError, timeout=10)
    assert time.monotonic() - began < 1


def test_an_exception_from_the_condition_is_retried_like_one_from_the_probe():
    answers = iter([(503, "starting up"), (200, {"status": "offline"})])
    answer = poll(lambda: next(answers), until=lambda r: r[1]["status"] == "offline",
                  retry_on=TypeError, interval=0.001)
    assert answer == (200, {"status": "offline"})


def test_details_are_appended_and_a_failing_one_does_not_hide_the_timeout():
    with pytest.raises(AssertionError, match=r"(?s)last returned 0\nmailbox: \[\]"):
        poll(lambda: 0, timeout=0.02, interval=0.01, details=lambda: "mailbox: []")

    def broken():
        raise OSError("log gone")
    with pytest.raises(AssertionError, match=r"(?s)last returned 0\n\(details unavailable"):
        poll(lambda: 0, timeout=0.02, interval=0.01, details=broken)


def test_a_fixture_may_raise_its_own_error():
    with pytest.raises(TimeoutError, match="waiting for a listener"):
        poll(lambda: False, timeout=0.02, interval=0.01, what="a listener",
             error=TimeoutError)


def test_the_probe_is_tried_at_least_once_even_with_no_time():
    assert poll(lambda: "already", timeout=0) == "already"
    with pytest.raises(AssertionError, match=r"\(1 try\)"):
        poll(lambda: "", timeout=0)
