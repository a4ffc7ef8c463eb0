"""What every Berth service has: a database, metrics, a ``health`` RPC and ``GET /metrics``."""
from __future__ import annotations

import functools
import logging

import eventlet
from nameko.amqp.publish import Publisher
from nameko.events import EventHandler
from nameko.exceptions import UnknownService
from nameko.rpc import Responder
from nameko.rpc import rpc as nameko_rpc
from nameko.timer import Timer
from nameko.web.handlers import http
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError

from berth.db import Database
from berth.errors import EXPECTED, Conflict, ServiceUnavailable
from berth.metrics import EntrypointMetrics
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


Responder.publisher_cls = ReplyPublisher


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


def rpc(method):
    """``@rpc``: domain errors travel to the caller without a logged traceback, and a
    database that cannot be reached is a ServiceUnavailable (503), not an internal error.

    (nameko drops keyword arguments when its decorator is applied bare, so no partial here.)
    """
    @functools.wraps(method)
    def entrypoint(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (OperationalError, InterfaceError, DisconnectionError) as exc:
            log.warning("%s.%s: database unavailable: %s", self.name, method.__name__,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise ServiceUnavailable(f"The {self.name} database is unavailable") from None
        except IntegrityError:  # a concurrent request changed the same data first
            raise Conflict("The data changed concurrently; try again") from None
        except UnknownService as exc:  # a service this one calls has never started
            raise ServiceUnavailable(f"The {exc} service is not running") from None
    return nameko_rpc(expected_exceptions=EXPECTED)(entrypoint)


class ServiceBase:
    name = "base"

    db = Database()
    entrypoint_metrics = EntrypointMetrics()

    @rpc
    def health(self) -> dict:
        """Answer if this process can reach its database."""
        with self.db() as session:
            session.execute(text("SELECT 1"))
        return {"service": self.name, "status": "ok"}

    @http("GET", "/metrics")
    def metrics(self, request):
        return 200, {"Content-Type": CONTENT_TYPE_LATEST}, generate_latest().decode()


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
