"""An RPC's small messages on the wire, encoded and read by Berth where py-amqp's general
codec costs most.

- ``publish``: a small message published in one write, its frames encoded here. py-amqp
  encodes every publish with its general serializer: the method's arguments and the content
  header's properties are written field by field through format strings and ``BytesIO``
  (``amqp.serialization.dumps`` and ``GenericContent._serialize_properties``), ~25 µs of the
  ~46 µs a ``basic_publish`` costs on a plain socket (measured in the issue 18 note). Berth
  publishes two kinds of small message per RPC, the gateway's request and the service's
  reply, whose properties are short strings, octets and a table of strings: this encodes
  exactly those, with ``struct`` and byte joins, into the same bytes py-amqp would write
  (``tests/unit/test_amqp_wire.py`` compares them), and hands them to the transport in one
  write, as py-amqp's own fast path does. Anything else goes to py-amqp's ``basic_publish``
  unchanged: a body larger than one frame, a property or header value of another type, a
  string over 255 bytes, a channel in confirm mode.
- ``publish_and_ack`` (every service's RPC replies, ``berth.nameko_patches.handle_result``):
  a reply encoded as ``publish`` encodes it and the request's ``basic.ack``
  (``ack_frame``), written together on the request's own connection under py-amqp's
  frame-writer lock (``write_lock``).
- ``next_delivery`` (the gateway's client) and ``take_delivery`` (every consumer of a service
  process, through ``berth.nameko_patches.drain_events``): a delivery whose frames have all
  arrived, read from the transport's buffer in one pass instead of three ``read_frame`` calls
  and py-amqp's frame handler. Anything else at the head of the buffer stays py-amqp's.
"""
from __future__ import annotations

import errno
import socket
from ssl import SSLError
from struct import Struct

import amqp
from amqp.exceptions import RecoverableConnectionError
from amqp.method_framing import FRAME_OVERHEAD
from amqp.serialization import decode_properties_basic

_FRAME = Struct(">BHI")     # frame type, channel, payload size
_CONTENT_HEADER = Struct(">HHQ")  # class id, weight, body size
_LONG = Struct(">I")
_FLAGS = Struct(">H")
FRAME_END = 0xCE
_FRAME_END_BYTE = bytes((FRAME_END,))
_BASIC_PUBLISH = b"\x00\x3c\x00\x28"  # class 60 (basic), method 40 (publish)
_BASIC_CLASS = 60
_RESERVED_SHORT = b"\x00\x00"
# the content header's properties in wire order with their flag bits (py-amqp's table: one
# flag word holds them all)
_PROPERTIES = tuple((name, kind, 1 << (15 - i))
                    for i, (name, kind) in enumerate(amqp.Message.PROPERTIES))
assert len(_PROPERTIES) <= 15  # noqa: S101 - a second flag word would change the layout


class _NotSimple(Exception):
    """A message this module does not encode: py-amqp's serializer takes it."""


def _shortstr(value) -> bytes:
    raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    if not isinstance(raw, bytes) or len(raw) > 255:
        raise _NotSimple
    return bytes((len(raw),)) + raw


def _table(headers: dict) -> bytes:
    """A table whose keys and values are strings (each value a long string, ``S``)."""
    items = []
    for key, value in headers.items():
        if not isinstance(value, str) or not isinstance(key, str):
            raise _NotSimple
        raw = value.encode("utf-8", "surrogatepass")
        items.append(_shortstr(key) + b"S" + _LONG.pack(len(raw)) + raw)
    data = b"".join(items)
    return _LONG.pack(len(data)) + data


def encode_properties(properties: dict) -> bytes:
    """The content header's property flags and list, as ``_serialize_properties`` writes
    them; ``_NotSimple`` for a property this module does not encode."""
    flags = 0
    parts = []
    for name, kind, bit in _PROPERTIES:
        value = properties.get(name)
        if value is None:
            continue
        flags |= bit
        if kind == "s":
            parts.append(_shortstr(value or ""))
        elif kind == "o" and type(value) is int and 0 <= value <= 255:
            parts.append(bytes((value,)))
        elif kind == "F" and isinstance(value, dict):
            parts.append(_table(value))
        else:
            raise _NotSimple
    return _FLAGS.pack(flags) + b"".join(parts)


def publish_frames(channel_id: int, body: bytes, properties: dict, exchange: str,
                   routing_key: str, mandatory: bool, frame_max: int) -> bytes:
    """The three frames (method, content header, body) of a ``basic.publish`` as one byte
    string; ``_NotSimple`` when they would not fit py-amqp's single-buffer write."""
    if not isinstance(body, bytes):
        raise _NotSimple
    args = (_RESERVED_SHORT + _shortstr(exchange or "") + _shortstr(routing_key or "")
            + (b"\x01" if mandatory else b"\x00"))
    props = encode_properties(properties)
    if len(args) + len(props) + len(body) + FRAME_OVERHEAD > frame_max - 8:
        raise _NotSimple
    method = _BASIC_PUBLISH + args
    header = _CONTENT_HEADER.pack(_BASIC_CLASS, 0, len(body)) + props
    frames = [_FRAME.pack(1, channel_id, len(method)), method, _FRAME_END_BYTE,
              _FRAME.pack(2, channel_id, len(header)), header, _FRAME_END_BYTE]
    if body:
        frames += (_FRAME.pack(3, channel_id, len(body)), body, _FRAME_END_BYTE)
    return b"".join(frames)


def _confirms(channel: amqp.Channel, conn: amqp.Connection) -> bool:
    """Whether a publish on ``channel`` waits for a confirm, which py-amqp's ``basic_publish``
    reads: the channel has selected confirms (``_confirm_selected``) or, on a connection made
    with ``confirm_publish``, will select them at its first publish."""
    return channel._confirm_selected or getattr(conn, "confirm_publish", False)


# --- a reply and the request's ack, in one write -------------------------------------------

_BASIC_ACK = b"\x00\x3c\x00\x50"  # class 60 (basic), method 80 (ack)
_LONGLONG = Struct(">Q")


def ack_frame(channel_id: int, delivery_tag: int) -> bytes:
    """A ``basic.ack`` of one delivery (``multiple`` off), as py-amqp's ``basic_ack`` writes
    it."""
    method = _BASIC_ACK + _LONGLONG.pack(delivery_tag) + b"\x00"
    return _FRAME.pack(1, channel_id, len(method)) + method + _FRAME_END_BYTE


def write_lock(conn: amqp.Connection):
    """The lock py-amqp's frame writer holds while it writes each method (with its content)
    on ``conn``, so that a message written here never lands between the frames of one written
    by another greenthread or thread (an ack, a heartbeat, a publish whose ``sendall`` waited
    for room): py-amqp 5.4 keeps it in the writer's closure (``buffer_lock``,
    ``amqp.method_framing.frame_writer``). None if the writer has none (another py-amqp):
    then nothing may be written beside py-amqp's writer. Looked up once per writer (a
    reconnect makes a new one)."""
    writer = conn._frame_writer
    cached = conn.__dict__.get("_berth_write_lock")
    if cached is not None and cached[0] is writer:
        return cached[1]
    cells = dict(zip(getattr(getattr(writer, "__code__", None), "co_freevars", ()),
                     getattr(writer, "__closure__", None) or ()))
    cell = cells.get("buffer_lock")
    lock = cell.cell_contents if cell is not None else None
    if not (hasattr(lock, "__enter__") and hasattr(lock, "__exit__")):
        lock = None
    conn._berth_write_lock = (writer, lock)
    return lock


def publish_and_ack(channel: amqp.Channel, body: bytes, properties: dict, exchange: str,
                    routing_key: str, delivery_tag: int) -> bool:
    """Publish a message (not mandatory) and ack the delivery ``delivery_tag`` on ``channel``,
    in this order and in one write, holding py-amqp's frame-writer lock (``write_lock``): the
    same frames as ``basic_publish`` then ``basic_ack``, one system call and one read for the
    broker instead of two. False, with nothing written, when this module does not encode the
    message (``publish``'s rules), the channel publishes with confirms, the connection's
    writer has no lock to share, or the connection closed while this waited for the lock;
    the caller then publishes and acks the usual way.

    A write that fails may have left part of a frame on the wire (a ``socket.timeout`` part
    way: the socket's timeout is the one its consumer set for its wait; or the greenthread
    killed in ``sendall``): the connection is then broken off (``break_off``), so that nothing
    is written after the partial frame and its owner reconnects, and the error raised."""
    conn = channel.connection
    if not conn or _confirms(channel, conn):
        return False
    lock = write_lock(conn)
    if lock is None:
        return False
    try:
        data = publish_frames(channel.channel_id, body, properties, exchange, routing_key,
                              False, conn.frame_max)
    except _NotSimple:
        return False
    data += ack_frame(channel.channel_id, delivery_tag)
    with lock:
        # (py-amqp's ``transport`` property would open a new connection for a closed one)
        transport = conn._transport if channel.connection is conn else None
        if transport is None:
            return False
        try:
            transport.write(data)
        except BaseException:
            break_off(transport)
            raise
    conn.bytes_sent += 1
    return True


def break_off(transport) -> None:
    """End a connection on which a write failed part way: marked disconnected, its socket shut
    down both ways, so that its reader gets the end of the stream (its owner reconnects: the
    broker requeues what was unacknowledged) and nothing more reaches the broker after a
    partial frame."""
    transport.connected = False
    sock = getattr(transport, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def publish(channel: amqp.Channel, body: bytes, properties: dict, exchange: str,
            routing_key: str, mandatory: bool = False) -> None:
    """``channel.basic_publish(amqp.Message(body, **properties), exchange, routing_key,
    mandatory)``, with the same bytes on the wire and the same errors; encoded here when the
    message is simple (the module's docstring), by py-amqp otherwise. Whoever calls it on a
    connection with py-amqp's pre-publish read (``connection.blocked`` announced) reads first:
    ``berth.nameko_patches.check_open``."""
    conn = channel.connection
    if not conn:
        raise RecoverableConnectionError("basic_publish: connection closed")
    try:
        if _confirms(channel, conn):
            raise _NotSimple
        data = publish_frames(channel.channel_id, body, properties, exchange, routing_key,
                              mandatory, conn.frame_max)
    except _NotSimple:
        channel.basic_publish(amqp.Message(body, **properties), exchange=exchange,
                              routing_key=routing_key, mandatory=mandatory)
        return
    try:
        conn.transport.write(data)
    except (socket.timeout, TimeoutError):  # as py-amqp: the socket is dead (py-amqp#452)
        raise RecoverableConnectionError("basic_publish: timed out") from None
    conn.bytes_sent += 1


# --- reading a delivery -----------------------------------------------------------------------

INCOMPLETE = object()  # next_delivery: only the start of a delivery is buffered so far
_METHOD_SIG = Struct(">HH")
_BASIC_DELIVER = (60, 60)
# errors after which py-amqp keeps the connection (amqp.transport._UNAVAIL)
_UNAVAILABLE = {errno.EAGAIN, errno.EINTR, errno.ENOENT, errno.EWOULDBLOCK}


def next_delivery(conn: amqp.Connection, channel_id: int):
    """A ``basic.deliver`` on ``channel_id`` whose frames (method, content header, and the
    body in at most one frame) are whole at the head of ``conn``'s transport's buffer: its
    ``(properties, body)``, its bytes taken from the buffer. ``INCOMPLETE`` when the buffer
    holds only the start of such a delivery (or nothing); ``None``, with nothing taken, when
    something else is at its head (another method, a heartbeat, a larger body, a malformed
    frame), for py-amqp's own reader (``drain_events``) to take.

    py-amqp reads frame by frame through its frame handler, which keeps a message's state
    between frames: this takes only deliveries whose frames are all here, so that handler
    never sees half of one. Deliveries on this channel carry no delivery info the caller uses
    (replies by direct reply-to are not acknowledged)."""
    taken = _take(conn, channel_id)
    if taken is None or taken is INCOMPLETE:
        return taken
    _channel, _method, header, body = taken
    properties, _ = decode_properties_basic(header, 12)
    return properties, b"" if body is None else body


def take_delivery(conn: amqp.Connection):
    """``next_delivery`` on any channel, given as py-amqp's frame handler hands a delivery to
    ``conn.on_inbound_method``: ``(channel_id, method_sig, method_payload, message)``, the
    message built by py-amqp's own ``Message.inbound_header`` and ``inbound_body`` (so the
    channel's dispatch, the consumer's callback and the delivery info are py-amqp's, as are
    the properties). ``INCOMPLETE`` and ``None`` as ``next_delivery``: the frames all here,
    or nothing taken. (RabbitMQ writes a message's frames together: while py-amqp holds half
    of one, the head of the buffer is its header or body, which this leaves alone.)"""
    taken = _take(conn, None)
    if taken is None or taken is INCOMPLETE:
        return taken
    channel_id, args, header, body = taken
    message = amqp.Message(frame_method=_BASIC_DELIVER, frame_args=args)
    message.inbound_header(header)
    if body is not None:
        message.inbound_body(body)
    return channel_id, _BASIC_DELIVER, args, message


def _take(conn: amqp.Connection, channel_id: int | None):
    """The frames of a whole delivery at the head of the buffer (``_delivery_at_head``),
    taken from it and counted before anything is decoded, as py-amqp's reads take them."""
    transport = conn.transport
    buf = transport._read_buffer
    found = _delivery_at_head(buf, channel_id)
    if found is None or found is INCOMPLETE:
        return found
    *frames, end = found
    transport._read_buffer = buf[end:]
    conn.bytes_recv += 2 if frames[3] is None else 3  # frames received, as py-amqp counts
    return frames


def _delivery_at_head(buf: bytes, channel_id: int | None):
    """The frames of a whole ``basic.deliver`` at the head of ``buf`` (on ``channel_id``, or on
    any channel if it is None): ``(channel, method payload, content header payload, body or
    None when it is empty, where the last frame ends)``, each payload its own bytes, as
    py-amqp's frame reader gives them; ``INCOMPLETE`` or ``None`` as ``next_delivery``."""
    if len(buf) < 7:
        return INCOMPLETE
    if channel_id is None:
        channel_id = _FRAME.unpack_from(buf, 0)[1]
    method = _whole_frame(buf, 0, 1, channel_id)
    if method is None or method is INCOMPLETE:
        return method
    method_start, method_end = method
    if method_end - method_start < 4 \
            or _METHOD_SIG.unpack_from(buf, method_start) != _BASIC_DELIVER:
        return None
    header = _whole_frame(buf, method_end + 1, 2, channel_id)
    if header is None or header is INCOMPLETE:
        return header
    header_start, end = header
    if end - header_start < 14:
        return None
    class_id, _weight, body_size = _CONTENT_HEADER.unpack_from(buf, header_start)
    if class_id != _BASIC_CLASS:
        return None
    header = buf[header_start:end]
    body = None
    if body_size:
        frame = _whole_frame(buf, end + 1, 3, channel_id)
        if frame is None or frame is INCOMPLETE:
            return frame
        body_start, end = frame
        if end - body_start != body_size:
            return None
        body = buf[body_start:end]
    return channel_id, buf[method_start:method_end], header, body, end + 1


def _whole_frame(buf: bytes, at: int, frame_type: int, channel_id: int):
    """Where the payload of the frame at ``at`` starts and ends, if it is a whole frame of
    ``frame_type`` on ``channel_id``; ``INCOMPLETE`` if it has not all arrived; ``None`` if
    another frame is there, or one whose end byte is wrong."""
    size = len(buf)
    if size < at + 7:
        return INCOMPLETE
    kind, channel, length = _FRAME.unpack_from(buf, at)
    if kind != frame_type or channel != channel_id:
        return None
    start = at + 7
    end = start + length
    if size <= end:
        return INCOMPLETE
    if buf[end] != FRAME_END:
        return None
    return start, end


def read_more(transport) -> None:
    """Wait, by the socket's timeout, for more bytes, and add what the socket holds to the
    transport's buffer (through the transport's own read: its errors, TLS and EINTR handling;
    ``berth.nameko_patches.read_in_chunks`` makes it take all that has arrived). Errors are
    those of py-amqp's ``read_frame``: a TLS read that timed out is a ``socket.timeout``, and
    a socket error marks the transport disconnected."""
    held = len(transport._read_buffer)
    try:
        data = transport._read(held + 1, True)
    except socket.timeout:
        raise
    except (OSError, SSLError) as exc:
        if isinstance(exc, SSLError) and "timed out" in str(exc):
            raise socket.timeout() from None
        if exc.errno not in _UNAVAILABLE:
            transport.connected = False
        raise
    transport._read_buffer = data + transport._read_buffer
