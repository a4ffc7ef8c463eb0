"""berth.amqp_wire: a small message's publish frames, encoded by Berth, are byte for byte what
py-amqp writes; anything else is py-amqp's own publish."""
import itertools
import socket
import struct
import threading
import time

import amqp
import pytest
from amqp.exceptions import RecoverableConnectionError
from amqp.method_framing import frame_handler, frame_writer
from amqp.serialization import dumps

from berth import amqp_wire
from berth import nameko_patches
from berth.nameko_patches import read_in_chunks

read_in_chunks()  # as the gateway does (gateway.rpc): a read takes all that has arrived

FRAME_MAX = 131072  # RabbitMQ's default


def py_amqp_bytes(channel_id, body, properties, exchange, routing_key, mandatory,
                  frame_max=FRAME_MAX) -> bytes:
    """What py-amqp's basic_publish hands its transport (amqp.Channel._basic_publish ->
    send_method -> frame_writer)."""
    written = []

    class Transport:
        def write(self, data):
            written.append(bytes(data))

    class Conn:
        bytes_sent = 0

    Conn.frame_max = frame_max
    write = frame_writer(Conn, Transport())
    write(1, channel_id, (60, 40), dumps("Bssbb", (0, exchange, routing_key, mandatory, False)),
          amqp.Message(body, **properties))
    return b"".join(written)


# what the gateway's requests and the services' replies carry, and variations of each
REQUEST = {"content_type": "application/json", "content_encoding": "utf-8",
           "application_headers": {"nameko.request_id": "5f0c8d2a9b1e4c7d"}, "delivery_mode": 1,
           "reply_to": "amq.rabbitmq.reply-to", "correlation_id": "a1b2c3d4e5f60718",
           "expiration": "30000"}
REPLY = {"content_type": "application/json", "content_encoding": "utf-8", "delivery_mode": 1,
         "priority": 0, "application_headers": {}, "correlation_id": "a1b2c3d4e5f60718"}
VARIANTS = [
    REQUEST, REPLY, {},
    {**REQUEST, "application_headers": {}},
    {**REQUEST, "application_headers": {"a": "", "ключ": "значение ✓", "b" * 255: "x" * 70000}},
    {**REPLY, "correlation_id": ""},                 # an empty short string is still sent
    {**REPLY, "content_type": None},                 # None: not sent
    {**REPLY, "reply_to": "r" * 255, "message_id": "m", "type": "t", "user_id": "guest",
     "app_id": "berth", "cluster_id": "c", "priority": 255},
    {"correlation_id": b"raw-bytes"},
]


@pytest.mark.parametrize("properties", VARIANTS, ids=range(len(VARIANTS)))
@pytest.mark.parametrize("body", [b"", b"{}", b'{"result": {"role": "user"}, "error": null}',
                                  "ü".encode() * 5000])
@pytest.mark.parametrize("exchange,routing_key,mandatory",
                         [("nameko-rpc", "users.user_acl_info", True),
                          ("", "amq.rabbitmq.reply-to.g1h2", False), (None, None, False)])
def test_the_same_bytes_as_py_amqp(properties, body, exchange, routing_key, mandatory):
    for channel_id in (1, 7, 65535):
        assert amqp_wire.publish_frames(
            channel_id, body, properties, exchange, routing_key, mandatory, FRAME_MAX) \
            == py_amqp_bytes(channel_id, body, properties, exchange, routing_key, mandatory)


@pytest.mark.parametrize("change", [
    {"timestamp": 1700000000},                        # a long long: py-amqp's
    {"delivery_mode": True},                          # not an int octet
    {"priority": 256},                                # does not fit an octet
    {"application_headers": {"n": 1}},                # a header that is not a string
    {"application_headers": {"nested": {"a": "b"}}},
    {"application_headers": ["not", "a", "table"]},
    {"reply_to": "r" * 256},                          # too long for a short string
    {"application_headers": {"k" * 256: "v"}},
])
def test_what_it_does_not_encode_is_left_to_py_amqp(change):
    with pytest.raises(amqp_wire._NotSimple):
        amqp_wire.publish_frames(1, b"{}", {**REQUEST, **change}, "x", "y", False, FRAME_MAX)


def test_a_body_beyond_one_frame_is_left_to_py_amqp():
    fits = FRAME_MAX - 8 - amqp_wire.FRAME_OVERHEAD - len(b"\x00\x00\x01x\x01y\x00") \
        - len(amqp_wire.encode_properties(REPLY))
    assert amqp_wire.publish_frames(1, b"a" * fits, REPLY, "x", "y", False, FRAME_MAX) \
        == py_amqp_bytes(1, b"a" * fits, REPLY, "x", "y", False)
    with pytest.raises(amqp_wire._NotSimple):
        amqp_wire.publish_frames(1, b"a" * (fits + 1), REPLY, "x", "y", False, FRAME_MAX)
    with pytest.raises(amqp_wire._NotSimple):  # a text body: py-amqp encodes it
        amqp_wire.publish_frames(1, "{}", REPLY, "x", "y", False, FRAME_MAX)


class FakeTransport:
    def __init__(self, error=None):
        self.written, self.error = [], error

    def write(self, data):
        if self.error:
            raise self.error
        self.written.append(bytes(data))


class FakeConnection:
    frame_max = FRAME_MAX
    confirm_publish = False

    def __init__(self, transport):
        self.transport, self.bytes_sent = transport, 0
        self._transport = transport  # what py-amqp's ``transport`` property returns

    def __bool__(self):
        return True


class FakeChannel:
    def __init__(self, connection, confirm=False):
        self.connection, self.channel_id, self._confirm_selected = connection, 3, confirm
        self.py_amqp = []

    def basic_publish(self, message, exchange, routing_key, mandatory):
        self.py_amqp.append((message.body, message.properties, exchange, routing_key, mandatory))


def test_publish_writes_once_and_counts_it_for_heartbeats():
    channel = FakeChannel(FakeConnection(FakeTransport()))
    amqp_wire.publish(channel, b"{}", REQUEST, "nameko-rpc", "users.m", mandatory=True)
    assert channel.connection.transport.written \
        == [py_amqp_bytes(3, b"{}", REQUEST, "nameko-rpc", "users.m", True)]
    assert channel.connection.bytes_sent == 1
    assert channel.py_amqp == []


@pytest.mark.parametrize("confirm,properties,body", [
    ("selected", REQUEST, b"{}"),         # confirm mode: py-amqp waits for the confirm
    ("connection", REQUEST, b"{}"),       # confirm_publish: py-amqp selects it at first publish
    (None, {**REQUEST, "timestamp": 1}, b"{}"),
    (None, REQUEST, b"a" * FRAME_MAX)])
def test_publish_hands_the_rest_to_py_amqp(confirm, properties, body):
    connection = FakeConnection(FakeTransport())
    connection.confirm_publish = confirm == "connection"
    channel = FakeChannel(connection, confirm=confirm == "selected")
    amqp_wire.publish(channel, body, properties, "x", "y", mandatory=True)
    assert channel.py_amqp == [(body, properties, "x", "y", True)]
    assert channel.connection.transport.written == []


def test_publish_errors_are_py_amqps():
    channel = FakeChannel(None)
    with pytest.raises(RecoverableConnectionError, match="connection closed"):
        amqp_wire.publish(channel, b"{}", REQUEST, "x", "y")
    channel = FakeChannel(FakeConnection(FakeTransport(socket.timeout("timed out"))))
    with pytest.raises(RecoverableConnectionError, match="timed out"):
        amqp_wire.publish(channel, b"{}", REQUEST, "x", "y")
    channel = FakeChannel(FakeConnection(FakeTransport(BrokenPipeError(32, "Broken pipe"))))
    with pytest.raises(BrokenPipeError):
        amqp_wire.publish(channel, b"{}", REQUEST, "x", "y")
    assert channel.connection.bytes_sent == 0


# --- a reply with the request's ack ---------------------------------------------------------

def py_amqp_ack_bytes(channel_id, delivery_tag) -> bytes:
    """What py-amqp's basic_ack hands its transport."""
    transport = FakeTransport()
    frame_writer(FakeConnection(transport), transport)(
        1, channel_id, (60, 80), dumps("Lb", (delivery_tag, False)), None)
    return b"".join(transport.written)


@pytest.mark.parametrize("channel_id,delivery_tag", [(1, 1), (3, 255), (65535, 2**64 - 1)])
def test_the_ack_is_py_amqps_basic_ack(channel_id, delivery_tag):
    assert amqp_wire.ack_frame(channel_id, delivery_tag) \
        == py_amqp_ack_bytes(channel_id, delivery_tag)


class WriterConnection(FakeConnection):
    """A connection whose frame writer is py-amqp's own, as py-amqp's connect makes it."""

    def __init__(self, transport):
        super().__init__(transport)
        self._frame_writer = frame_writer(self, transport)


def test_the_write_lock_is_py_amqps_frame_writer_lock():
    conn = WriterConnection(FakeTransport())
    lock = amqp_wire.write_lock(conn)
    assert lock is not None and amqp_wire.write_lock(conn) is lock
    with lock:  # py-amqp's writer waits for it: it is the lock its writes hold
        assert not lock.acquire(blocking=False)
    conn._frame_writer = frame_writer(conn, conn.transport)  # a reconnect: a new writer
    assert amqp_wire.write_lock(conn) is not lock
    conn._frame_writer = lambda *args: None  # a writer with no lock: nothing written beside it
    assert amqp_wire.write_lock(conn) is None
    channel = FakeChannel(conn)
    assert not amqp_wire.publish_and_ack(channel, b"{}", REPLY, "", "amq.rabbitmq.reply-to.x", 9)
    assert conn.transport.written == []


def test_publish_and_ack_writes_both_once_in_order():
    conn = WriterConnection(FakeTransport())
    channel = FakeChannel(conn)
    assert amqp_wire.publish_and_ack(channel, b'{"result": 1}', REPLY, "", "amq.rabbitmq.reply-to.x",
                                     42)
    assert conn.transport.written == [
        py_amqp_bytes(3, b'{"result": 1}', REPLY, "", "amq.rabbitmq.reply-to.x", False)
        + py_amqp_ack_bytes(3, 42)]
    assert conn.bytes_sent == 1 and channel.py_amqp == []


@pytest.mark.parametrize("case", ["confirm", "confirm_publish", "large", "not simple", "closed"])
def test_publish_and_ack_leaves_what_it_cannot_do_unwritten(case):
    conn = WriterConnection(FakeTransport())
    conn.confirm_publish = case == "confirm_publish"
    channel = FakeChannel(conn, confirm=case == "confirm")
    body = b"a" * FRAME_MAX if case == "large" else b"{}"
    properties = {**REPLY, "timestamp": 1} if case == "not simple" else REPLY
    if case == "closed":
        channel.connection = None
    assert not amqp_wire.publish_and_ack(channel, body, properties, "", "r", 1)
    assert conn.transport.written == [] and channel.py_amqp == []


def test_publish_and_ack_never_lands_inside_another_writers_frames(monkeypatch):
    """A write that waits for room in the socket (eventlet's sendall yields) while another
    greenthread acks on the same connection: each whole message stays together on the wire,
    because both hold py-amqp's frame-writer lock."""
    import eventlet
    from eventlet.green import threading as green_threading

    stream = []

    class SlowTransport:
        def write(self, data):
            data = bytes(data)
            for start in range(0, len(data), 7):  # a few bytes, then the hub runs others
                stream.append(data[start:start + 7])
                eventlet.sleep(0)

    conn = FakeConnection(SlowTransport())
    monkeypatch.setattr(threading, "Lock", green_threading.Lock)  # as eventlet.monkey_patch()
    conn._frame_writer = frame_writer(conn, conn.transport)  # made at connect, as py-amqp does
    monkeypatch.undo()
    channel = FakeChannel(conn)
    acks = [eventlet.spawn(conn._frame_writer, 1, 3, (60, 80), dumps("Lb", (n, False)), None)
            for n in range(100, 105)]
    reply = eventlet.spawn(amqp_wire.publish_and_ack, channel, b'{"result": 1}', REPLY, "",
                           "amq.rabbitmq.reply-to.x", 42)
    for thread in (*acks, reply):
        thread.wait()
    expected = {py_amqp_ack_bytes(3, n) for n in range(100, 105)}
    expected.add(py_amqp_bytes(3, b'{"result": 1}', REPLY, "", "amq.rabbitmq.reply-to.x",
                               False) + py_amqp_ack_bytes(3, 42))
    data = b"".join(stream)
    seen = set()
    while data:
        whole = next((m for m in expected if data.startswith(m)), None)
        assert whole is not None, "a message was cut by another's frames"
        seen.add(whole)
        data = data[len(whole):]
    assert seen == expected


def test_property_order_is_py_amqps():
    """The properties Berth sends, given in any order (each alone and each pair, in every
    order; sets of three; all of them): the same bytes as py-amqp's, which writes them in
    its table's order."""
    names = list(REQUEST) + ["priority"]
    full = {**REQUEST, "priority": 4}
    for r in (1, 2, 3, len(names)):
        for chosen in itertools.permutations(names, r) if r < 3 else \
                itertools.combinations(names, r):
            properties = {name: full[name] for name in chosen}
            assert amqp_wire.publish_frames(1, b"x", properties, "e", "k", False, FRAME_MAX) \
                == py_amqp_bytes(1, b"x", properties, "e", "k", False)


# --- reading deliveries -----------------------------------------------------------------------

def frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + b"\xce"


def delivery(channel: int, body: bytes, properties: dict, frame_max: int = FRAME_MAX) -> bytes:
    """A basic.deliver as RabbitMQ sends it: method, content header, body in frames of at
    most frame_max."""
    method = struct.pack(">HH", 60, 60) + dumps("sLbss", ("amq.ctag-x", 7, False, "",
                                                         "amq.rabbitmq.reply-to.g1h2"))
    header = struct.pack(">HHQ", 60, 0, len(body)) + \
        amqp.Message(**properties)._serialize_properties()
    chunk = frame_max - 8
    return frame(1, channel, method) + frame(2, channel, header) + b"".join(
        frame(3, channel, body[i:i + chunk]) for i in range(0, len(body), chunk))


def py_amqp_reads(data: bytes):
    """(properties, body) of each message py-amqp's frame handler makes of ``data``."""
    messages, offset = [], 0

    class Conn:
        bytes_recv = 0

    # an empty body is py-amqp's default, "": here it is bytes, as every other body
    handle = frame_handler(Conn, lambda channel, sig, args, msg: messages.append(
        (msg.properties, msg.body or b"")))
    while offset < len(data):
        frame_type, channel, size = struct.unpack_from(">BHI", data, offset)
        handle((frame_type, channel, data[offset + 7:offset + 7 + size]))
        offset += 8 + size
    return messages


class Buffered:
    """A connection whose transport holds ``data``."""

    def __init__(self, data: bytes):
        self._read_buffer = data
        self.transport, self.bytes_recv = self, 0


def method_frame_alone_with_a_bad_end() -> bytes:
    data = delivery(1, b"{}", REPLY)
    end = 7 + struct.unpack_from(">I", data, 3)[0]
    return data[:end] + b"\x00"


def header_of_another_class() -> bytes:
    data = bytearray(delivery(1, b"{}", REPLY))
    header = 7 + struct.unpack_from(">I", data, 3)[0] + 1 + 7
    struct.pack_into(">H", data, header, 10)
    return bytes(data)


READ_BODIES = [b"", b'{"result": {"role": "user"}, "error": null}', b"x" * 5000]


@pytest.mark.parametrize("properties", VARIANTS, ids=range(len(VARIANTS)))
@pytest.mark.parametrize("body", READ_BODIES, ids=["empty", "reply", "5000"])
def test_a_whole_delivery_reads_as_py_amqp_reads_it(properties, body):
    data = delivery(1, body, properties)
    after = frame(8, 0, b"")  # what follows stays for the next read
    transport = Buffered(data + after)
    assert [amqp_wire.next_delivery(transport, 1)] == py_amqp_reads(data)
    assert transport._read_buffer == after
    assert transport.bytes_recv == (3 if body else 2)  # frames, as py-amqp counts them


@pytest.mark.parametrize("body", READ_BODIES, ids=["empty", "reply", "5000"])
def test_part_of_a_delivery_is_left_whole_in_the_buffer(body):
    data = delivery(1, body, REPLY)
    for cut in range(len(data)):
        transport = Buffered(data[:cut])
        assert amqp_wire.next_delivery(transport, 1) is amqp_wire.INCOMPLETE, cut
        assert transport._read_buffer == data[:cut]


@pytest.mark.parametrize("data", [
    frame(8, 0, b""),                                                   # a heartbeat
    frame(1, 0, struct.pack(">HH", 10, 60) + b"\x00\x01"),              # connection.blocked
    frame(1, 1, struct.pack(">HH", 60, 50) + b"\x01\x38" + b"\x00" * 5),  # basic.return
    frame(1, 1, struct.pack(">HH", 20, 40) + b"\x00" * 8),              # channel.close
    delivery(2, b"{}", REPLY),                                          # another channel
    delivery(1, b"y" * 300, REPLY, frame_max=108),                      # a body in frames
    delivery(1, b"{}", REPLY)[:-1] + b"\x00",                           # a bad frame end
    delivery(1, b"{}", REPLY).replace(b"\xce", b"\x00", 1),
    method_frame_alone_with_a_bad_end(),                                # not left waiting
    header_of_another_class(),
], ids=["heartbeat", "blocked", "return", "channel-close", "channel-2", "split-body",
        "bad-end", "bad-method-end", "bad-method-end-alone", "header-class"])
def test_anything_else_is_left_to_py_amqp(data):
    transport = Buffered(data)
    assert amqp_wire.next_delivery(transport, 1) is None
    assert transport._read_buffer == data


def test_read_more_adds_what_arrived_to_the_buffer():
    ours, theirs = socket.socketpair()
    try:
        transport = amqp.transport.TCPTransport.__new__(amqp.transport.TCPTransport)
        transport.sock, transport._read_buffer = ours, b"held"
        transport._quick_recv, transport.raise_on_initial_eintr = ours.recv, True
        ours.settimeout(0.05)
        with pytest.raises(socket.timeout):  # nothing came: the buffer is kept
            amqp_wire.read_more(transport)
        assert transport._read_buffer == b"held"
        theirs.sendall(b"abc")
        theirs.sendall(b"def")
        time.sleep(0.05)
        amqp_wire.read_more(transport)
        assert transport._read_buffer == b"heldabcdef"  # all that had arrived, in one read
        theirs.close()
        with pytest.raises(OSError, match="closed"):
            amqp_wire.read_more(transport)
    finally:
        ours.close()


# --- the services' side: deliveries on any channel, handed on as py-amqp's handler does ------

def py_amqp_hands_on(data: bytes):
    """What py-amqp's frame handler passes to ``on_inbound_method`` for each message of
    ``data``: channel, method, method payload, and the message's properties, body and
    frame_args."""
    calls, offset = [], 0

    class Conn:
        bytes_recv = 0

    def callback(channel, sig, args, msg):
        calls.append((channel, sig, args, msg.properties, msg.body, msg.frame_args))

    handle = frame_handler(Conn, callback)
    while offset < len(data):
        frame_type, channel, size = struct.unpack_from(">BHI", data, offset)
        handle((frame_type, channel, data[offset + 7:offset + 7 + size]))
        offset += 8 + size
    return calls


def frames_of(data: bytes) -> list[bytes]:
    frames, offset = [], 0
    while offset < len(data):
        end = offset + 8 + struct.unpack_from(">I", data, offset + 3)[0]
        frames.append(data[offset:end])
        offset = end
    return frames


def taken(conn):
    result = amqp_wire.take_delivery(conn)
    if result is None or result is amqp_wire.INCOMPLETE:
        return result
    channel, sig, args, msg = result
    assert msg.ready
    return channel, sig, args, msg.properties, msg.body, msg.frame_args


@pytest.mark.parametrize("properties", VARIANTS, ids=range(len(VARIANTS)))
@pytest.mark.parametrize("body", READ_BODIES, ids=["empty", "reply", "5000"])
@pytest.mark.parametrize("channel", [1, 2, 65535])
def test_a_whole_delivery_on_any_channel_is_handed_on_as_py_amqp_hands_it_on(
        properties, body, channel):
    data = delivery(channel, body, properties)
    after = frame(8, 0, b"")
    conn = Buffered(data + after)
    assert [taken(conn)] == py_amqp_hands_on(data)
    assert conn._read_buffer == after
    assert conn.bytes_recv == (3 if body else 2)


def test_deliveries_on_several_channels_are_taken_one_at_a_time_in_order():
    data = delivery(3, b"a", REQUEST) + delivery(1, b"", REPLY) + delivery(3, b"c" * 900, {})
    conn = Buffered(data)
    assert [taken(conn) for _ in range(3)] == py_amqp_hands_on(data)
    assert taken(conn) is amqp_wire.INCOMPLETE and conn._read_buffer == b""


@pytest.mark.parametrize("body", READ_BODIES, ids=["empty", "reply", "5000"])
def test_take_leaves_part_of_a_delivery_whole_in_the_buffer(body):
    data = delivery(5, body, REQUEST)
    for cut in range(len(data)):
        conn = Buffered(data[:cut])
        assert amqp_wire.take_delivery(conn) is amqp_wire.INCOMPLETE, cut
        assert conn._read_buffer == data[:cut] and conn.bytes_recv == 0


@pytest.mark.parametrize("data", [
    frame(8, 0, b""),
    frame(1, 0, struct.pack(">HH", 10, 60) + b"\x00\x01"),
    frame(1, 1, struct.pack(">HH", 60, 50) + b"\x01\x38" + b"\x00" * 5),
    frame(1, 1, struct.pack(">HH", 60, 21) + b"\x00\x00"),              # basic.consume-ok
    frame(1, 1, struct.pack(">HH", 20, 40) + b"\x00" * 8),
    delivery(1, b"y" * 300, REPLY, frame_max=108),
    delivery(1, b"{}", REPLY)[:-1] + b"\x00",
    delivery(1, b"{}", REPLY).replace(b"\xce", b"\x00", 1),
    method_frame_alone_with_a_bad_end(),
    header_of_another_class(),
    # a method on one channel, its header on another: not one delivery
    frames_of(delivery(1, b"", REPLY))[0] + frames_of(delivery(2, b"", REPLY))[1],
    frame(2, 1, struct.pack(">HHQ", 60, 0, 2) + b"\x00\x00") + frame(3, 1, b"{}"),  # a header
    frame(3, 1, b"{}"),                                                 # a body, alone
], ids=["heartbeat", "blocked", "return", "consume-ok", "channel-close", "split-body",
        "bad-end", "bad-method-end", "bad-method-end-alone", "header-class", "two-channels",
        "header-first", "body-first"])
def test_take_leaves_anything_else_to_py_amqp(data):
    conn = Buffered(data)
    assert amqp_wire.take_delivery(conn) is None
    assert conn._read_buffer == data and conn.bytes_recv == 0


class Reading:
    """A connection over one end of a socket pair, with py-amqp's transport read (chunked, as
    install() makes it) and a record of what reaches ``on_inbound_method``."""

    def __init__(self, sock):
        transport = amqp.transport.TCPTransport.__new__(amqp.transport.TCPTransport)
        transport.sock, transport._read_buffer, transport.connected = sock, b"", True
        transport._quick_recv, transport.raise_on_initial_eintr = sock.recv, True
        self.transport, self.bytes_recv, self.dispatched = transport, 0, []
        self.left_to_py_amqp = 0

    def on_inbound_method(self, channel, sig, args, msg):
        self.dispatched.append((channel, sig, args, msg.properties, msg.body, msg.frame_args))


def test_drain_events_reads_until_a_whole_delivery_and_leaves_the_rest_to_py_amqp(monkeypatch):
    def py_amqps_own(conn, timeout=None):
        conn.left_to_py_amqp += 1
        conn.transport._read_buffer = b""

    monkeypatch.setattr(nameko_patches, "_DRAIN_EVENTS", py_amqps_own)
    ours, theirs = socket.socketpair()
    try:
        conn = Reading(ours)
        data = delivery(1, b'{"args": [7]}', REQUEST)
        with pytest.raises(socket.timeout):  # nothing yet: py-amqp's timeout, buffer kept
            nameko_patches.drain_events(conn, timeout=0.05)
        theirs.sendall(data[:20])
        with pytest.raises(socket.timeout):  # part of it: still waiting, nothing dispatched
            nameko_patches.drain_events(conn, timeout=0.05)
        assert conn.transport._read_buffer == data[:20] and conn.dispatched == []
        theirs.sendall(data[20:] + delivery(2, b"", REPLY))
        nameko_patches.drain_events(conn, timeout=1)  # one method per call, as py-amqp
        nameko_patches.drain_events(conn, timeout=1)
        assert conn.dispatched == py_amqp_hands_on(data + delivery(2, b"", REPLY))
        theirs.sendall(frame(8, 0, b""))
        nameko_patches.drain_events(conn, timeout=1)
        assert conn.left_to_py_amqp == 1 and len(conn.dispatched) == 2
        theirs.close()
        with pytest.raises(OSError, match="closed"):  # as read_frame: disconnected
            nameko_patches.drain_events(conn, timeout=1)
        assert conn.transport.connected is False
    finally:
        ours.close()


class Handled(Reading):
    """``Reading`` with py-amqp's own reader behind it: ``amqp.Connection``'s
    ``drain_events`` and ``blocking_read`` over the transport's ``read_frame``, and py-amqp's
    frame handler, which keeps a message's state between frames."""
    blocking_read = amqp.Connection.blocking_read
    drain_events = nameko_patches.drain_events  # what install() makes of every connection

    def __init__(self, sock):
        super().__init__(sock)
        self.on_inbound_frame = frame_handler(self, self.on_inbound_method)


def test_drain_events_and_py_amqps_reader_share_a_stream_in_any_order():
    """A body in several frames is py-amqp's; when py-amqp has read part of it and timed out,
    the rest is still py-amqp's (the head of the buffer is a body frame); whole deliveries
    before and after it are taken here; every message is handed on once, in order, as
    py-amqp's handler alone hands them on."""
    big = delivery(1, b"B" * 300, REPLY, frame_max=108)
    parts = frames_of(big)
    stream = [delivery(1, b"a", REQUEST), *parts, delivery(2, b"", REPLY),
              frame(8, 0, b""), delivery(1, b"c" * 50, {})]
    ours, theirs = socket.socketpair()
    try:
        conn = Handled(ours)
        theirs.sendall(stream[0] + b"".join(parts[:3]))  # a delivery, then half of the big one
        conn.drain_events(timeout=1)
        assert len(conn.dispatched) == 1 and conn.bytes_recv == 3
        with pytest.raises(socket.timeout):  # py-amqp holds half a message, waiting
            conn.drain_events(timeout=0.05)
        assert conn.transport._read_buffer == b"" and len(conn.dispatched) == 1
        theirs.sendall(b"".join(parts[3:]) + b"".join(stream[len(parts) + 1:]))
        for _ in range(3):  # the rest of the big one, the empty one, the heartbeat and the last
            conn.drain_events(timeout=1)
        assert conn.dispatched == py_amqp_hands_on(b"".join(stream))
        assert conn.transport._read_buffer == b""
        assert conn.bytes_recv == sum(len(frames_of(part)) for part in stream)
    finally:
        ours.close()
