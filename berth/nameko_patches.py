"""Berth's changes to nameko 2.14 itself, installed by one explicit call: ``install()``.

Whatever starts service containers calls it first: ``berth.run`` (every service process) and
the test suite's root ``conftest.py`` (services started in-process). Importing this module,
or ``berth.service``, changes nothing.

- RPC replies are sent by ``handle_result`` (with no nameko ``Responder``): serialized
  once, without a publisher confirm, as transient messages, encoded by ``berth.amqp_wire``
  and written with the request's ack on the connection the request came in on; a reply
  that cannot go there goes on a long-lived connection of the process's
  ``ReplyConnections``.
- A broker connection dropping (a broker restart) while workers run does not kill the
  service: nameko lets a socket error from a reply, an ack or a requeue escape the worker and
  the container dies with it (tests/chaos/test_broker_restart.py). The broker requeues
  whatever was unacknowledged when the connection went, so a lost ack is only logged.
- py-amqp reads a frame in three exact reads (header, payload, end byte) and a message is
  three frames: nine ``recv`` calls per message (ten with eventlet's retries), and, on a socket
  with a timeout, a ``poll`` before each. ``read_in_chunks`` makes a read take what the socket
  holds (up to ``READ_CHUNK``); the rest waits in the transport's own buffer, where the next
  frame's read finds it (the gateway installs it too: ``gateway.rpc``).
- A delivery whose frames have all arrived is read by ``berth.amqp_wire.take_delivery``
  (``drain_events``), not frame by frame through py-amqp's frame handler: a service's
  requests and events, and in the gateway its live event stream (``read_deliveries``).
- A worker costs less to start (``benchmarks.rpc_floor``, the issue 18 note): an RPC request
  is handed to its worker by the consumer itself when the worker pool has room, not through
  a managed greenthread spawned first; the worker's call id is ``berth.context.unique_id``,
  not a ``uuid4``; nameko's four timing log lines and four debug lines per worker are skipped
  unless DEBUG is on (``run_worker``);
  an entrypoint's signature is computed once, not on every call (``inspect.getcallargs``).
"""
from __future__ import annotations

import collections
import errno
import functools
import inspect
import json
import logging
import socket
import sys
import time
from ssl import SSLSocket

import amqp
import amqp.exceptions
import amqp.transport
from eventlet.patcher import original
import kombu.exceptions
import kombu.serialization
from kombu import Connection
import nameko.containers
from nameko.exceptions import (IncorrectSignature, MethodNotFound, UnserializableValueError,
                               serialize)
from nameko.extensions import Entrypoint
from nameko.messaging import QueueConsumer
from nameko.constants import (AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY,
                              LOGIN_METHOD_CONFIG_KEY, RPC_EXCHANGE_CONFIG_KEY)
from nameko.rpc import RpcConsumer

from berth import amqp_wire
from berth.context import unique_id

_os_select = original("select")  # the OS's, also in a process eventlet patched

log = logging.getLogger(__name__)

BROKER_ERRORS = (OSError, amqp.exceptions.ConnectionError, kombu.exceptions.OperationalError)
# RabbitMQ's pseudo-queue for replies that go straight to the caller's channel
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
# connect once more at once, never after kombu's default pauses (2 s, then more)
FAIL_FAST = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}


def publish_unread(conn: amqp.Connection) -> None:
    """Stop py-amqp reading whatever the broker sent, without waiting, before each publish on
    ``conn`` (``drain_events(timeout=0)``, done because the client announced the
    ``connection.blocked`` capability: a timeout set and restored, two ``ioctl`` on a plain
    socket, and a failed ``recv``). Whoever publishes on ``conn`` calls ``check_open`` first
    instead. The capability was announced already: the broker still sends its notices, and
    ``check_open`` or the next read takes them."""
    conn.client_properties.setdefault("capabilities", {})["connection.blocked"] = False


CHECK_READS = 8  # messages check_open reads at most before a publish (late replies, notices)


def check_open(channel: amqp.Channel) -> None:
    """What py-amqp's read before a publish was for, in one system call when nothing came:
    raise a broker error if the channel's connection is gone or the broker closed it (its
    socket ended, or a ``connection.close``), after reading what came before (a late reply
    reaches its callback, a notice its handler).

    A ``poll`` that does not wait tells whether anything (bytes, or the end of the stream)
    waits on the socket; only then does ``drain_events(timeout=0)`` read, as before, and
    again while more waits (up to CHECK_READS messages). Bytes already in the transport's
    (or TLS's) buffer are read without asking; part of a frame is left for the next read."""
    conn = channel.connection
    if conn is None:
        raise ConnectionError("the channel's connection is closed")
    transport = conn.transport
    for _ in range(CHECK_READS):
        sock = transport.sock
        if not transport._read_buffer and not (isinstance(sock, SSLSocket) and sock.pending()):
            poll = _os_select.poll()  # eventlet's green select has none; this one never waits
            poll.register(sock.fileno(), _os_select.POLLIN)
            if not poll.poll(0):
                return
        try:
            conn.drain_events(timeout=0)
        except socket.timeout:
            return


class ReplyConnections:
    """The broker connections a service process publishes its RPC replies on, kept open.

    nameko's ``Responder`` built a ``Publisher``, a kombu ``Connection`` object (to look up
    kombu's producer pool), a producer and its ``ensure`` retry wrapper for every reply, and
    serialized the reply twice: ~200 µs of CPU per reply, against ~50 µs for serializing once
    and publishing on a connection held open (``benchmarks.rpc_floor``).

    A connection serves one greenthread at a time (a large reply's frames would interleave on
    a shared socket). Before each publish ``check_open`` looks for anything the broker sent,
    so a connection the broker closed (a restart, ``close_connection``) or whose socket
    ended fails there instead of swallowing the reply.
    A publish that fails drops its connection (no closing handshake: a broker that stopped
    answering would hold the worker); if that connection was a held one, the reply is tried
    on the next held one or a new one. A new connection gets one try of ``CONNECT_TIMEOUT``,
    without kombu's retries and pauses; if it fails, the reply is lost with a warning and the
    caller times out, as with any reply lost with the broker. Connections idle ``MAX_IDLE``
    seconds are dropped before the next use (no heartbeats run on them).
    """
    MAX_IDLE = 30.0
    CONNECT_TIMEOUT = 2.0  # seconds for the TCP (and TLS) connect and the AMQP handshake

    def __init__(self):
        self._idle: dict[tuple, collections.deque] = {}

    @classmethod
    def _connect(cls, amqp_uri, ssl, login_method):
        conn = Connection(amqp_uri, ssl=ssl, login_method=login_method, heartbeat=0,
                          connect_timeout=cls.CONNECT_TIMEOUT,
                          transport_options={**FAIL_FAST, "max_retries": 0})
        conn.ensure_connection(**{**FAIL_FAST, "max_retries": 0})
        publish_unread(conn.connection)
        return conn, conn.default_channel

    def _take(self, idle: collections.deque):
        """The most recently used connection, after dropping those idle too long."""
        now = time.monotonic()
        while idle and now - idle[0][2] >= self.MAX_IDLE:
            _drop(idle.popleft()[0])
        if idle:
            conn, channel, _ = idle.pop()
            return conn, channel
        return None

    def publish(self, amqp_uri: str, ssl, login_method, body: bytes, properties: dict,
                exchange: str, routing_key: str) -> None:
        # nameko's AMQP_SSL may be a dict: the pool's key holds it in a hashable form
        key = (amqp_uri, json.dumps(ssl, sort_keys=True, default=str), login_method)
        idle = self._idle.setdefault(key, collections.deque())
        while True:
            held = reused = self._take(idle)
            try:
                held = held or self._connect(amqp_uri, ssl, login_method)
                check_open(held[1])
                amqp_wire.publish(held[1], body, properties, exchange, routing_key)
            except (amqp.exceptions.AMQPError, *BROKER_ERRORS) as exc:
                if held is not None:
                    _drop(held[0])
                if reused:  # it may only have gone stale: the next held one, or a new one
                    continue
                log.warning("RPC reply lost with the broker connection (the caller times "
                            "out): %r", exc)
                return
            except BaseException:  # killed mid-publish: the connection may hold half a frame
                if held is not None:
                    _drop(held[0])
                raise
            idle.append((*held, time.monotonic()))
            return

    def close(self) -> None:
        for idle in self._idle.values():
            while idle:
                _drop(idle.pop()[0])


def _drop(conn) -> None:
    """Close a connection without the closing handshake (kombu's ``collect``)."""
    try:
        conn.collect()
    except Exception:  # noqa: BLE001 - it is being dropped because it failed
        pass


REPLIES = ReplyConnections()


def reply_for(config: dict, message, result, exc_info):
    """What nameko's ``Responder.send_response`` sends, the same reply on the wire:
    ``{"result", "error"}``, in the request's content type, to its ``reply_to`` with its
    ``correlation_id``: through the default exchange to a direct reply-to address (the
    gateway's client), otherwise through the RPC exchange (nameko's proxies); a result that
    cannot be serialized is an ``UnserializableValueError`` for the caller, as in nameko.
    Transient, no confirm (a reply goes to the caller's channel or exclusive queue: persisting
    it buys nothing, and a reply lost with the broker is the caller's timeout either way).

    Returns ``(body, properties, exchange, routing_key)`` and the ``result, exc_info`` that
    the worker reports (nameko's: the serialization error in place of the result)."""
    error = serialize(exc_info[1]) if exc_info is not None else None
    content_type = message.properties["content_type"]
    serializer = kombu.serialization.registry.type_to_name[content_type]
    try:
        content_type, encoding, body = kombu.serialization.dumps(
            {"result": result, "error": error}, serializer)
    except Exception:  # noqa: BLE001 - nameko's "disaster avoidance" check, done once
        exc_info = sys.exc_info()
        error = serialize(UnserializableValueError(result))  # guaranteed to serialize
        result = None
        content_type, encoding, body = kombu.serialization.dumps(
            {"result": None, "error": error}, serializer)
    if isinstance(body, str):
        body = body.encode(encoding or "utf-8")
    properties = {"content_type": content_type, "content_encoding": encoding,
                  "delivery_mode": 1, "priority": 0, "application_headers": {}}
    correlation_id = message.properties.get("correlation_id")
    if correlation_id is not None:
        properties["correlation_id"] = correlation_id
    reply_to = message.properties["reply_to"]
    # RabbitMQ's direct reply-to (the gateway's client): straight to the caller's channel;
    # else the RPC exchange, by name (nameko's get_rpc_exchange)
    exchange = ("" if reply_to.startswith(DIRECT_REPLY_TO)
                else config.get(RPC_EXCHANGE_CONFIG_KEY, "nameko-rpc"))
    return (body, properties, exchange, reply_to), result, exc_info


# replies larger than this go on a reply connection even when they would fit one frame: a large
# write holds the consumer connection's frame-writer lock (its acks and other replies wait
# behind it) and makes that connection a heavy publisher for RabbitMQ's flow control, while
# the one write saved matters only beside a small message's own cost
REPLY_WITH_ACK_MAX = 16 * 1024


def reply_and_ack(message, body: bytes, properties: dict, exchange: str,
                  routing_key: str) -> bool | None:
    """Publish the reply on the channel the request came in on and ack the request there, in
    one write (``amqp_wire.publish_and_ack``): True once written.

    None, with nothing written, when that cannot be done: the request's connection is gone
    (the broker requeues the request), the message was settled already or needs no ack, or
    the reply is one ``amqp_wire`` does not encode. False, logged, when
    the write failed: the connection was broken off (part of a frame may be on the wire), so
    the request cannot be acked; the broker requeues it and its redelivery is answered 503
    (``berth.service.Rpc``), while the reply itself goes on a reply connection. A reply
    larger than ``REPLY_WITH_ACK_MAX`` is not tried."""
    channel = message.channel  # (a closed connection: publish_and_ack writes nothing)
    if len(body) > REPLY_WITH_ACK_MAX or channel is None or message.acknowledged:
        return None
    no_ack = channel.no_ack_consumers
    if no_ack and message.delivery_info.get("consumer_tag") in no_ack:
        return None
    try:
        sent = amqp_wire.publish_and_ack(channel, body, properties, exchange, routing_key,
                                         message.delivery_tag)
    except BROKER_ERRORS as exc:
        log.warning("RPC reply and ack not written on the request's connection (%r): it is "
                    "broken off; the reply goes on a reply connection", exc)
        return False
    if not sent:
        return None
    message._state = "ACK"  # kombu's Message.ack, which sent the same frame
    return True


def handle_result(self: RpcConsumer, message, result, exc_info):
    """``RpcConsumer.handle_result``: the reply, then the request's ack, as in nameko.

    Both go in one write on the connection the request came in on (``reply_and_ack``): one
    publish and one ack for the broker to read from one socket, instead of a reply on
    another connection (another of RabbitMQ's connection processes to wake, and a ``poll``
    here before it, ``check_open``) and the ack on this one (``make bench-rpc-floor``: the
    service's CPU per call -21 %, RabbitMQ's -5 %; the issue 18 note). Otherwise the reply
    goes on one of the process's held ``REPLIES`` connections, and the ack as nameko sends
    it unless the write broke the connection off. Without the ``Responder`` and the kombu
    ``Exchange`` nameko built for every reply only to read their settings and name.

    What it costs: the consumer's connection now publishes, so RabbitMQ's flow control
    applies to it. During a memory or disk alarm the broker reads nothing from it (replies,
    acks, the ``basic.cancel`` of a graceful stop, which then waits for the alarm to clear;
    replies waited for the alarm before too). And a reply the broker refuses with a channel
    error (an RPC exchange that is missing: services declare it) closes the channel the
    requests arrive on: its requests in flight are redelivered, answered 503."""
    config = self.container.config
    reply, result, exc_info = reply_for(config, message, result, exc_info)
    sent = reply_and_ack(message, *reply)
    if not sent:
        REPLIES.publish(config[AMQP_URI_CONFIG_KEY], config.get(AMQP_SSL_CONFIG_KEY),
                        config.get(LOGIN_METHOD_CONFIG_KEY), *reply)
        if sent is None:
            self.queue_consumer.ack_message(message)
    return result, exc_info


# the header naming the method of a request sent through the default exchange straight to the
# service's queue (the gateway's client): nameko's proxies name it in the routing key instead
METHOD_HEADER = "berth.method"


def handle_rpc_request(self: RpcConsumer, body, message):
    """``RpcConsumer.handle_message``: the request's method is the one its ``METHOD_HEADER``
    names (a request published to the service's queue through the default exchange; the
    header is then taken out, so that it does not ride on as context data on the worker's
    own calls and events), else the one its routing key names (``<service>.<method>``,
    through nameko's RPC exchange, compared as nameko compares it); a method the service does
    not have is a ``MethodNotFound`` for the caller, named as nameko names it. The provider
    is found by comparing method names, without formatting a key for each of the service's
    methods on every request."""
    headers = message.headers
    method = headers.pop(METHOD_HEADER, None) if headers else None
    try:
        if method is None:
            service, _, method = message.delivery_info["routing_key"].rpartition(".")
            if service != self.container.service_name:
                raise MethodNotFound(method)
        for provider in self._providers:
            if provider.method_name == method:
                break
        else:
            raise MethodNotFound(method)
        provider.handle_message(body, message)
    except Exception:  # noqa: BLE001 - as nameko: every error is the caller's reply
        self.handle_result(message, None, sys.exc_info())


def _tolerate_lost_connection(settle):
    @functools.wraps(settle)
    def settle_unless_connection_lost(self, message):
        try:
            settle(self, message)
        except BROKER_ERRORS as exc:
            log.warning("%s: the broker connection is gone (%r); the broker requeues the "
                        "message", settle.__name__, exc)
    settle_unless_connection_lost.tolerates_lost_connection = True
    return settle_unless_connection_lost


READ_CHUNK = 65536


def _read_in_chunks(self, n, initial=False,
                    _errnos=(errno.ENOENT, errno.EAGAIN, errno.EINTR)):
    """``_read`` of py-amqp 5.4's TCP and TLS transports (exactly ``n`` bytes), except that
    each ``recv`` asks for up to ``READ_CHUNK`` bytes, not for the ``n`` still missing: it
    returns what has arrived, and what is beyond ``n`` stays in ``_read_buffer`` for the
    next call, which py-amqp keeps across timeouts and errors as before.

    py-amqp reads exactly (celery/py-amqp#33) because Celery's event loop waits for the
    socket to be readable before it reads: bytes held here would not wake it. Nothing in
    Berth waits that way: every consumer here reads with ``drain_events``, which looks in
    this buffer first (nameko's consumer, the gateway's RPC client and its event stream)."""
    recv = self._quick_recv
    rbuf = self._read_buffer
    try:
        while len(rbuf) < n:
            try:
                data = recv(READ_CHUNK)
            except OSError as exc:
                if exc.errno in _errnos:
                    if initial and self.raise_on_initial_eintr:
                        raise socket.timeout() from None
                    continue
                raise
            if not data:
                raise OSError("Server unexpectedly closed connection")
            rbuf += data
    except:  # noqa: E722 - as py-amqp: keep what was read, whatever ends the read
        self._read_buffer = rbuf
        raise
    result, self._read_buffer = rbuf[:n], rbuf[n:]
    return result


def read_in_chunks() -> None:
    """Make every py-amqp connection of this process read in chunks (``_read_in_chunks``)."""
    for transport in (amqp.transport.TCPTransport, amqp.transport.SSLTransport):
        transport._read = _read_in_chunks


_DRAIN_EVENTS = amqp.Connection.drain_events


def drain_events(self: amqp.Connection, timeout=None) -> None:
    """``amqp.Connection.drain_events`` (read until one method has arrived, and dispatch it):
    a delivery whose frames have all arrived is taken by ``amqp_wire.take_delivery`` and
    handed to the channel as py-amqp's frame handler would hand it, without three
    ``read_frame`` calls and the handler's state machine (~14 % of the users service's CPU
    per request went to reading its requests, ``make bench-profile``). While the buffer
    holds nothing or part of a delivery, it waits for more by ``timeout`` (raising
    ``socket.timeout`` as py-amqp does); anything else at the head of the buffer (another
    method, a heartbeat, a body in several frames) is py-amqp's."""
    transport = self.transport
    while True:
        taken = amqp_wire.take_delivery(self)
        if taken is None:
            return _DRAIN_EVENTS(self, timeout)
        if taken is not amqp_wire.INCOMPLETE:
            self.on_inbound_method(*taken)
            return None
        with transport.having_timeout(timeout):
            amqp_wire.read_more(transport)


_QUEUE_CONSUMER_HANDLE = QueueConsumer.handle_message


def _has_room(pool) -> bool:
    """Whether ``pool.spawn`` would start a greenthread now, without waiting: a free slot and
    nobody queued for one (eventlet's semaphore serves its waiters first, and a slot freed
    by a finished worker stays counted free until the hub hands it to the first waiter)."""
    return pool.free() > 0 and not pool.sem._waiters


def handle_message_in_place(self: QueueConsumer, provider, body, message):
    """``QueueConsumer.handle_message``, without its managed greenthread for an RPC request
    when the service's worker pool has room: ``RpcConsumer.handle_message`` only checks the
    request and spawns the worker, which then does not wait for a free slot (the managed
    thread existed so that waiting never holds up the consumer). A redelivered request (answered
    at once: ``berth.service.Rpc``) and anything else go the usual way."""
    if (isinstance(provider, RpcConsumer) and _has_room(self.container._worker_pool)
            and not message.delivery_info.get("redelivered")):
        provider.handle_message(body, message)  # catches its errors (they are replies)
        return
    _QUEUE_CONSUMER_HANDLE(self, provider, body, message)


_RUN_WORKER = nameko.containers.ServiceContainer._run_worker


def run_worker(self: nameko.containers.ServiceContainer, worker_ctx, handle_result):
    """``ServiceContainer._run_worker`` of nameko 2.14, step for step (dependencies injected
    and set up, the method called, its error logged as nameko logs it, ``handle_result``, the
    dependencies' results and teardown), without its four debug lines and four timers unless
    DEBUG is on (then it is nameko's own). One of those lines joined the worker's call-id
    stack into a string on every call, printed or not, which built the worker's call id and
    stack (a ``unique_id``, a format, a deque); they are now built only when something uses
    them (a nested call or an event carries them). It also means a caller's malformed
    ``call_id_stack`` header (not strings) no longer kills the service unless DEBUG is on:
    nameko's join raised in the worker thread, and nameko kills the container for that."""
    if nameko.containers._log.isEnabledFor(logging.DEBUG):
        return _RUN_WORKER(self, worker_ctx, handle_result)
    self._inject_dependencies(worker_ctx)
    self._worker_setup(worker_ctx)
    result = exc_info = None
    method = getattr(worker_ctx.service, worker_ctx.entrypoint.method_name)
    try:
        result = method(*worker_ctx.args, **worker_ctx.kwargs)
    except Exception as exc:
        if isinstance(exc, worker_ctx.entrypoint.expected_exceptions):
            nameko.containers._log.warning('(expected) error handling worker %s: %s',
                                           worker_ctx, exc, exc_info=True)
        else:
            nameko.containers._log.exception('error handling worker %s: %s', worker_ctx, exc)
        exc_info = sys.exc_info()
    if handle_result is not None:
        result, exc_info = handle_result(worker_ctx, result, exc_info)
    self._worker_result(worker_ctx, result, exc_info)
    del exc_info  # as nameko: breaks the cycle through the traceback
    self._worker_teardown(worker_ctx)
    return None


@functools.lru_cache(maxsize=None)
def _signature(service_cls, method_name: str) -> inspect.Signature:
    # as getcallargs: the signature of the method as decorated, not of what it wraps
    return inspect.signature(getattr(service_cls, method_name), follow_wrapped=False)


def check_signature(self: Entrypoint, args, kwargs) -> None:
    """``Entrypoint.check_signature`` (arguments that do not fit the method are an
    IncorrectSignature for the caller), with the signature computed once per method."""
    try:
        _signature(self.container.service_cls, self.method_name).bind(None, *args, **kwargs)
    except TypeError as exc:
        raise IncorrectSignature(str(exc)) from None


# the cheaper worker start: (where, name, replacement), set by install()
# (benchmarks.rpc_floor puts nameko's own back to measure the difference)
WORKER_START = (
    (QueueConsumer, "handle_message", handle_message_in_place),
    (nameko.containers, "new_call_id", unique_id),
    (nameko.containers.ServiceContainer, "_run_worker", run_worker),
    (Entrypoint, "check_signature", check_signature),
)


# deliveries read by berth.amqp_wire: (where, name, replacement), set by
# install() (benchmarks.rpc_floor puts py-amqp's own back to measure the difference)
DELIVERY_FRAMES = (
    (amqp.Connection, "drain_events", drain_events),
)


def read_deliveries() -> None:
    """Make every py-amqp connection of this process read in chunks (``read_in_chunks``) and
    take whole deliveries itself (``DELIVERY_FRAMES``): ``install`` does it for a service
    process, ``gateway.rpc`` for the gateway's (its RPC clients and live event stream)."""
    read_in_chunks()
    for owner, name, replacement in DELIVERY_FRAMES:
        setattr(owner, name, replacement)


def install() -> None:
    """Install the changes above into nameko; calling it again changes nothing."""
    read_deliveries()
    RpcConsumer.handle_result = handle_result
    RpcConsumer.handle_message = handle_rpc_request
    for owner, name, replacement in WORKER_START:
        setattr(owner, name, replacement)
    for name in ("ack_message", "requeue_message"):
        settle = getattr(QueueConsumer, name)
        if not getattr(settle, "tolerates_lost_connection", False):
            setattr(QueueConsumer, name, _tolerate_lost_connection(settle))
