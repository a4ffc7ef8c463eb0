"""RPC from Flask threads: a pool of RPC clients, one per request, each with a deadline; a
client that saw a transport error or a timeout is closed and replaced.

One client must never serve two threads at once (ENGINEERING.md: frames corrupt and hang).

``RpcClient`` speaks nameko's RPC wire protocol itself (what ``nameko.standalone.rpc``'s
cluster proxy sends and expects) on one connection it owns: the request is published on the
same channel that consumes its replies. Measured with
``benchmarks.profile_hops``, the cluster proxy spent most of the gateway's RPC CPU on things
this does not need:

- a publisher confirm per request (a broker round trip and a read): nameko asks for one only
  to learn that a request was unroutable (no service ever declared its queue). Here the
  request is ``mandatory`` and the broker's ``basic.return`` arrives on the channel the
  caller is reading anyway, before any reply could: ``UnknownService`` as fast as before;
- a kombu producer pool, a new ``Connection`` object per publish to look it up, and the
  ``ensure`` retry wrapper (a failed publish here is a 503 and a new client, as before);
- the RPC exchange's topic lookup: a request goes through the default exchange straight to
  the service's queue (``rpc-<service>``, which nameko declares), its method in a header
  (``berth.nameko_patches.METHOD_HEADER``; RabbitMQ's CPU per request -6 %, measured in
  the issue 18 note); nameko's proxies still route by the topic, which services accept too;
- a reply queue and its binding per client, and an ack per reply: replies come by RabbitMQ's
  direct reply-to (``amq.rabbitmq.reply-to``, consumed without acks on the channel that
  publishes the requests); the service publishes each reply straight to that channel
  (``berth.nameko_patches.send_reply``), with no queue and no topic-exchange lookup between.

The reply wait has a deadline (``timeout`` from the publish), not a socket timeout that any
frame restarts. A request carries the same TTL (``expiration``), so one that timed out (a
503 for the client) expires in the service's queue instead of running later.

Reading the reply costs few system calls: the socket keeps one timeout (``WAIT_TICK``), so the
wait is done in ticks until the deadline is near, instead of py-amqp setting and restoring the
socket's timeout (two ``ioctl``) around each frame; and reads take what the socket holds
(``berth.nameko_patches.read_in_chunks``), so a reply's three frames usually come in one
``recv`` instead of nine, each after its own ``poll``. Syscalls per request, measured with
``strace -c`` on the workers under load: see the issue 18 note.

The request's frames are encoded, and a reply whose frames have all arrived is decoded, by
``berth.amqp_wire`` (the same bytes as py-amqp's, without its general serializer and frame
handler: ~30 µs less per publish and per reply); anything else that arrives (a returned
request, a broker notice or close, a reply larger than a frame) is py-amqp's to read.
"""
from __future__ import annotations

import logging
import queue
import socket
import sys
import threading
import time
from contextlib import contextmanager, nullcontext

# kombu tries `import librabbitmq` on every publish outside eventlet; a failed import walks
# sys.path each time. Marking it absent makes that check free (measured with make bench).
sys.modules.setdefault("librabbitmq", None)

import amqp
from kombu import Connection, serialization
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.exceptions import (MethodNotFound, RemoteError, RpcTimeout, UnknownService,
                               deserialize)
from nameko.rpc import RPC_QUEUE_TEMPLATE

from berth import amqp_wire, context
from berth.nameko_patches import (BROKER_ERRORS, DIRECT_REPLY_TO, FAIL_FAST, METHOD_HEADER,
                                  check_open, publish_unread, read_deliveries)
import berth.errors  # noqa: F401 - registers domain errors so RPC raises them as themselves
from berth.errors import BerthError, ServiceUnavailable
from berth.remote import peer_failure

log = logging.getLogger(__name__)

# FAIL_FAST: connect (and reconnect a pooled connection the broker dropped) once more at once,
# never after kombu's default pauses: with the broker away a request is a 503 in milliseconds,
# not seconds (tests/chaos).
SERIALIZER = "json"  # nameko's default, and the services' (berth.settings.nameko_config)
ACCEPT = {"application/json"}
# requests are transient (nameko's proxies publish them persistent): one outlives its caller
# only through a broker restart, and by then its caller has answered 503 (its replies
# went with the connection), so running it afterwards would be an effect nobody waits for.
# It also spares RabbitMQ the persistent message's bookkeeping (bench-profile: RabbitMQ's
# CPU per request 0.42 -> 0.37 ms)
TRANSIENT = 1
# a pooled connection idle longer than this is replaced rather than used: nothing checks an
# idle connection (no heartbeats), and a NAT or load balancer between the gateway and the
# broker may have dropped it without a word (a publish on it would be a 503, not a retry)
IDLE_LIMIT = 60.0
# the socket's timeout while a client waits for a reply: the wait goes on in ticks until the
# deadline is nearer than one, which then bounds the last wait exactly
WAIT_TICK = 0.25
LARGE_REQUEST = 64 * 1024  # bytes of a request whose publish may take longer than a tick

read_deliveries()  # this process's py-amqp connections (RPC clients, the live event stream)


class NotSent(Exception):
    """The request could not be handed to the broker (a pooled connection the broker had
    dropped): it was not sent, so another client may send it."""


class RpcClient:
    """One broker connection and channel, replies by direct reply-to, one call at a time."""

    def __init__(self, config: dict, timeout: float):
        self.timeout = timeout
        self.expiration = str(int(timeout * 1000))  # the request's TTL, in ms
        self._replies: dict[str, tuple[dict, bytes]] = {}
        self._returned: set[str] = set()
        self.connection = Connection(config[AMQP_URI_CONFIG_KEY])
        self.connection.ensure_connection(**FAIL_FAST)
        self.last_used = time.monotonic()
        try:
            # a broker that accepted the connection but stopped answering (paused, swapping)
            # makes this a timeout and a 503, not a request thread held for good
            with self.connection.connection.transport.having_timeout(timeout):
                self.channel = self.connection.channel()
                self.channel.basic_consume(DIRECT_REPLY_TO, no_ack=True,
                                           callback=self._on_reply)
                self.channel.events["basic_return"].add(self._on_return)
            # py-amqp's connection itself: kombu's ``Connection.connection`` checks it on every
            # use and would reconnect silently (a call on a new connection never gets its reply)
            self._amqp = self.channel.connection
            publish_unread(self._amqp)
            self._amqp.transport.sock.settimeout(WAIT_TICK)
        except Exception:
            self.close(graceful=False)
            raise

    def _on_reply(self, message: amqp.Message) -> None:
        self._on_delivery(message.properties, message.body)

    def _on_delivery(self, properties: dict, body: bytes) -> None:
        self._replies[properties.get("correlation_id")] = properties, body

    def _on_return(self, exc, exchange, routing_key, message: amqp.Message) -> None:
        self._returned.add(message.properties.get("correlation_id"))

    def call(self, service: str, method: str, args: tuple, kwargs: dict, headers: dict):
        """The method's result; its remote error raised as itself (registered domain errors)
        or as RemoteError; UnknownService, RpcTimeout; transport errors as they come."""
        # what arrived for earlier calls (a reply to a request redelivered after its
        # consumer died comes twice) is never any later call's answer: let it go
        self._replies.clear()
        self._returned.clear()
        self.last_used = time.monotonic()
        correlation_id = context.unique_id()
        content_type, encoding, body = serialization.dumps({"args": args, "kwargs": kwargs},
                                                           SERIALIZER)
        if isinstance(body, str):  # kombu's JSON is text: bytes, as py-amqp would send them
            body = body.encode(encoding)
        properties = {"content_type": content_type, "content_encoding": encoding,
                      "application_headers": {**headers, METHOD_HEADER: method},
                      "delivery_mode": TRANSIENT,
                      "reply_to": DIRECT_REPLY_TO, "correlation_id": correlation_id,
                      "expiration": self.expiration}
        try:
            # the socket's WAIT_TICK bounds a whole sendall: a large body (up to the gateway's
            # 1 MiB) over a slow link gets the call's whole timeout instead
            check_open(self.channel)  # a pooled one the broker closed: NotSent
            with (self._amqp.transport.having_timeout(self.timeout)
                  if len(body) > LARGE_REQUEST else nullcontext()):
                amqp_wire.publish(self.channel, body, properties, "",
                                  RPC_QUEUE_TEMPLATE.format(service), mandatory=True)
        except BROKER_ERRORS as exc:
            raise NotSent() from exc
        deadline = time.monotonic() + self.timeout
        transport = self._amqp.transport
        while correlation_id not in self._replies:
            if correlation_id in self._returned:
                raise UnknownService(service)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RpcTimeout(self.timeout)
            # a reply whose frames have all arrived is read here (amqp_wire.next_delivery);
            # anything else (a returned request, a broker notice or close) by py-amqp
            delivery = amqp_wire.next_delivery(self._amqp, self.channel.channel_id)
            if delivery is not None and delivery is not amqp_wire.INCOMPLETE:
                self._on_delivery(*delivery)
                continue
            try:  # the socket's own WAIT_TICK, without changing it, until the last tick
                if remaining < WAIT_TICK:
                    with transport.having_timeout(remaining):
                        self._read(transport, delivery)
                else:
                    self._read(transport, delivery)
            except socket.timeout:
                if remaining < WAIT_TICK:
                    raise RpcTimeout(self.timeout) from None
        properties, body = self._replies.pop(correlation_id)
        payload = serialization.loads(body, properties.get("content_type"),
                                      properties.get("content_encoding"), accept=ACCEPT)
        if payload.get("error"):
            raise deserialize(payload["error"])
        return payload.get("result")

    def _read(self, transport, delivery) -> None:
        """Wait for what comes next: more of a delivery (``INCOMPLETE``), or whatever else
        is at the head of the buffer (``None``), by py-amqp."""
        if delivery is None:
            self._amqp.drain_events()
        else:
            amqp_wire.read_more(transport)

    def close(self, graceful: bool = True) -> None:
        """Close the connection (the broker drops a late reply to it); not ``graceful``:
        drop the socket without a closing handshake, which a broker that stopped answering
        would leave waiting forever."""
        try:
            if graceful:
                self.connection.close()
            else:
                self.connection.collect()
        except Exception:  # noqa: BLE001 - the connection is broken already
            pass


class RpcPool:
    """At most ``size`` clients in use at once (a request beyond waits up to ``timeout`` for
    a slot, then is a 503); a freed slot takes an idle client or makes a new one, so a client
    discarded after a failure frees its slot for the next waiter at once."""

    def __init__(self, config: dict, size: int, timeout: float):
        self.config = config
        self.size = size
        self.timeout = timeout
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    def _acquire(self) -> RpcClient:
        if not self._slots.acquire(timeout=self.timeout):
            raise ServiceUnavailable("The gateway is saturated; try again")
        try:
            client = self._idle.get_nowait()
            if time.monotonic() - client.last_used < IDLE_LIMIT:
                return client
            client.close(graceful=False)  # a firewall may have dropped it silently
        except queue.Empty:
            pass
        try:
            return RpcClient(self.config, self.timeout)
        except Exception:
            self._slots.release()
            raise

    @contextmanager
    def client(self):
        client = self._acquire()
        healthy = False
        try:
            yield client
            healthy = True
        except (BerthError, RemoteError, UnknownService, MethodNotFound):
            healthy = True  # an answer (or the broker's return); the client itself is fine
            raise
        finally:
            if healthy:
                self._idle.put(client)
            else:
                client.close(graceful=False)
            self._slots.release()

    def call(self, service: str, method: str, *args, **kwargs):
        # nameko reads context data from ``nameko.*`` headers: the service's worker (and its
        # logs, RPC calls and events) continue this request's id
        request_id = context.current()
        headers = {"nameko.request_id": request_id} if request_id else {}
        try:
            try:
                with self.client() as client:
                    return client.call(service, method, args, kwargs, headers)
            except NotSent:
                # a pooled connection had gone (the broker restarted): the other idle ones
                # have too; once more on a new one
                self.close(graceful=False)
                with self.client() as client:
                    return client.call(service, method, args, kwargs, headers)
        except BerthError:
            raise
        except (RpcTimeout, UnknownService, MethodNotFound) as exc:
            raise peer_failure(exc, service, timeout=self.timeout, what=method) from None
        except RemoteError as exc:
            mapped = peer_failure(exc, service, what=method)
            if mapped is not None:
                raise mapped from None
            log.error("%s.%s failed remotely: %s", service, method, exc)
            raise
        except Exception as exc:  # broker unreachable, connection dropped mid-call
            log.warning("RPC %s.%s failed: %r", service, method, exc)
            raise ServiceUnavailable("The message broker is unreachable") from None

    def close(self, graceful: bool = True) -> None:
        """Close every idle client (those in use go back to the pool as usual)."""
        while True:
            try:
                client = self._idle.get_nowait()
            except queue.Empty:
                return
            client.close(graceful)
