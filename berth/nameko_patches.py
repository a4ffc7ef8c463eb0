"""Berth's changes to nameko 2.14 itself, installed by one explicit call: ``install()``.

Whatever starts service containers calls it first: ``berth.run`` (every service process) and
the test suite's root ``conftest.py`` (services started in-process). Importing this module,
or ``berth.service``, changes nothing.

- RPC replies are published by ``send_reply``: serialized once, without a publisher confirm,
  as transient messages, on long-lived connections of the process's ``ReplyConnections``.
- A broker connection dropping (a broker restart) while workers run does not kill the
  service: nameko lets a socket error from a reply, an ack or a requeue escape the worker and
  the container dies with it (tests/chaos/test_broker_restart.py). The broker requeues
  whatever was unacknowledged when the connection went, so a lost ack is only logged.
"""
from __future__ import annotations

import functools
import logging
import queue
import sys
import time

import amqp
import amqp.exceptions
from eventlet.patcher import original
import kombu.exceptions
import kombu.serialization
from kombu import Connection
from nameko.exceptions import UnserializableValueError, serialize
from nameko.messaging import QueueConsumer
from nameko.rpc import Responder

log = logging.getLogger(__name__)

BROKER_ERRORS = (OSError, amqp.exceptions.ConnectionError, kombu.exceptions.OperationalError)


class ReplyConnections:
    """The broker connections a service process publishes its RPC replies on, kept open.

    nameko's ``Responder`` built a ``Publisher``, a kombu ``Connection`` object (to look up
    kombu's producer pool), a producer and its ``ensure`` retry wrapper for every reply, and
    serialized the reply twice: ~200 µs of CPU per reply, against ~50 µs for serializing once
    and publishing on a connection held open (``benchmarks.profile_hops``; measured in the
    closing note of issue 18).

    A connection serves one greenthread at a time (a large reply's frames would interleave on
    a shared socket). Nothing is ever read from it, so before each use it must have nothing
    to read: anything there (the broker closing it, at a restart or ``close_connection``; or
    the end of the stream) means it is replaced, not written to (a write to a socket whose
    peer has gone succeeds locally, and the reply would be lost). One idle for ``MAX_IDLE``
    seconds is replaced too, as no heartbeats run on it. A publish that fails closes its
    connection and is tried once more on a new one; after that the reply is lost with a
    warning and the caller times out, as with any reply lost with the broker.
    """
    MAX_IDLE = 30.0

    def __init__(self):
        self._idle: dict[tuple, queue.LifoQueue] = {}

    def _connect(self, key):
        amqp_uri, ssl, login_method = key
        conn = Connection(amqp_uri, ssl=ssl, login_method=login_method, heartbeat=0,
                          transport_options={"max_retries": 1})
        conn.ensure_connection(max_retries=1)
        return conn, conn.default_channel

    def publish(self, key, body: bytes, properties: dict, exchange: str, routing_key: str):
        idle = self._idle.setdefault(key, queue.LifoQueue())
        for attempt in (1, 2):
            held = None
            try:
                while held is None:
                    conn, channel, used = idle.get_nowait()
                    if time.monotonic() - used < self.MAX_IDLE and _quiet(conn):
                        held = conn, channel
                    else:
                        _close(conn)
            except queue.Empty:
                pass
            try:
                if held is None:
                    held = self._connect(key)
                conn, channel = held
                channel.basic_publish(amqp.Message(body, **properties), exchange=exchange,
                                      routing_key=routing_key)
            except BROKER_ERRORS as exc:
                if held is not None:
                    _close(held[0])
                if attempt == 2:
                    log.warning("RPC reply lost with the broker connection (the caller times "
                                "out): %r", exc)
                continue
            idle.put((conn, channel, time.monotonic()))
            return

    def close(self) -> None:
        for idle in self._idle.values():
            while True:
                try:
                    _close(idle.get_nowait()[0])
                except queue.Empty:
                    break


_select = original("select").select  # the real call, also in an eventlet-patched process


def _quiet(conn) -> bool:
    """Whether a connection nothing is read from has nothing to read (it is still open)."""
    try:
        readable, _, _ = _select([conn.connection.sock], [], [], 0)
    except (OSError, ValueError, AttributeError):  # closed already
        return False
    return not readable


def _close(conn) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - it is being dropped because it failed
        pass


REPLIES = ReplyConnections()


def send_reply(self: Responder, result, exc_info):
    """``Responder.send_response``, with the same reply on the wire: ``{"result", "error"}``,
    in the request's content type, to its ``reply_to`` with its ``correlation_id``, through
    the RPC exchange; a result that cannot be serialized is an ``UnserializableValueError``
    for the caller, as in nameko. Transient, no confirm (a reply goes to the caller's
    exclusive queue: persisting it buys nothing, and a reply lost with the broker is the
    caller's timeout either way)."""
    error = serialize(exc_info[1]) if exc_info is not None else None
    content_type = self.message.properties["content_type"]
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
    correlation_id = self.message.properties.get("correlation_id")
    if correlation_id is not None:
        properties["correlation_id"] = correlation_id
    REPLIES.publish((self.amqp_uri, self.ssl, self.login_method), body, properties,
                    self.exchange.name, self.message.properties["reply_to"])
    return result, exc_info


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


def install() -> None:
    """Install the changes above into nameko; calling it again changes nothing."""
    Responder.send_response = send_reply
    for name in ("ack_message", "requeue_message"):
        settle = getattr(QueueConsumer, name)
        if not getattr(settle, "tolerates_lost_connection", False):
            setattr(QueueConsumer, name, _tolerate_lost_connection(settle))
