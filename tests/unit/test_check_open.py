"""berth.nameko_patches.check_open: before a publish, one peek tells an idle connection from
one the broker closed or sent something on (what py-amqp's read before a publish found)."""
import socket

import eventlet
import pytest
from eventlet.patcher import original

from berth.nameko_patches import check_open, publish_unread


class Transport:
    def __init__(self, sock):
        self.sock = sock
        self._read_buffer = b""


class Conn:
    """The parts of an ``amqp.Connection`` that check_open uses; counts its reads."""

    def __init__(self, sock):
        self.transport = Transport(sock)
        self.client_properties = {"capabilities": {"connection.blocked": True}}
        self.drains = []

    def drain_events(self, timeout=None):
        self.drains.append(timeout)
        data = self.transport.sock.recv(4096)
        if not data:
            raise ConnectionError("Server unexpectedly closed connection")


@pytest.fixture(params=["green", "os"])
def pair(request):
    """A socket pair as a service has it (eventlet's) or as the gateway has it (the OS's,
    with the timeout its RPC client keeps: a read on it waits that long first)."""
    if request.param == "green":  # the suite runs monkey-patched
        ours, broker = socket.socketpair()
    else:
        ours, broker = original("socket").socketpair()
        ours.settimeout(0.25)
    yield ours, broker
    ours.close()
    broker.close()


def test_an_idle_connection_is_left_unread_and_nothing_waits(pair):
    ours, _ = pair
    conn = Conn(ours)
    with eventlet.Timeout(2):  # eventlet's own recv would wait for bytes that never come
        check_open(conn)
    assert conn.drains == []


def test_a_connection_the_broker_closed_raises_a_broker_error(pair):
    ours, broker = pair
    broker.close()
    with pytest.raises(ConnectionError):
        check_open(Conn(ours))


def test_bytes_from_the_broker_are_read_as_py_amqp_would(pair):
    ours, broker = pair
    broker.sendall(b"frame")
    conn = Conn(ours)
    check_open(conn)
    assert conn.drains == [0]


def test_bytes_already_buffered_are_read_without_a_peek(pair):
    ours, _ = pair
    conn = Conn(ours)
    conn.transport._read_buffer = b"half a frame"
    conn.drain_events = lambda timeout=None: conn.drains.append(timeout)
    check_open(conn)
    assert conn.drains == [0]


def test_publish_unread_turns_off_py_amqps_read_for_this_connection_only():
    one, other = Conn(None), Conn(None)
    publish_unread(one)
    assert one.client_properties["capabilities"]["connection.blocked"] is False
    assert other.client_properties["capabilities"]["connection.blocked"] is True
