"""Berth's changes to nameko 2.14 itself, installed by one explicit call: ``install()``.

Whatever starts service containers calls it first: ``berth.run`` (every service process) and
the test suite's root ``conftest.py`` (services started in-process). Importing this module,
or ``berth.service``, changes nothing.

- RPC replies are published without a publisher confirm, as transient messages
  (``ReplyPublisher``).
- A broker connection dropping (a broker restart) while workers run does not kill the
  service: nameko lets a socket error from a reply, an ack or a requeue escape the worker and
  the container dies with it (tests/chaos/test_broker_restart.py). The broker requeues
  whatever was unacknowledged when the connection went, so a lost ack is only logged.
"""
from __future__ import annotations

import functools
import logging

import amqp.exceptions
import kombu.exceptions
from nameko.amqp.publish import Publisher
from nameko.messaging import QueueConsumer
from nameko.rpc import Responder

log = logging.getLogger(__name__)

BROKER_ERRORS = (OSError, amqp.exceptions.ConnectionError, kombu.exceptions.OperationalError)


class ReplyPublisher(Publisher):
    """Publishes RPC replies without a publisher confirm, as transient messages.

    A reply goes to the caller's exclusive, auto-deleted queue: persisting it buys nothing,
    and a reply lost with the broker surfaces as the caller's RPC timeout either way. Waiting
    for a confirm on every reply cost a third of a service's CPU under load (make bench).
    Requests keep confirms: nameko needs them to report an unknown service at once.
    """
    use_confirms = False
    delivery_mode = 1

    def publish(self, payload, **kwargs):
        try:
            super().publish(payload, **kwargs)
        except BROKER_ERRORS as exc:
            log.warning("RPC reply lost with the broker connection (the caller times out): "
                        "%r", exc)


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
    Responder.publisher_cls = ReplyPublisher
    for name in ("ack_message", "requeue_message"):
        settle = getattr(QueueConsumer, name)
        if not getattr(settle, "tolerates_lost_connection", False):
            setattr(QueueConsumer, name, _tolerate_lost_connection(settle))
