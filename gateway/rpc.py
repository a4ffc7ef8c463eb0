"""RPC from Flask threads: a pool of started cluster proxies, one per request, each with a
timeout; a proxy that saw a transport error or timeout is stopped and replaced.

One proxy must never serve two threads at once (ENGINEERING.md: frames corrupt and hang).
"""
from __future__ import annotations

import logging
import queue
import sys
import threading
from contextlib import contextmanager

# kombu tries `import librabbitmq` on every publish outside eventlet; a failed import walks
# sys.path each time. Marking it absent makes that check free (measured with make bench).
sys.modules.setdefault("librabbitmq", None)

from nameko.exceptions import MethodNotFound, RemoteError, RpcTimeout, UnknownService
from nameko.rpc import ServiceProxy
from nameko.standalone.rpc import (ClusterProxy, PollingQueueConsumer,
                                   SingleThreadedReplyListener, StandaloneProxyBase)

from berth import context
import berth.errors  # noqa: F401 - registers domain errors so RPC raises them as themselves
from berth.errors import BerthError, ServiceUnavailable
from berth.remote import peer_failure

log = logging.getLogger(__name__)

# Connect (and reconnect a pooled connection the broker dropped) once more at once, never
# after kombu's default pauses (2 s for a new connection, 1 s per publish retry): with the
# broker away a request is a 503 in milliseconds, not seconds (tests/chaos).
FAIL_FAST = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}


class _FailFastQueueConsumer(PollingQueueConsumer):
    def _setup_consumer(self):
        self.connection.ensure_connection(**FAIL_FAST)
        super()._setup_consumer()


class _FailFastReplyListener(SingleThreadedReplyListener):
    def __init__(self, timeout=None):
        super().__init__(timeout=timeout)
        self.queue_consumer = _FailFastQueueConsumer(timeout=timeout)


class _ExpiringClusterProxy(ClusterProxy):
    def __init__(self, worker_ctx, reply_listener, **publish_options):
        super().__init__(worker_ctx, reply_listener)
        self._publish_options = publish_options

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._proxies:
            self._proxies[name] = ServiceProxy(self._worker_ctx, name, self._reply_listener,
                                               **self._publish_options)
        return self._proxies[name]


class ExpiringClusterRpcProxy(StandaloneProxyBase):
    """A cluster proxy whose requests expire in the queue when the caller stops waiting.

    Without a TTL, a request that timed out (answered 503) waits in the service's queue and
    runs when the service comes back: a write the client was told failed would happen later.
    """

    def __init__(self, config: dict, timeout: float):
        super().__init__(config, timeout=timeout, reply_listener_cls=_FailFastReplyListener)
        self._proxy = _ExpiringClusterProxy(self._worker_ctx, self._reply_listener,
                                            expiration=timeout, retry_policy=FAIL_FAST)


class RpcPool:
    def __init__(self, config: dict, size: int, timeout: float):
        self.config = config
        self.size = size
        self.timeout = timeout
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._lock = threading.Lock()
        self._created = 0

    def _acquire(self):
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            may_create = self._created < self.size
            if may_create:
                self._created += 1
        if not may_create:
            try:
                return self._idle.get(timeout=self.timeout)
            except queue.Empty:
                raise ServiceUnavailable("The gateway is saturated; try again") from None
        holder = ExpiringClusterRpcProxy(self.config, self.timeout)
        try:
            proxy = holder.start()
        except Exception:
            with self._lock:
                self._created -= 1
            raise
        return holder, proxy

    def _discard(self, entry) -> None:
        with self._lock:
            self._created -= 1
        try:
            entry[0].stop()
        except Exception:  # noqa: BLE001 - the proxy is broken already
            pass

    @contextmanager
    def proxy(self):
        entry = self._acquire()
        healthy = False
        try:
            yield entry[1]
            healthy = True
        except BerthError:
            healthy = True  # a domain answer; the proxy itself is fine
            raise
        finally:
            if healthy:
                self._idle.put(entry)
            else:
                self._discard(entry)

    def call(self, service: str, method: str, *args, **kwargs):
        try:
            with self.proxy() as proxy:
                # nameko sends context data as headers: the service's worker (and its logs,
                # RPC calls and events) continue this request's id
                request_id = context.current()
                if request_id:
                    proxy._worker_ctx.data["request_id"] = request_id
                else:
                    proxy._worker_ctx.data.pop("request_id", None)
                return getattr(getattr(proxy, service), method)(*args, **kwargs)
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

    def close(self) -> None:
        while True:
            try:
                entry = self._idle.get_nowait()
            except queue.Empty:
                return
            self._discard(entry)
