"""RPC replies as ``berth.nameko_patches.handle_result`` sends them, on the real broker: the
caller gets the answer with its correlation id, from the gateway's client, from nameko's
standalone proxy and from another service's ``RpcProxy``; a reply of one frame goes with the
request's ack on the request's connection, a larger one on a reply connection; a result that cannot be serialized
is nameko's UnserializableValueError; a reply connection the broker dropped, or one idle too
long, is replaced and the reply still arrives; one whose path to the broker went silent is
dropped without waiting for the broker; a TLS setting given as a dict (nameko's AMQP_SSL)
works as a pool key."""
from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest
from nameko.exceptions import RemoteError
from nameko.rpc import RpcProxy

from berth import nameko_patches
from berth.service import call_with_timeout, rpc as berth_rpc
from gateway.rpc import RpcPool
from tests.support import poll


class Echo:
    name = "echo"

    @berth_rpc
    def echo(self, value):
        return {"value": value, "padding": "x" * 200_000}  # frames beyond one frame_max

    @berth_rpc
    def small(self, value):
        return {"value": value}

    @berth_rpc
    def unserializable(self):
        return object()


class Asker:
    name = "asker"
    echo = RpcProxy("echo")

    @berth_rpc
    def ask(self, value):
        return call_with_timeout(self.echo.echo, value)["value"]


PROPERTIES = {"content_type": "application/json", "content_encoding": "utf-8",
              "delivery_mode": 1, "priority": 0, "application_headers": {}}


@pytest.fixture
def echo(container_factory, amqp_uri):
    nameko_patches.REPLIES.close()
    for cls in (Echo, Asker):
        container = container_factory(cls, {"AMQP_URI": amqp_uri, "serializer": "json",
                                            "max_workers": 10})
        container.start()
    pool = RpcPool({"AMQP_URI": amqp_uri}, 8, 10.0)
    yield pool
    pool.close()
    nameko_patches.REPLIES.close()


def held_connections() -> list:
    return [entry[0] for idle in nameko_patches.REPLIES._idle.values() for entry in idle]


def test_replies_reach_every_caller_with_their_own_answer(echo, rpc):
    import eventlet
    answers = eventlet.GreenPool(16).imap(lambda n: echo.call("echo", "echo", n)["value"],
                                         range(64))
    assert sorted(answers) == list(range(64))
    assert rpc.echo.echo("nameko proxy")["value"] == "nameko proxy"
    assert echo.call("asker", "ask", "via a service") == "via a service"  # in-service RpcProxy
    assert 1 <= len(held_connections()) <= 10  # kept for the next replies, at most one a worker


def test_a_small_reply_goes_with_the_ack_on_the_requests_connection(echo, rpc):
    """``nameko_patches.reply_and_ack``: no reply connection is opened for replies of one
    frame, and the acks land (more calls, one after another, than the service's prefetch:
    unacknowledged requests would stop its deliveries), for the gateway's client and for
    nameko's proxy (a reply through the RPC exchange)."""
    for n in range(40):
        assert echo.call("echo", "small", n)["value"] == n
    for n in range(15):
        assert rpc.echo.small(n)["value"] == n
    assert held_connections() == []


def test_a_request_goes_to_the_services_queue_with_its_method_in_a_header(echo, rpc):
    """The gateway's client publishes to ``rpc-<service>`` through the default exchange, the
    method in ``METHOD_HEADER``: a method the service lacks is nameko's MethodNotFound (the
    gateway's NotOffered), a service nobody runs is returned by the broker at once (503);
    nameko's proxy, which routes by the topic, still reaches the same methods."""
    from berth.errors import NotOffered, ServiceUnavailable
    with pytest.raises(NotOffered):
        echo.call("echo", "nosuch")
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="not running"):
        echo.call("nobody", "small", 1)
    assert time.monotonic() - started < 2
    assert echo.call("echo", "small", "after")["value"] == "after"
    assert rpc.echo.small("topic")["value"] == "topic"


def test_replies_of_both_kinds_at_once_share_the_requests_connection(echo):
    """Small replies written with their acks beside large ones (a reply connection, the ack
    by py-amqp) from concurrent workers: every caller gets its own answer."""
    import eventlet

    def ask(n):
        return echo.call("echo", "echo" if n % 4 == 0 else "small", n)["value"]
    assert sorted(eventlet.GreenPool(16).imap(ask, range(200))) == list(range(200))


def test_a_request_of_a_megabyte_is_published_under_the_calls_timeout(echo):
    from gateway import rpc as gateway_rpc
    big = "y" * (1024 * 1024)
    assert echo.call("echo", "echo", big)["value"] == big
    with echo.client() as client:  # the client that sent it, back in the pool
        sock = client.connection.connection.transport.sock
        assert sock.gettimeout() == gateway_rpc.WAIT_TICK  # the tick again after the publish
        assert client.call("echo", "echo", (7,), {}, {})["value"] == 7


def test_a_result_that_cannot_be_serialized_is_nameko_s_error(echo, rpc):
    with pytest.raises(RemoteError) as raised:
        rpc.echo.unserializable()
    assert raised.value.exc_type == "UnserializableValueError"


def close_broker_connections(amqp_uri: str, local_ports: set[int]) -> None:
    """Have the broker drop this vhost's connections from ``local_ports`` (as at a broker
    restart or a network cut), with ``rabbitmqctl close_connection``."""
    vhost = amqp_uri.rsplit("/", 1)[1]
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


def test_a_reply_connection_the_broker_closed_is_replaced(echo, amqp_uri):
    assert echo.call("echo", "echo", "before")["value"] == "before"
    held = held_connections()
    assert held
    # check_open, before each publish, sees the close
    close_broker_connections(amqp_uri, {conn.connection.sock.getsockname()[1] for conn in held})
    answers = [echo.call("echo", "echo", n)["value"] for n in range(5)]
    assert answers == list(range(5))
    assert not set(held) & set(held_connections())


def test_a_gateway_connection_the_broker_closed_is_not_sent_on_and_the_call_answers(
        echo, amqp_uri):
    assert echo.call("echo", "echo", "before")["value"] == "before"
    idle = list(echo._idle.queue)
    assert idle
    close_broker_connections(amqp_uri, {client.connection.connection.sock.getsockname()[1]
                                        for client in idle})
    started = time.monotonic()
    assert echo.call("echo", "echo", "after")["value"] == "after"
    assert time.monotonic() - started < 5  # sent again on a new connection, not timed out
    assert not set(idle) & set(echo._idle.queue)


def test_publishing_reads_nothing_first_when_nothing_came(echo, monkeypatch):
    """py-amqp read the socket (drain_events(timeout=0)) before every publish; publish_unread
    turns that off on the gateway's clients and the reply connections (check_open polls)."""
    import amqp
    assert echo.call("echo", "echo", 0)["value"] == 0  # the connections exist
    reads = []
    drain = amqp.Connection.drain_events

    def counted(self, timeout=None):
        reads.append(timeout)
        return drain(self, timeout=timeout)
    monkeypatch.setattr(amqp.Connection, "drain_events", counted)
    for n in range(5):
        assert echo.call("echo", "echo", n)["value"] == n
    assert reads and 0 not in reads  # the gateway's waits for the replies, and nothing else


def test_small_requests_and_replies_skip_py_amqps_encoder_and_reader(echo, monkeypatch):
    """berth.amqp_wire: a small request and its reply are encoded by Berth, and the gateway
    reads the reply and the service the request itself; py-amqp's basic_publish, the
    gateway's drain_events and py-amqp's frame reader are not used for them (the large
    replies of the other tests are still py-amqp's: each test here passes through both)."""
    import amqp
    assert echo.call("echo", "small", 0)["value"] == 0  # the connections exist
    with echo.client() as client:
        gateway_connection = client.connection.connection
    used = []
    publish, drain = amqp.Channel.basic_publish, amqp.Connection.drain_events
    read_frame = amqp.transport._AbstractTransport.read_frame

    def counted_publish(self, message, exchange="", routing_key="", *args, **kwargs):
        if kwargs.get("mandatory") or routing_key.startswith(nameko_patches.DIRECT_REPLY_TO):
            used.append(("basic_publish", routing_key))  # a request, or a reply
        return publish(self, message, exchange, routing_key, *args, **kwargs)

    def counted_drain(self, timeout=None):
        if self is gateway_connection:
            used.append(("drain_events", timeout))
        return drain(self, timeout=timeout)

    def counted_read_frame(self, *args, **kwargs):
        used.append(("read_frame", None))
        return read_frame(self, *args, **kwargs)
    monkeypatch.setattr(amqp.Channel, "basic_publish", counted_publish)
    monkeypatch.setattr(amqp.Connection, "drain_events", counted_drain)
    monkeypatch.setattr(amqp.transport._AbstractTransport, "read_frame", counted_read_frame)
    for n in range(1, 20):
        assert echo.call("echo", "small", n)["value"] == n
    assert used == []
    assert echo.call("echo", "echo", "large")["value"] == "large"  # py-amqp's, both ways
    assert {name for name, _ in used} == {"basic_publish", "drain_events", "read_frame"}


def test_a_connection_idle_too_long_is_replaced(echo, monkeypatch):
    assert echo.call("echo", "echo", 1)["value"] == 1
    first = held_connections()
    monkeypatch.setattr(nameko_patches.ReplyConnections, "MAX_IDLE", 0.2)
    time.sleep(0.3)
    assert echo.call("echo", "echo", 2)["value"] == 2
    poll(lambda: not set(first) & set(held_connections()), timeout=5,
         what="the idle connection replaced")


class SilencingProxy:
    """A TCP relay to RabbitMQ that can go silent: bytes are swallowed, nothing is reset (a
    network cut as a client sees it)."""

    def __init__(self):
        self.silent = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _pump(self, src, dst):
        try:
            while data := src.recv(65536):
                if not self.silent.is_set():
                    dst.sendall(data)
        except OSError:
            pass

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", 5672))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()


def test_a_connection_whose_broker_went_silent_is_dropped_without_waiting(amqp_uri,
                                                                          monkeypatch):
    nameko_patches.REPLIES.close()
    proxy = SilencingProxy()
    uri = amqp_uri.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")
    assert uri != amqp_uri
    replies = nameko_patches.REPLIES
    replies.publish(uri, None, None, b"{}", PROPERTIES, "", "no-such-queue")
    assert len(held_connections()) == 1
    proxy.silent.set()
    monkeypatch.setattr(nameko_patches.ReplyConnections, "MAX_IDLE", 0.2)
    time.sleep(0.3)
    done = threading.Event()
    threading.Thread(target=lambda: (replies.publish(uri, None, None, b"{}", PROPERTIES, "",
                                                     "no-such-queue"), done.set()),
                     daemon=True).start()
    # the idle connection is dropped without a closing handshake; the new ones cannot get
    # through either, and the reply is given up after kombu's connect timeouts
    assert done.wait(10), "the reply publish waited on a broker that does not answer"
    nameko_patches.REPLIES.close()
    proxy.listener.close()


def test_a_tls_setting_given_as_a_dict_is_a_pool_key(amqp_uri, caplog):
    nameko_patches.REPLIES.close()
    ssl = {"cert_reqs": 2, "ca_certs": "/nonexistent-ca.pem"}  # nameko's AMQP_SSL shape
    # the broker here speaks plain AMQP: the TLS connection fails, the reply is lost with a
    # warning, and nothing raises (an unhashable key killed the service's container)
    nameko_patches.REPLIES.publish(amqp_uri, ssl, None, b"{}", PROPERTIES, "", "nowhere")
    assert "RPC reply lost" in caplog.text
