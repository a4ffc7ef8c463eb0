"""Transactional outbox: events are rows first, messages second.

A service records an event with ``self.outbox.add(session, Event.new(...))`` inside the
transaction that makes the change. After the worker finishes (its RPC reply already sent), the
rows it recorded are published; a relay thread republishes anything left behind by a crash, a
broker outage, or an event no queue was bound for yet. Publishing is mandatory and confirmed:
the row is marked published only once RabbitMQ has routed the message to at least one queue,
so an event can never be dropped for want of a consumer. Consumers deduplicate by ``event_id``.

The relay also keeps the service's event bookkeeping bounded: once every
``BERTH_EVENT_RETENTION_INTERVAL`` it deletes published outbox rows and handled event ids
(``processed_events``) older than ``BERTH_EVENT_RETENTION_DAYS`` (``prune_bookkeeping``).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time

import eventlet
from nameko.amqp.publish import Publisher, UndeliverableMessage
from nameko.events import get_event_exchange
from nameko.extensions import DependencyProvider
from sqlalchemy import select

from berth.db import ProcessedEventMixin, delete_in_batches, utcnow
from berth.db_provider import Database
from berth.events import CATALOGUE, Event
from berth.metrics import OUTBOX_PUBLISHED
from berth.settings import get_settings

log = logging.getLogger(__name__)

def prune_bookkeeping(session_factory, outbox_model, now: dt.datetime,
                      retention_days: float) -> dict[str, int]:
    """Delete published outbox rows, and the ids of handled events (the ``processed_events``
    table of the same service, if it has one), older than ``retention_days`` (0: keep all).
    Unpublished rows are never deleted. Returns how many rows went, per table."""
    if retention_days <= 0:
        return {}
    cutoff = now - dt.timedelta(days=retention_days)
    removed = {outbox_model.__tablename__: delete_in_batches(
        session_factory, outbox_model, outbox_model.published_at < cutoff)}
    for mapper in outbox_model.registry.mappers:
        model = mapper.class_
        if issubclass(model, ProcessedEventMixin):
            removed[model.__tablename__] = delete_in_batches(
                session_factory, model, model.handled_at < cutoff)
    return removed


class OutboxWriter:
    """What a worker sees as ``self.outbox``."""

    def __init__(self, model):
        self.model = model
        self.event_ids: list[str] = []

    def add(self, session, event: Event) -> Event:
        session.add(self.model(event_id=event.event_id, event_type=event.TYPE,
                               payload=event.model_dump_json()))
        self.event_ids.append(event.event_id)
        return event


class EventOutbox(DependencyProvider):
    """Declare as ``outbox = EventOutbox(OutboxEvent)`` next to ``db = Database()``."""

    def __init__(self, model):
        self.model = model

    def setup(self):
        config = self.container.config
        self.exchange = get_event_exchange(self.container.service_name, config)
        self.publisher = Publisher(config["AMQP_URI"], serializer="json",
                                   use_confirms=True, mandatory=True,
                                   declare=[self.exchange])
        settings = get_settings()
        self.interval = float(config.get("OUTBOX_RELAY_INTERVAL",
                                         settings.outbox_relay_interval))
        self.retention_days = float(config.get("EVENT_RETENTION_DAYS",
                                               settings.event_retention_days))
        self.retention_interval = float(config.get("EVENT_RETENTION_INTERVAL",
                                                   settings.event_retention_interval))
        self._pruned_at = None  # monotonic time of the last bookkeeping prune
        self._stopping = False
        self._writers: dict = {}

    def start(self):
        self.container.spawn_managed_thread(self._relay_forever)

    def stop(self):
        self._stopping = True

    def kill(self):
        self._stopping = True

    @property
    def _db(self) -> Database:
        return next(d for d in self.container.dependencies if isinstance(d, Database))

    def get_dependency(self, worker_ctx):
        writer = self._writers[worker_ctx] = OutboxWriter(self.model)
        return writer

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        writer = self._writers.pop(worker_ctx, None)
        if writer and writer.event_ids:
            try:
                self.publish_pending(writer.event_ids)
            except Exception:
                log.exception("outbox: immediate publish failed; the relay will retry")

    def worker_teardown(self, worker_ctx):
        self._writers.pop(worker_ctx, None)

    def publish_pending(self, event_ids=None, older_than: float = 0.0) -> int:
        """Publish unpublished rows (those named, or all older than ``older_than`` s).

        Rows are read, the session closed, the messages published, and the outcome recorded
        in a second short transaction: no database connection waits on the broker. Events
        the catalogue marks sensitive keep only their envelope once published.
        """
        sessionmaker = self._db.sessionmaker
        with sessionmaker() as session:
            query = select(self.model.id, self.model.event_type, self.model.payload).where(
                self.model.published_at.is_(None))
            if event_ids is not None:
                query = query.where(self.model.event_id.in_(event_ids))
            else:
                cutoff = utcnow() - dt.timedelta(seconds=older_than)
                query = query.where(self.model.created_at <= cutoff)
            rows = session.execute(query.order_by(self.model.id).limit(500)).all()
        outcomes: dict[int, str | None] = {}
        for row_id, event_type, payload in rows:
            body = json.loads(payload)
            # nameko turns nameko.* headers into the handler's context data: the request id
            # reaches the consumer's logs (berth.service.RequestContext)
            headers = {"nameko.request_id": body["request_id"]} if body.get("request_id") \
                else {}
            try:
                self.publisher.publish(body, exchange=self.exchange, routing_key=event_type,
                                       headers=headers)
            except UndeliverableMessage:
                outcomes[row_id] = "no queue is bound for this event yet"
            except Exception as exc:  # broker away: keep the rest for the relay
                outcomes[row_id] = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("outbox: could not publish %s: %s", event_type, exc)
                break
            else:
                outcomes[row_id] = None
                OUTBOX_PUBLISHED.labels(self.container.service_name, event_type).inc()
        with sessionmaker() as session:
            for row_id, error in outcomes.items():
                row = session.get(self.model, row_id)
                if error is None:
                    row.published_at = utcnow()
                    if getattr(CATALOGUE.get(row.event_type), "SENSITIVE", False):
                        envelope = json.loads(row.payload)
                        row.payload = json.dumps({key: envelope[key] for key in
                                                  ("event_id", "occurred_at", "version")})
                else:
                    row.attempts += 1
                    row.last_error = error
            session.commit()
        return sum(1 for error in outcomes.values() if error is None)

    def _relay_forever(self):
        while not self._stopping:
            eventlet.sleep(self.interval)
            try:
                self.publish_pending(older_than=self.interval)
            except Exception:
                log.exception("outbox relay pass failed; will retry")
            if self._pruned_at is None or \
                    time.monotonic() - self._pruned_at >= self.retention_interval:
                self._pruned_at = time.monotonic()  # every replica: deletes are idempotent
                try:
                    removed = prune_bookkeeping(self._db.sessionmaker, self.model, utcnow(),
                                                self.retention_days)
                except Exception:
                    log.exception("event bookkeeping prune failed; will retry")
                else:
                    if any(removed.values()):
                        log.info("event bookkeeping: removed %s", removed)
