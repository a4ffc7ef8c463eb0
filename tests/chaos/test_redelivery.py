"""A request RabbitMQ redelivers (its first consumer died before acknowledging it) is answered
with a 503 and never run a second time (berth.service.Rpc).

Deterministic: the first consumer is a bare AMQP channel that takes the request and closes
without an ack, exactly what a SIGKILLed service does; the service then receives the same
message flagged ``redelivered``.
"""
from __future__ import annotations

import kombu
import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from berth.errors import ServiceUnavailable
from berth.service import rpc
from tests.fixtures import service_config

pytestmark = pytest.mark.chaos

RUNS: list[str] = []


class OnceService:
    name = "chaos_once"

    @rpc
    def record(self, key: str) -> str:
        RUNS.append(key)
        return key


def test_a_redelivered_request_is_answered_503_and_not_run(container_factory, amqp_uri,
                                                              tmp_path):
    config = service_config(amqp_uri, f"sqlite:///{tmp_path}/unused.sqlite3")
    container = container_factory(OnceService, config)
    container.start()  # declares the durable rpc-chaos_once queue
    with ClusterRpcProxy(config, timeout=10) as proxy:
        assert proxy.chaos_once.record("fresh") == "fresh"
        container.stop()
        reply = proxy.chaos_once.record.call_async("redelivered")
        with kombu.Connection(amqp_uri) as conn:  # the consumer that dies mid-request
            taken = conn.SimpleQueue("rpc-chaos_once", no_ack=False).get(timeout=5)
            assert not taken.delivery_info["redelivered"]
        container = container_factory(OnceService, config)
        container.start()
        with pytest.raises(ServiceUnavailable, match="may or may not have happened"):
            reply.result()
        assert proxy.chaos_once.record("after") == "after"
    assert RUNS == ["fresh", "after"]
