"""The audit of state-changing calls, seen from the gateway.

After every successful POST/PUT/DELETE, and every failed login (``gateway.limits``
marks which failures), the gateway hands a small record (route template,
path parameters, a redacted summary of the body, the ids the reply names, status, actor,
request id) to an in-process queue, and one thread per gunicorn worker publishes it with
publisher confirms to the durable ``berth.audit`` exchange, which the alerts service consumes.
The request thread never touches the broker, so the audit adds microseconds to a request and
a broker hiccup never fails one. What piles up while a message is being confirmed goes out as
one message (a batch), so a busy gateway costs the alerts service one transaction per batch,
not per request. The publisher keeps the records (up to BERTH_AUDIT_BUFFER) and
retries; past that it logs and drops the oldest first (the request already succeeded).
"""
from __future__ import annotations

import atexit
import collections
import itertools
import logging
import os
import secrets
import threading
import time

from flask import Flask, current_app, g, request

from berth import tokens
from berth.actor import Actor
from berth.db import utcnow
from services.alerts.audit_wire import (AUDIT_EXCHANGE, AUDIT_QUEUE, AUDIT_ROUTING_KEY,
                                        WIRE_VERSION, is_secret, redact)

log = logging.getLogger(__name__)

AUDITED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BATCH = 200  # records per published message at most
LINGER = 0.05  # seconds a record may wait for others to share its message
MAX_REPLY_FOR_IDS = 64 * 1024


def audit_record(response) -> dict:
    """What one successful state-changing call leaves in the audit log (no secrets)."""
    caller = g.get("caller")
    body = g.get("audit_body")
    summary = redact(body.model_dump(mode="json", include=body.model_fields_set)) \
        if body is not None else None
    reply_ids = {}
    actor = caller.to_wire() if caller is not None else None
    if response.is_json and (response.content_length or 0) <= MAX_REPLY_FOR_IDS:
        reply = response.get_json(silent=True)
        if isinstance(reply, dict):
            reply_ids = {k: v for k, v in reply.items() if k.endswith("_id")
                         and isinstance(v, int) and not isinstance(v, bool)}
            if actor is None and isinstance(reply.get("token"), str):
                actor = signed_in(reply["token"])  # a login: who just signed in
    view_args = request.view_args or {}
    # an integer id (``<int:serial_id>``) is kept; a code or token in the path is not
    secret_path = any(is_secret(k, v) for k, v in view_args.items())
    params = {k: ("[redacted]" if is_secret(k, v) else v) for k, v in view_args.items()}
    return {
        "v": WIRE_VERSION,
        # what makes the row unique: a random id of the gateway's own, never the caller's
        # X-Request-ID (two writes sent with one would be one row, the second hidden from the
        # log), nor anything a caller could predict from the request ids it is shown
        "record_id": (record_id := secrets.token_hex(12)),
        "request_id": g.get("request_id") or record_id,
        # to the microsecond: the log orders by it, and batches arrive out of order
        "occurred_at": utcnow().isoformat(),
        "method": request.method,
        "route": request.url_rule.rule,
        "path": None if secret_path else request.path,
        "path_params": params,
        "status": response.status_code,
        "actor": actor,
        "body": summary,
        "reply_ids": reply_ids,
        "remote_addr": request.remote_addr,
        "api_key_id": g.get("api_key_id"),  # the caller's API key, if they sent one
    }


def signed_in(token: str) -> dict | None:
    try:
        claims = tokens.decode(current_app.config["BERTH_SECRET"], token, tokens.ACCESS)
    except Exception:  # noqa: BLE001 - not an access token: no actor
        return None
    return Actor(int(claims["sub"]), claims.get("role", ""),
                 claims.get("username", "")).to_wire()


def install(app: Flask) -> None:
    """Audit every successful state-changing call of ``app``."""
    app.after_request(_audit)


def _audit(response):
    # a failure is audited only where the rate limits say so (a failed login: 401)
    if request.method in AUDITED_METHODS and request.url_rule is not None \
            and (response.status_code < 400 or g.get("audit_failure")):
        try:
            AuditPublisher.for_app(current_app).submit(audit_record(response))
        except Exception:  # noqa: BLE001 - the audit never fails the user's request
            log.exception("audit: could not record %s %s", request.method, request.path)
    return response


class AuditPublisher:
    """One per process: a bounded buffer and a thread publishing it with confirms."""

    _lock = threading.Lock()

    def __init__(self, amqp_uri: str, capacity: int):
        self.amqp_uri = amqp_uri
        self.buffer: collections.deque = collections.deque(maxlen=capacity)
        self.ready = threading.Condition()
        self.dropped = 0
        self.published = 0
        self.pid = os.getpid()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="audit-publisher", daemon=True)
        self.thread.start()
        atexit.register(self.close)

    @classmethod
    def for_app(cls, app) -> AuditPublisher:
        publisher = app.extensions.get("audit_publisher")
        if publisher is None or publisher.pid != os.getpid():  # none yet, or forked
            with cls._lock:
                publisher = app.extensions.get("audit_publisher")
                if publisher is None or publisher.pid != os.getpid():
                    settings = app.extensions["settings"]
                    publisher = cls(settings.amqp_uri, settings.audit_buffer)
                    app.extensions["audit_publisher"] = publisher
        return publisher

    def submit(self, record: dict) -> None:
        with self.ready:
            if len(self.buffer) == self.buffer.maxlen:
                self.dropped += 1
                log.error("audit: buffer full (broker away?); dropped the oldest record "
                          "(%d dropped so far)", self.dropped)
            self.buffer.append(record)
            self.ready.notify()

    def _run(self) -> None:
        from kombu import Connection, Producer
        delay = 0.5
        connection = None
        while not self.stopping or self.buffer:
            with self.ready:
                while not self.buffer and not self.stopping:
                    self.ready.wait(1.0)
                if not self.buffer:
                    continue
                linger_until = time.monotonic() + LINGER  # let a few more join this message
                while len(self.buffer) < BATCH and not self.stopping:
                    remaining = linger_until - time.monotonic()
                    if remaining <= 0:
                        break
                    self.ready.wait(remaining)
                # whatever has piled up goes in one message: one confirm, one consumer worker
                # and one transaction for many records when the gateway is busy
                batch = list(itertools.islice(self.buffer, 0, BATCH))
            try:
                if connection is None:
                    connection = Connection(self.amqp_uri, connect_timeout=5,
                                            transport_options={"confirm_publish": True})
                    producer = Producer(connection.channel(), exchange=AUDIT_EXCHANGE,
                                        serializer="json")
                    AUDIT_QUEUE(producer.channel).declare()  # exchange, queue, binding
                producer.publish({"v": WIRE_VERSION, "records": batch},
                                 routing_key=AUDIT_ROUTING_KEY, delivery_mode=2, retry=False)
            except Exception as exc:  # noqa: BLE001 - broker away: keep it and retry
                log.warning("audit: publishing failed, will retry in %.1f s: %s", delay, exc)
                if connection is not None:
                    try:
                        connection.release()
                    except Exception:  # noqa: BLE001
                        pass
                connection = None
                if self.stopping:
                    return
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            self.published += len(batch)
            sent = {id(record) for record in batch}
            with self.ready:  # (a full buffer may have dropped some of them meanwhile)
                while self.buffer and id(self.buffer[0]) in sent:
                    self.buffer.popleft()
        if connection is not None:
            connection.release()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far is published (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self.buffer and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self.buffer

    def close(self) -> None:
        self.flush(2.0)
        self.stopping = True
        with self.ready:
            self.ready.notify_all()
