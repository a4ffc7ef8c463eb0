"""What every Berth service has: a database, metrics, a ``health`` RPC and ``GET /metrics``."""
from __future__ import annotations

import functools
import logging
import sys

import amqp.exceptions
import eventlet
import kombu.exceptions
from nameko.amqp.publish import Publisher
from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.exceptions import UnknownService
from nameko.messaging import QueueConsumer
from nameko.rpc import Responder
from nameko.rpc import Rpc as NamekoRpc
from nameko.timer import Timer
from nameko.web.handlers import http
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError

from berth import context
from berth.db import Database
from berth.errors import EXPECTED, BerthError, Conflict, ServiceUnavailable, portable
from berth.metrics import EntrypointMetrics, ScrapeMetrics
from berth.settings import get_settings

log = logging.getLogger(__name__)


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


Responder.publisher_cls = ReplyPublisher

# The broker connection dropping (a broker restart) while workers run must not kill the
# service. nameko 2.14 lets a socket error from a reply, an ack or a requeue escape the worker
# and the container dies with it (tests/chaos/test_broker_restart.py). The broker requeues
# whatever was unacknowledged when the connection went, so a lost ack is only logged.
BROKER_ERRORS = (OSError, amqp.exceptions.ConnectionError, kombu.exceptions.OperationalError)


def _tolerate_lost_connection(settle):
    @functools.wraps(settle)
    def settle_unless_connection_lost(self, message):
        try:
            settle(self, message)
        except BROKER_ERRORS as exc:
            log.warning("%s: the broker connection is gone (%r); the broker requeues the "
                        "message", settle.__name__, exc)
    return settle_unless_connection_lost


QueueConsumer.ack_message = _tolerate_lost_connection(QueueConsumer.ack_message)
QueueConsumer.requeue_message = _tolerate_lost_connection(QueueConsumer.requeue_message)


def call_with_timeout(method, *args, timeout: float | None = None):
    """Call another service from inside a service, giving up after ``timeout`` seconds.

    nameko's in-service RpcProxy waits forever; a stopped peer must be a ServiceUnavailable
    (and the caller's transaction rolled back), not a worker stuck for good.
    """
    # half the gateway's timeout, so the gateway's 503 names the service that did not answer
    timeout = timeout or get_settings().rpc_timeout / 2
    reply = method.call_async(*args)
    try:
        with eventlet.Timeout(timeout):
            return reply.result()
    except eventlet.Timeout:
        raise ServiceUnavailable("A service this call depends on did not answer") from None


class Rpc(NamekoRpc):
    """nameko's RPC entrypoint, except that a redelivered request is answered, not run again.

    RabbitMQ redelivers a request whose consumer went away (SIGKILL, a lost connection)
    before acknowledging it, to the restarted process or another replica, possibly within
    the caller's timeout. The first run may have committed, even replied: a second run would
    repeat its effects (a second serial, an ACL change twice, a 409 for the caller's own
    registration). The caller gets a 503 instead: the outcome is unknown, as after any
    timeout (tests/chaos/test_service_kill.py).
    """

    def handle_message(self, body, message):
        if not message.delivery_info.get("redelivered"):
            return super().handle_message(body, message)
        log.warning("%s.%s: request redelivered after its first consumer went away; "
                    "answering 503 rather than running it twice", self.container.service_name,
                    self.method_name)
        try:
            raise ServiceUnavailable(f"The {self.container.service_name} service restarted "
                                     f"during this request; it may or may not have happened")
        except ServiceUnavailable:
            self.rpc_consumer.handle_result(message, None, sys.exc_info())


def rpc(method):
    """``@rpc``: domain errors travel to the caller without a logged traceback, and a
    database that cannot be reached is a ServiceUnavailable (503), not an internal error.

    (nameko drops keyword arguments when its decorator is applied bare, so no partial here.)
    """
    @functools.wraps(method)
    def entrypoint(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except BerthError as exc:
            portable_exc = portable(exc)
            if portable_exc is exc:
                raise
            raise portable_exc from exc
        except (OperationalError, InterfaceError, DisconnectionError) as exc:
            log.warning("%s.%s: database unavailable: %s", self.name, method.__name__,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise ServiceUnavailable(f"The {self.name} database is unavailable") from None
        except IntegrityError:  # a concurrent request changed the same data first
            raise Conflict("The data changed concurrently; try again") from None
        except UnknownService as exc:  # a service this one calls has never started
            raise ServiceUnavailable(f"The {exc} service is not running") from None
    return Rpc.decorator(expected_exceptions=EXPECTED)(entrypoint)


class RequestContext(DependencyProvider):
    """Binds the request id for each worker: the caller's (from nameko context data, which
    RPC requests and outbox events carry), or a new one for a timer tick. Nested RPC calls
    pass it on, and events recorded by the worker carry it in their envelope."""

    def worker_setup(self, worker_ctx):
        request_id = worker_ctx.data.get("request_id") or context.new_request_id()
        worker_ctx.data["request_id"] = request_id
        context.bind(request_id)
        entrypoint = worker_ctx.entrypoint
        if isinstance(entrypoint, EventHandler):
            log.info("handling %s.%s in %s", entrypoint.source_service, entrypoint.event_type,
                     entrypoint.method_name)

    def get_dependency(self, worker_ctx):
        return None


class ServiceBase:
    name = "base"

    request_context = RequestContext()
    db = Database()
    entrypoint_metrics = EntrypointMetrics()
    scrape_metrics = ScrapeMetrics()  # adds the service's metric_families (DB gauges)

    @rpc
    def health(self) -> dict:
        """Answer if this process can reach its database."""
        with self.db() as session:
            session.execute(text("SELECT 1"))
        return {"service": self.name, "status": "ok"}

    @http("GET", "/metrics")
    def metrics(self, request):
        return 200, {"Content-Type": CONTENT_TYPE_LATEST}, self.scrape_metrics.render().decode()


class SettingTimer(Timer):
    """A nameko timer whose interval is a setting, read when the service starts.

    ``@every("mail_retry_interval")`` fires every BERTH_MAIL_RETRY_INTERVAL seconds; a nameko
    config key of the same name in upper case (``MAIL_RETRY_INTERVAL``) overrides it.
    Timers fire in every replica: work that must happen once takes a lease or claim first.
    """

    def __init__(self, setting: str, **kwargs):
        self.setting = setting
        super().__init__(interval=None, **kwargs)

    def start(self):
        self.interval = float(self.container.config.get(
            self.setting.upper(), getattr(get_settings(), self.setting)))
        super().start()


every = SettingTimer.decorator

class RetryingEventHandler(EventHandler):
    """An event handler that puts a failed event back on its queue after a pause.

    Effects are idempotent (berth.events.first_delivery), so a retry is safe; a transient
    failure (database away) must not drop the event, and the pause keeps a persistent one
    from spinning the CPU. Malformed events are dropped by ``berth.events.receive`` instead.
    """
    RETRY_DELAY = 1.0

    def __init__(self, source_service, event_type, **kwargs):
        kwargs.setdefault("requeue_on_error", True)
        super().__init__(source_service, event_type, **kwargs)

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        if exc_info is not None:
            eventlet.sleep(self.RETRY_DELAY)
        return super().handle_result(message, worker_ctx, result, exc_info)


event_handler = RetryingEventHandler.decorator
