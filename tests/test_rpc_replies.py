"""RPC replies as ``berth.nameko_patches.send_reply`` publishes them, on the real broker: the
caller gets the answer with its correlation id, from the gateway's client and from nameko's
own proxies; a result that cannot be serialized is nameko's UnserializableValueError; a
reply connection the broker dropped, or one idle too long, is replaced and the reply still
arrives."""
from __future__ import annotations

import subprocess
import time

import pytest
from nameko.exceptions import RemoteError

from berth import nameko_patches
from berth.service import rpc as berth_rpc
from gateway.rpc import RpcPool
from tests.support import poll


class Echo:
    name = "echo"

    @berth_rpc
    def echo(self, value):
        return {"value": value, "padding": "x" * 200_000}  # frames beyond one frame_max

    @berth_rpc
    def unserializable(self):
        return object()


@pytest.fixture
def echo(container_factory, amqp_uri):
    nameko_patches.REPLIES.close()
    container = container_factory(Echo, {"AMQP_URI": amqp_uri, "serializer": "json",
                                         "max_workers": 10})
    container.start()
    pool = RpcPool({"AMQP_URI": amqp_uri}, 8, 10.0)
    yield pool
    pool.close()
    nameko_patches.REPLIES.close()


def held_connections() -> list:
    return [entry[0] for idle in nameko_patches.REPLIES._idle.values()
            for entry in list(idle.queue)]


def test_replies_reach_every_caller_with_their_own_answer(echo, rpc):
    import eventlet
    answers = eventlet.GreenPool(16).imap(lambda n: echo.call("echo", "echo", n)["value"],
                                         range(64))
    assert sorted(answers) == list(range(64))
    assert rpc.echo.echo("nameko proxy")["value"] == "nameko proxy"
    assert 1 <= len(held_connections()) <= 10  # kept for the next replies, at most one a worker


def test_a_result_that_cannot_be_serialized_is_nameko_s_error(echo, rpc):
    with pytest.raises(RemoteError) as raised:
        rpc.echo.unserializable()
    assert raised.value.exc_type == "UnserializableValueError"


def test_a_reply_connection_the_broker_closed_is_replaced(echo, amqp_uri):
    assert echo.call("echo", "echo", "before")["value"] == "before"
    vhost = amqp_uri.rsplit("/", 1)[1]
    held = held_connections()
    assert held
    local_ports = {conn.connection.sock.getsockname()[1] for conn in held}
    # the broker drops the reply connections (as at a broker restart or a network cut)
    listing = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "peer_port",
                              "vhost", "--no-table-headers"], capture_output=True,
                             text=True, check=True, timeout=60).stdout
    closed = 0
    for line in listing.splitlines():
        pid, port, conn_vhost = line.split("\t")
        if conn_vhost == vhost and int(port) in local_ports:
            subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "test"],
                           check=True, timeout=60)
            closed += 1
    assert closed == len(local_ports)
    time.sleep(0.5)
    answers = [echo.call("echo", "echo", n)["value"] for n in range(5)]
    assert answers == list(range(5))
    assert not set(held) & set(held_connections())


def test_a_connection_idle_too_long_is_replaced(echo, monkeypatch):
    assert echo.call("echo", "echo", 1)["value"] == 1
    first = held_connections()
    monkeypatch.setattr(nameko_patches.ReplyConnections, "MAX_IDLE", 0.2)
    time.sleep(0.3)
    assert echo.call("echo", "echo", 2)["value"] == 2
    poll(lambda: not set(first) & set(held_connections()), timeout=5,
         what="the idle connection replaced")
