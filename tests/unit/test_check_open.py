"""berth.nameko_patches.check_open: before a publish, one poll tells an idle connection from
one the broker closed or sent something on (what py-amqp's read before a publish found)."""
import socket
import time

import eventlet
import pytest
from eventlet.patcher import original

from berth.nameko_patches import check_open


class Transport:
    def __init__(self, sock):
        self.sock = sock
        self._read_buffer = b""


class Conn:
    """The parts of an ``amqp.Connection`` that check_open uses; each read takes one
    five-byte "message" and is counted."""

    def __init__(self, sock):
        self.transport = Transport(sock)
        self.drains = []

    def drain_events(self, timeout=None):
        self.drains.append(timeout)
        data = self.transport.sock.recv(5)
        if not data:
            raise ConnectionError("Server unexpectedly closed connection")


class Channel:
    def __init__(self, conn):
        self.connection = conn


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
    started = time.monotonic()
    with eventlet.Timeout(2):  # eventlet's own recv would wait for bytes that never come
        check_open(Channel(conn))
    assert conn.drains == []
    assert time.monotonic() - started < 0.2  # not the gateway socket's 0.25 s timeout


def test_a_connection_the_broker_closed_raises_a_broker_error(pair):
    ours, broker = pair
    broker.close()
    with pytest.raises(ConnectionError):
        check_open(Channel(Conn(ours)))


def test_a_channel_without_a_connection_raises_a_broker_error():
    with pytest.raises(ConnectionError):
        check_open(Channel(None))


def test_what_the_broker_sent_is_read_until_nothing_waits(pair):
    ours, broker = pair
    broker.sendall(b"late1late2")
    conn = Conn(ours)
    check_open(Channel(conn))
    assert conn.drains == [0, 0]


def test_part_of_a_frame_is_left_for_the_next_read(pair):
    ours, broker = pair
    broker.sendall(b"par")
    conn = Conn(ours)

    def partial(timeout=None):  # py-amqp keeps the bytes and raises socket.timeout
        conn.drains.append(timeout)
        raise socket.timeout()
    conn.drain_events = partial
    check_open(Channel(conn))
    assert conn.drains == [0]


def test_bytes_already_buffered_are_read_without_a_peek(pair):
    ours, _ = pair
    conn = Conn(ours)
    conn.transport._read_buffer = b"half a frame"

    def take_buffer(timeout=None):
        conn.drains.append(timeout)
        conn.transport._read_buffer = b""
    conn.drain_events = take_buffer
    check_open(Channel(conn))
    assert conn.drains == [0]
