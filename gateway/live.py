"""Live updates for the console: a Server-Sent Events stream per signed-in browser tab.

How it fits together (per gunicorn worker process, all of it started on the first stream):

- ``POST /api/stream/ticket`` (an ordinary authenticated route) returns a ticket: a signed
  token of type ``stream`` naming the caller, their session (``sid``) and token version
  (``ver``), good for BERTH_STREAM_TICKET_SECONDS. EventSource cannot send an Authorization
  header; the ticket goes in the URL instead of the long-lived access token, and a ticket is
  not an access token (nor the other way round).
- ``GET /api/stream?ticket=...`` checks the ticket with the same session check as every
  request (``gateway.sessions``), then holds the response open. A worker holds at most
  BERTH_STREAM_LIMIT streams (gunicorn gives each worker that many threads on top of the API's
  BERTH_GATEWAY_THREADS, so streams never take an API thread); one more is a 503 with
  Retry-After. Every BERTH_STREAM_RECHECK_SECONDS the session is checked again: a session that
  ended (logout, disabled, role or password change) ends the stream with ``session_ended``.
  A comment line goes out every BERTH_STREAM_HEARTBEAT_SECONDS, which is also how the worker
  learns that the client went away (the write fails and the stream is closed).
- ``EventConsumer``: one thread per process consuming the services' domain events (their
  nameko exchanges ``<service>.events``) and the alerts service's live notices
  (``alert_raised``/``alert_resolved``) from an exclusive, auto-delete queue, fanned out to
  the open streams. kombu's ConsumerMixin reconnects after a broker restart (the streams stay
  open); each stream then gets ``resync`` (events may have been missed: refetch).
- ``TrafficPoller``: one thread per process that, while at least one stream is open, asks the
  traffic service for every container's realtime rate (``traffic.realtime``, one RPC) every
  BERTH_STREAM_TRAFFIC_SECONDS and sends each stream the rows it may see when the sweep moved
  on: the cost is one RPC per process per interval whatever the number of streams.

Who sees what (``visible``): an admin every forwarded event; anyone else only events whose
``user_id`` is theirs. Server events and alerts have no customer: admins only.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Callable, Iterator

from kombu import Connection, Exchange, Queue, binding
from kombu.mixins import ConsumerMixin

from berth import tokens
from berth.actor import Actor
from berth.errors import BerthError, ServiceUnavailable, Unauthorized
from berth.tokens import SESSION_ENDED

log = logging.getLogger(__name__)

TICKET = "stream"  # the ``typ`` of a stream ticket (berth.tokens)

# What the streams carry, by the exchange it comes from. Customers see the events about their
# own containers, rental and quota; admins see those and the fleet's servers and alerts.
FORWARDED: dict[str, tuple[str, ...]] = {
    "containers": ("container_created", "container_removed", "container_stopped",
                   "container_started", "container_died", "container_recovered",
                   "container_moved", "server_went_down", "server_came_back",
                   "server_updated", "server_removed"),
    "billing": ("rental_started", "rental_renewed", "rental_expired", "rental_suspended",
                "rental_resumed"),
    "traffic": ("traffic_quota_exceeded", "traffic_quota_cleared"),
    "alerts": ("alert_raised", "alert_resolved"),  # live notices (services.alerts.live)
}
ADMIN_ONLY = frozenset({"server_went_down", "server_came_back", "server_updated",
                        "server_removed", "alert_raised", "alert_resolved"})
DROPPED_FIELDS = ("request_id", "actor_id")  # internal bookkeeping, not for browsers
QUEUE_SIZE = 256  # frames waiting for one stream; beyond it the stream gets ``resync``
HELLO_WAIT = 10.0  # seconds a new stream waits for the event consumer before saying hello
_STOP = "stop"  # put in a stream's queue (not a frame): the worker is shutting down
_HUBS: weakref.WeakSet = weakref.WeakSet()


def stop_all() -> None:
    """The worker is shutting down (SIGTERM; gateway/gunicorn.conf.py): end every open stream
    now, so gunicorn's graceful shutdown does not wait for them, and refuse new ones. The
    browsers reconnect after ``retry`` (to another worker or the restarted gateway)."""
    for hub in list(_HUBS):
        hub.stop()


def visible(viewer: Actor, kind: str, payload: dict) -> bool:
    """Whether ``viewer`` may see event ``kind`` with ``payload`` on their stream."""
    if viewer.is_admin:
        return True
    if kind in ADMIN_ONLY:
        return False
    user_id = payload.get("user_id")
    return isinstance(user_id, int) and user_id == viewer.user_id


def traffic_for(viewer: Actor, snapshot: dict) -> dict:
    """The part of a ``traffic.realtime`` reply ``viewer`` may see: every row for an admin,
    their own containers' rows (and their sums) for anyone else."""
    rows = snapshot.get("containers") or []
    if not viewer.is_admin:
        rows = [r for r in rows if r.get("user_id") == viewer.user_id]
    rows = [{"container_id": r["container_id"], "container_name": r.get("container_name"),
             "user_id": r.get("user_id"), "in": r.get("in", 0), "out": r.get("out", 0)}
            for r in rows]
    return {"sampled_at": snapshot.get("sampled_at"), "containers": rows,
            "traffic": {"in": sum(r["in"] for r in rows), "out": sum(r["out"] for r in rows)}}


def frame(kind: str, data: dict | None = None) -> str:
    """One SSE frame: ``event: kind`` and its JSON ``data``."""
    return f"event: {kind}\ndata: {json.dumps(data or {}, separators=(',', ':'))}\n\n"


# --- tickets ----------------------------------------------------------------------------------

def issue_ticket(secret: str, caller: Actor, session_id: str, version: int,
                 ttl_seconds: int) -> str:
    return tokens.issue(secret, TICKET, caller.user_id, ttl_seconds, role=caller.role,
                        username=caller.username, sid=session_id, ver=version)


@dataclass(frozen=True)
class Viewer:
    """Whoever a valid ticket names: who they are, and the session claims to re-check."""
    actor: Actor
    claims: dict


def read_ticket(secret: str, ticket: str) -> Viewer:
    """The viewer a ticket names (signature, expiry and type only; the session check is
    ``Hub.check``). Unauthorized for anything else, an access token included."""
    if not ticket or len(ticket) > 2048:
        raise Unauthorized("Missing or invalid stream ticket")
    claims = tokens.decode(secret, ticket, TICKET)
    if not (isinstance(claims.get("sid"), str) and type(claims.get("ver")) is int):
        raise Unauthorized("Invalid token")
    return Viewer(Actor(int(claims["sub"]), str(claims.get("role") or ""),
                        str(claims.get("username") or "")), claims)


# --- streams and their hub -------------------------------------------------------------------

class TooManyStreams(ServiceUnavailable):
    """This worker holds BERTH_STREAM_LIMIT streams already."""


@dataclass(eq=False)
class Stream:
    viewer: Viewer
    frames: queue.Queue = field(default_factory=lambda: queue.Queue(QUEUE_SIZE))
    overflowed: bool = False
    early: bool = False  # said hello before the events were consumed: owed a ``resync``

    def put(self, text: str) -> None:
        try:
            self.frames.put_nowait(text)
        except queue.Full:  # a slow reader: drop, and tell it to refetch once it catches up
            self.overflowed = True


class Hub:
    """The open streams of one process and what feeds them.

    ``hello`` promises the stream's holder every event they may see from then on (the console
    refetches on ``hello`` and relies on the stream afterwards), so a new stream waits, up to
    ``hello_wait`` seconds, until the process's event consumer has consumed for the first time
    (``consuming``; the first stream of a process starts the consumer). A stream that had to
    say hello before (the broker was away) gets ``resync`` when the consumer starts; a
    consumer that reconnects later sends every stream ``resync`` (``events_consumed``). A
    worker shutting down ends a waiting stream at once. With ``hello_wait`` 0 (a hub with no
    consumer, as in unit tests) nothing waits."""

    def __init__(self, limit: int, state_of: Callable[[int], object], hello_wait: float = 0.0):
        self.limit = limit
        self.state_of = state_of  # user id -> gateway.sessions.TokenState (cached)
        self.hello_wait = hello_wait
        self.consuming = threading.Event()  # set by EventConsumer.on_consume_ready
        self._streams: set[Stream] = set()
        self._lock = threading.Lock()
        self._latest_traffic: dict | None = None
        self._starters: list[Callable[[], None]] = []
        self._started = False
        self.stopping = False
        _HUBS.add(self)

    def stop(self) -> None:
        self.stopping = True
        for stream in self.streams():
            try:
                stream.frames.put_nowait(_STOP)
            except queue.Full:
                stream.frames.get_nowait()  # a frame less for a reader that is gone anyway
                stream.frames.put_nowait(_STOP)

    # the threads that feed the hub start with the first stream (after gunicorn's fork)
    def on_first_stream(self, start: Callable[[], None]) -> None:
        self._starters.append(start)

    def _start_feeds(self) -> None:
        if self._started:
            return
        self._started = True
        for start in self._starters:
            start()

    @property
    def count(self) -> int:
        return len(self._streams)

    def open(self, viewer: Viewer) -> Stream:
        with self._lock:
            if self.stopping:
                raise TooManyStreams("This gateway worker is shutting down; try again shortly")
            if len(self._streams) >= self.limit:
                raise TooManyStreams("Too many live streams on this gateway worker; "
                                     "try again shortly")
            stream = Stream(viewer)
            self._streams.add(stream)
            self._start_feeds()
        if self._latest_traffic is not None:
            stream.put(frame("traffic", traffic_for(viewer.actor, self._latest_traffic)))
        return stream

    def close(self, stream: Stream) -> None:
        with self._lock:
            self._streams.discard(stream)

    def streams(self) -> list[Stream]:
        with self._lock:
            return list(self._streams)

    def check(self, viewer: Viewer) -> bool:
        """Whether the viewer's session still stands (Unauthorized-free; ServiceUnavailable
        when the users service cannot say)."""
        return self.state_of(viewer.actor.user_id).allows(viewer.claims)

    def publish(self, kind: str, payload: dict) -> int:
        """Send event ``kind`` to every stream allowed to see it; how many got it."""
        data = {k: v for k, v in payload.items() if k not in DROPPED_FIELDS}
        text = frame(kind, data)
        sent = 0
        for stream in self.streams():
            if visible(stream.viewer.actor, kind, payload):
                stream.put(text)
                sent += 1
        return sent

    def broadcast(self, kind: str, data: dict | None = None) -> None:
        text = frame(kind, data)
        for stream in self.streams():
            stream.put(text)

    def events_consumed(self, again: bool) -> None:
        """The event consumer consumes (``again``: after a lost broker connection, when every
        stream may have missed events; otherwise for the first time, when the streams that
        said hello early may have)."""
        self.consuming.set()
        for stream in self.streams():
            if again or stream.early:
                stream.early = False
                stream.put(frame("resync"))

    def traffic(self, snapshot: dict) -> None:
        self._latest_traffic = snapshot
        for stream in self.streams():
            stream.put(frame("traffic", traffic_for(stream.viewer.actor, snapshot)))

    def _await_consumer(self, clock: Callable[[], float]) -> bool:
        """Wait up to ``hello_wait`` for the event consumer; False when it is not consuming
        (yet), or the worker began to shut down meanwhile (``stopping``: no wait then)."""
        deadline = clock() + self.hello_wait
        while not self.stopping:
            if self.consuming.wait(min(0.1, max(0.0, deadline - clock()))):
                return True
            if clock() >= deadline:
                return False
        return False

    def run(self, stream: Stream, heartbeat: float, recheck: float, lifetime: float = 0.0,
            clock: Callable[[], float] = time.monotonic) -> Iterator[str]:
        """The body of one SSE response. Closing the iterator (the client went) closes the
        stream; after ``lifetime`` seconds (0: none) it ends by itself and the browser opens a
        new one (with a fresh ticket once this one has expired)."""
        try:
            yield "retry: 3000\n\n"  # EventSource waits 3 s before reconnecting
            if self.hello_wait and not self._await_consumer(clock):
                if self.stopping:
                    return  # the worker shuts down: the client reconnects elsewhere
                stream.early = True  # (should the consumer start right now, hello follows it)
            yield frame("hello", {"user_id": stream.viewer.actor.user_id,
                                  "role": stream.viewer.actor.role})
            started = checked_at = beat_at = clock()
            verified = True
            while True:
                due = min(beat_at + heartbeat, checked_at + recheck)
                if lifetime:
                    if clock() - started >= lifetime:
                        return
                    due = min(due, started + lifetime)
                wait = max(0.05, due - clock())
                if verified:
                    try:
                        text = stream.frames.get(timeout=wait)
                        if text is _STOP:
                            return  # the worker shuts down: the client reconnects elsewhere
                        yield text
                        if stream.overflowed:
                            stream.overflowed = False
                            yield frame("resync")
                        continue
                    except queue.Empty:
                        pass
                else:  # the session could not be checked: hold what waits, send nothing
                    time.sleep(wait)
                now = clock()
                if now - checked_at >= recheck:
                    checked_at = now
                    try:
                        if not self.check(stream.viewer):
                            yield frame("session_ended", {"error": SESSION_ENDED})
                            return
                        verified = True
                    except Unauthorized:
                        yield frame("session_ended", {"error": SESSION_ENDED})
                        return
                    except BerthError:  # users cannot answer (e.g. the broker restarts)
                        verified = False
                if now - beat_at >= heartbeat:
                    beat_at = now
                    yield ": heartbeat\n\n"
        finally:
            self.close(stream)


# --- feeds -----------------------------------------------------------------------------------

class EventConsumer(ConsumerMixin):
    """One per process: consumes the forwarded events into ``hub``; reconnects by itself."""

    def __init__(self, amqp_uri: str, hub: Hub, heartbeat: int = 10):
        self.connection = Connection(amqp_uri, heartbeat=heartbeat)
        self.hub = hub
        self.queue_name = f"gateway-live-{socket.gethostname()}-{os.getpid()}-" \
                          f"{uuid.uuid4().hex[:8]}"
        self._ever_connected = False

    def queue(self) -> Queue:
        bindings = []
        for service, kinds in FORWARDED.items():
            # as nameko declares its event exchanges (nameko.events.get_event_exchange)
            exchange = Exchange(f"{service}.events", type="topic", durable=True,
                                auto_delete=False)
            bindings += [binding(exchange, routing_key=kind) for kind in kinds]
        return Queue(self.queue_name, bindings=bindings, exclusive=True, auto_delete=True,
                     durable=False)

    def get_consumers(self, Consumer, channel):
        return [Consumer(queues=[self.queue()], callbacks=[self.on_message], no_ack=True,
                         accept=["json"])]

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        if self._ever_connected:  # back after a broker outage: events may have been missed
            log.info("live events: consuming again after a reconnection")
        self.hub.events_consumed(again=self._ever_connected)
        self._ever_connected = True

    def on_connection_error(self, exc, interval):
        log.warning("live events: broker connection lost (%s); retrying in %ss", exc, interval)

    def on_message(self, body, message):
        kind = message.delivery_info.get("routing_key", "")
        if isinstance(body, dict) and any(kind in kinds for kinds in FORWARDED.values()):
            self.hub.publish(kind, body)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="live-events", daemon=True)
        thread.start()
        return thread


class TrafficPoller:
    """One per process: while any stream is open, ``fetch()`` (traffic.realtime) every
    ``interval`` seconds; the hub hears of each new sweep (``sampled_at`` moved)."""

    def __init__(self, hub: Hub, fetch: Callable[[], dict], interval: float):
        self.hub, self.fetch, self.interval = hub, fetch, interval
        self.polls = 0
        self._last: str | None = None
        self._wake = threading.Event()

    def poll_once(self) -> bool:
        """One poll; True if the streams were sent a new snapshot."""
        self.polls += 1
        snapshot = self.fetch()
        if snapshot.get("sampled_at") == self._last and self.hub._latest_traffic is not None:
            return False
        self._last = snapshot.get("sampled_at")
        self.hub.traffic(snapshot)
        return True

    def run(self) -> None:
        while True:
            if self.hub.count:
                try:
                    self.poll_once()
                except Exception as exc:  # noqa: BLE001 - traffic away: the next poll retries
                    log.warning("live traffic: realtime rates unavailable (%s)", exc)
            self._wake.wait(self.interval)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="live-traffic", daemon=True)
        thread.start()
        return thread
