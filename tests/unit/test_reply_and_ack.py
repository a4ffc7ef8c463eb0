"""berth.nameko_patches.handle_result: the reply and the request's ack in one write on the
request's connection; the reply on a reply connection and nameko's ack when that cannot be."""
import logging
import socket

import pytest
from amqp.method_framing import frame_writer
from kombu.message import Message

from berth import nameko_patches
from tests.unit.test_amqp_wire import (REQUEST, FakeTransport, WriterConnection,
                                       py_amqp_ack_bytes, py_amqp_bytes)

CONFIG = {"AMQP_URI": "amqp://guest:guest@127.0.0.1:5672/"}


class Channel:
    channel_id = 5
    _confirm_selected = False

    def __init__(self, connection):
        self.connection = connection
        self.no_ack_consumers = set()


class Consumer:
    """The RpcConsumer's side: its container's config, its queue consumer's ack."""

    def __init__(self):
        self.container = type("Container", (), {"config": CONFIG})()
        self.acked = []
        self.queue_consumer = self

    def ack_message(self, message):
        self.acked.append(message.delivery_tag)


@pytest.fixture
def published(monkeypatch):
    sent = []
    monkeypatch.setattr(nameko_patches.REPLIES, "publish",
                        lambda *args: sent.append(args[3:]))
    return sent


def request(channel, tag=7, **info):
    return Message(body=b"{}", delivery_tag=tag, channel=channel,
                   properties={**REQUEST, "reply_to": "amq.rabbitmq.reply-to.g1"},
                   delivery_info={"consumer_tag": "ctag", **info})


def reply_bytes(result) -> bytes:
    return py_amqp_bytes(5, b'{"result": %s, "error": null}' % result, {
        "content_type": "application/json", "content_encoding": "utf-8", "delivery_mode": 1,
        "priority": 0, "application_headers": {},
        "correlation_id": REQUEST["correlation_id"]}, "", "amq.rabbitmq.reply-to.g1", False)


def test_the_reply_and_the_ack_go_in_one_write_on_the_requests_connection(published):
    conn = WriterConnection(FakeTransport())
    message, consumer = request(Channel(conn)), Consumer()
    assert nameko_patches.handle_result(consumer, message, 1, None) == (1, None)
    assert conn.transport.written == [reply_bytes(b"1") + py_amqp_ack_bytes(5, 7)]
    assert message.acknowledged and consumer.acked == [] and published == []


@pytest.mark.parametrize("case", ["connection gone", "settled", "no ack", "no lock", "large",
                                  "beyond the limit", "closed while waiting"])
def test_otherwise_a_reply_connection_and_namekos_ack(case, published, caplog):
    transport = FakeTransport()
    conn = WriterConnection(transport)
    conn._transport = None if case == "closed while waiting" else transport
    channel = Channel(None if case == "connection gone" else conn)
    message, consumer = request(channel), Consumer()
    if case == "settled":
        message._state = "REJECTED"
    if case == "no ack":
        channel.no_ack_consumers.add("ctag")
    if case == "no lock":
        conn._frame_writer = lambda *args: None
    result = {"large": "x" * 200_000,  # beyond one frame
              "beyond the limit": "x" * nameko_patches.REPLY_WITH_ACK_MAX}.get(case, 1)
    with caplog.at_level(logging.WARNING, logger="berth.nameko_patches"):
        assert nameko_patches.handle_result(consumer, message, result, None) == (result, None)
    assert transport.written == []
    assert len(published) == 1 and published[0][2:] == ("", "amq.rabbitmq.reply-to.g1")
    assert consumer.acked == [7]
    assert "not written" not in caplog.text


class PartWriteTransport:
    """Writes a few bytes of what it is given, then fails as a socket does."""

    def __init__(self, error):
        self.error, self.written, self.connected, self.shut = error, [], True, []
        self.sock = self

    def shutdown(self, how):
        self.shut.append(how)

    def write(self, data):
        self.written.append(bytes(data[:5]))
        raise self.error


@pytest.mark.parametrize("error", [socket.timeout("timed out"), BrokenPipeError(32, "pipe")])
def test_a_write_that_fails_part_way_breaks_the_connection_off_and_does_not_ack(
        error, published, caplog):
    """Part of a frame may be on the wire: nothing may follow it (no ack, no other writer),
    so the connection is ended (its consumer reconnects, the broker requeues the request,
    whose redelivery is answered 503); the reply still goes, on a reply connection."""
    transport = PartWriteTransport(error)
    conn = WriterConnection(transport)
    message, consumer = request(Channel(conn)), Consumer()
    with caplog.at_level(logging.WARNING, logger="berth.nameko_patches"):
        assert nameko_patches.handle_result(consumer, message, 1, None) == (1, None)
    assert transport.written and not transport.connected
    assert transport.shut == [socket.SHUT_RDWR]
    assert len(published) == 1 and consumer.acked == [] and not message.acknowledged
    assert "broken off" in caplog.text


def test_a_frame_writer_made_by_py_amqp_connect_is_what_is_locked():
    """The lock is found on the installed py-amqp's frame writer (an upgrade that moved it
    would send every reply the slower way: this fails instead). Whether py-amqp's connect
    still keeps its writer where ``write_lock`` looks is checked on the broker:
    ``tests/test_rpc_replies.py`` expects no reply connection for small replies."""
    conn = WriterConnection(FakeTransport())
    assert conn._frame_writer.__name__ == frame_writer(conn, conn.transport).__name__
    assert nameko_patches.amqp_wire.write_lock(conn) is not None


# --- which method a request names -----------------------------------------------------------

class Provider:
    def __init__(self, name, ran):
        self.method_name, self.ran = name, ran

    def handle_message(self, body, message):
        self.ran.append(self.method_name)


class RpcConsumerFake:
    """An RpcConsumer of service ``name`` with two methods; its replies recorded."""

    def __init__(self, name="users"):
        self.container = type("Container", (), {"service_name": name})()
        self.ran, self.replies = [], []
        self._providers = {Provider("token_state", self.ran), Provider("login", self.ran)}

    def handle_result(self, message, result, exc_info):
        self.replies.append(exc_info[1])


@pytest.mark.parametrize("headers,routing_key,ran,missing", [
    ({nameko_patches.METHOD_HEADER: "login"}, "rpc-users", ["login"], None),  # the gateway's
    ({}, "users.login", ["login"], None),                        # nameko's proxies
    ({"nameko.request_id": "r1"}, "users.token_state", ["token_state"], None),
    ({nameko_patches.METHOD_HEADER: "nosuch"}, "rpc-users", [], "nosuch"),
    ({}, "users.nosuch", [], "nosuch"),
    ({}, "users.login.extra", [], "extra"),                      # nameko's: the last part
    ({}, "billing.login", [], "login"),                          # another service's method
    ({}, "login", [], "login"),
])
def test_the_method_is_the_headers_else_the_routing_keys(headers, routing_key, ran, missing):
    from nameko.exceptions import MethodNotFound
    consumer = RpcConsumerFake()
    message = Message(body=b"{}", delivery_tag=1, headers=dict(headers),
                      delivery_info={"routing_key": routing_key})
    nameko_patches.handle_rpc_request(consumer, b"{}", message)
    assert consumer.ran == ran
    # the header is not context data for the worker's own calls and events
    assert message.headers == {k: v for k, v in headers.items()
                               if k != nameko_patches.METHOD_HEADER}
    if missing is None:
        assert consumer.replies == []
    else:
        [error] = consumer.replies
        assert isinstance(error, MethodNotFound) and str(error) == missing


def test_a_service_name_with_dots_is_routed_as_nameko_routes_it():
    consumer = RpcConsumerFake("fleet.users")
    message = Message(body=b"{}", delivery_tag=1, delivery_info={"routing_key": "fleet.users.login"})
    nameko_patches.handle_rpc_request(consumer, b"{}", message)
    assert consumer.ran == ["login"] and consumer.replies == []
