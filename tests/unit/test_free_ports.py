"""tests.support hands out ports for the servers tests start: one port never twice in a run,
even when nothing has bound it yet (a platform's gateway port and its /metrics block)."""
import socket

import pytest

from tests import support


@pytest.fixture
def draws(monkeypatch):
    """Make ``random.randint`` in tests.support return the given values in order."""
    values: list[int] = []
    monkeypatch.setattr(support.random, "randint", lambda low, high: values.pop(0))
    monkeypatch.setattr(support, "_HANDED_OUT", set())
    return values


def test_a_block_never_covers_a_port_handed_out_but_not_yet_bound(draws):
    draws.extend([15005, 15000, 15100])  # the gateway's port, then a block over it, then clear
    port = support.free_port()
    base = support.free_port_block(5)
    assert port == 15005
    assert base == 15100
    assert port not in range(base + 1, base + 6)


def test_a_port_is_not_handed_out_twice(draws):
    draws.extend([16000, 16000, 16001])
    assert [support.free_port(), support.free_port()] == [16000, 16001]


def test_a_port_in_a_handed_out_block_is_not_handed_out(draws):
    draws.extend([17000, 17003, 17010])
    base = support.free_port_block(5)
    assert base == 17000
    assert support.free_port() == 17010


def test_a_port_bound_by_another_socket_is_skipped(draws):
    with socket.socket() as held:
        for taken in range(18500, 18600):  # a port of the test range that this test can hold
            try:
                held.bind(("127.0.0.1", taken))
                break
            except OSError:
                continue
        draws.extend([taken, 18000])
        assert support.free_port() == 18000
