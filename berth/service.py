"""What every Berth service has: a database, metrics, a ``health`` RPC and ``GET /metrics``,
and the entrypoint decorators they use. Changes to nameko itself are ``berth.nameko_patches``,
installed by whatever starts the services."""
from __future__ import annotations

import functools
import logging
import sys

import eventlet
from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.exceptions import RemoteError, UnknownService
from nameko.messaging import Consumer
from nameko.rpc import Rpc as NamekoRpc
from nameko.timer import Timer
from nameko.web.handlers import http
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import (DisconnectionError, IntegrityError, InterfaceError, OperationalError,
                            TimeoutError as PoolTimeout)

from berth import context
from berth.db_provider import Database
from berth.errors import EXPECTED, BerthError, Conflict, ServiceUnavailable, portable
from berth.events import handle_once
from berth.metrics import EntrypointMetrics, ScrapeMetrics
from berth.remote import peer_failure
from berth.settings import get_settings

log = logging.getLogger(__name__)


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


def ask(method, *args, service: str, what: str = "this", timeout: float | None = None):
    """``call_with_timeout`` to a peer, with every failure a Berth error: the peer's domain
    errors (404) pass through; a peer that is down, does not offer the method yet (NotOffered)
    or failed with a bug is a 503 naming it (``berth.remote``), never a 500 or an answer
    made up."""
    try:
        return call_with_timeout(method, *args, timeout=timeout)
    except BerthError:
        raise
    except Exception as exc:  # noqa: BLE001 - mapped below, or a bug in the peer
        mapped = peer_failure(exc, service, what=what)
        if mapped is not None:
            raise mapped from None
        if not isinstance(exc, RemoteError):
            raise
        log.error("%s failed remotely: %s", service, exc)
        raise ServiceUnavailable(f"The {service} service failed to answer") from None


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
        except (OperationalError, InterfaceError, DisconnectionError, PoolTimeout) as exc:
            log.warning("%s.%s: database unavailable: %s", self.name, method.__name__,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise ServiceUnavailable(f"The {self.name} database is unavailable") from None
        except IntegrityError:  # a concurrent request changed the same data first
            raise Conflict("The data changed concurrently; try again") from None
        except UnknownService as exc:  # a service this one calls has never started
            raise peer_failure(exc, getattr(exc, "_service_name", str(exc))) from None
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
    processed_events: type | None = None  # the service's ProcessedEvent model, if it handles events

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

    def handle_once(self, event_cls, payload, effect):
        """Every event handler's body: ``berth.events.handle_once`` on this service's database
        and its ``processed_events`` table (the id and the effect commit together)."""
        return handle_once(self.db, self.processed_events, event_cls, payload, effect)

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

class RetryAfterPause:
    """What every message entrypoint here does with a failure: the message goes back on its
    queue after a pause (``RETRY_DELAY`` seconds), not acked and dropped (nameko's default).

    Effects are idempotent (berth.events.first_delivery, unique keys), so a retry is safe; a
    transient failure (database away) must not drop the message, and the pause keeps a
    persistent one from spinning the CPU. What no retry can fix (a malformed event, see
    ``berth.events.receive``) is dropped by the handler itself, which then returns normally.
    Mixed into nameko's message entrypoints below: ``event_handler`` and ``consume``.
    """
    RETRY_DELAY = 1.0

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("requeue_on_error", True)
        super().__init__(*args, **kwargs)

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        if exc_info is not None:
            eventlet.sleep(self.RETRY_DELAY)
        return super().handle_result(message, worker_ctx, result, exc_info)


class RetryingEventHandler(RetryAfterPause, EventHandler):
    """``@event_handler(source, event_type)``: a nameko event handler that retries."""


class RetryingConsumer(RetryAfterPause, Consumer):
    """``@consume(queue)``: a plain queue consumer (no event envelope) that retries."""


event_handler = RetryingEventHandler.decorator
consume = RetryingConsumer.decorator
