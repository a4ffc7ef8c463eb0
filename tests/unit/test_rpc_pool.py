"""The gateway's RPC client pool (gateway.rpc.RpcPool), with stand-in clients (no broker): a
slot freed by a client discarded after a failure serves the next waiting request at once, and
an answer (a domain error, an unknown service) keeps the client."""
import threading
import time

import pytest
from nameko.exceptions import UnknownService

from berth.errors import NotFound, ServiceUnavailable
from gateway import rpc


class FakeClient:
    made: list["FakeClient"] = []

    def __init__(self, config, timeout):
        self.closed = False
        self.last_used = time.monotonic()
        FakeClient.made.append(self)

    def call(self, service, method, args, kwargs, headers):
        return args[0]()

    def close(self, graceful=True):
        self.closed = True


@pytest.fixture(autouse=True)
def fake_clients(monkeypatch):
    FakeClient.made = []
    monkeypatch.setattr(rpc, "RpcClient", FakeClient)


def test_a_request_waiting_for_a_slot_gets_the_one_a_failed_client_frees():
    pool = rpc.RpcPool({}, size=1, timeout=3.0)
    holding = threading.Event()

    def broken():
        holding.set()
        time.sleep(0.2)
        raise OSError("the connection dropped")

    failed = []
    first = threading.Thread(target=lambda: failed.append(_outcome(pool, broken)))
    first.start()
    holding.wait(2)
    started = time.monotonic()
    assert pool.call("users", "m", lambda: "answered") == "answered"  # waited for the slot
    first.join()
    assert time.monotonic() - started < 1.5  # not the 3 s timeout
    assert isinstance(failed[0], ServiceUnavailable)
    assert [c.closed for c in FakeClient.made] == [True, False]


def test_answers_keep_the_client_and_a_full_pool_is_a_503():
    pool = rpc.RpcPool({}, size=1, timeout=0.2)

    def not_found():
        raise NotFound("no such user")

    def unknown():
        raise UnknownService("nobody")

    with pytest.raises(NotFound):
        pool.call("users", "m", not_found)
    with pytest.raises(ServiceUnavailable):  # an unknown service is a 503 naming it
        pool.call("users", "m", unknown)
    assert len(FakeClient.made) == 1 and not FakeClient.made[0].closed

    inside = threading.Event()
    release = threading.Event()

    def hold():
        inside.set()
        release.wait(2)
        return "done"

    holder = threading.Thread(target=lambda: pool.call("users", "m", hold))
    holder.start()
    inside.wait(2)
    with pytest.raises(ServiceUnavailable, match="saturated"):
        pool.call("users", "m", lambda: "never")
    release.set()
    holder.join()
    assert pool.call("users", "m", lambda: "again") == "again"


def _outcome(pool, fn):
    try:
        return pool.call("users", "m", fn)
    except Exception as exc:  # noqa: BLE001 - the test looks at it
        return exc


def test_a_client_idle_too_long_is_replaced(monkeypatch):
    pool = rpc.RpcPool({}, size=2, timeout=1.0)
    assert pool.call("users", "m", lambda: 1) == 1
    FakeClient.made[0].last_used -= rpc.IDLE_LIMIT + 1
    assert pool.call("users", "m", lambda: 2) == 2
    assert [c.closed for c in FakeClient.made] == [True, False]
