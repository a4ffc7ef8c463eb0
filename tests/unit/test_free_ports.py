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


def quiet(span: int) -> int:
    """A port of the test range such that it and the ``span`` after it are free now."""
    for base in range(15000, 19000, 97):
        socks = []
        try:
            for port in range(base, base + span + 1):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no quiet ports")


def test_a_block_never_covers_a_port_handed_out_but_not_yet_bound(draws):
    b = quiet(110)
    draws.extend([b + 5, b, b + 100])  # the gateway's port, then a block over it, then clear
    port = support.free_port()
    base = support.free_port_block(5)
    assert port == b + 5
    assert base == b + 100
    assert port not in range(base + 1, base + 6)


def test_a_port_is_not_handed_out_twice(draws):
    b = quiet(1)
    draws.extend([b, b, b + 1])
    assert [support.free_port(), support.free_port()] == [b, b + 1]


def test_a_port_in_a_handed_out_block_is_not_handed_out(draws):
    b = quiet(10)
    draws.extend([b, b + 3, b + 10])
    assert support.free_port_block(5) == b
    assert support.free_port() == b + 10


def test_a_port_bound_by_another_socket_is_skipped(draws):
    b = quiet(1)
    with socket.socket() as held:
        held.bind(("127.0.0.1", b))
        draws.extend([b, b + 1])
        assert support.free_port() == b + 1
