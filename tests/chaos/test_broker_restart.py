"""The broker restarts under a steady mixed load: requests while it is down get a quick 503,
every service is back within 30 s of its return, and no acknowledged operation is lost.

The broker is a private RabbitMQ node (tests/chaos/instances.py), stopped with
``rabbitmqctl stop`` (every client connection closed, the node gone: a real restart, not
``stop_app``) and started again on the same Mnesia folder.
"""
from __future__ import annotations

import time

import pytest

from tests.chaos.instances import PrivateRabbit
from tests.chaos.load import Load
from tests.chaos.outage import outage_of
from tests.support import rmtree, running_platform

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

OUTAGE = 10.0
RPC_TIMEOUT = 4.0  # tests.support.Platform's BERTH_RPC_TIMEOUT


@pytest.fixture(scope="module")
def rabbit():
    with PrivateRabbit() as node:
        yield node


@pytest.fixture(scope="module")
def platform(tmp_path_factory, rabbit, module_smtp):
    folder = tmp_path_factory.mktemp("chaos-broker")
    with running_platform(folder, rabbit.uri, smtp_port=module_smtp.port) as stack:
        yield stack
    rmtree(folder)


def test_broker_restart_under_load(platform, rabbit, module_smtp, chaos_report):
    admin = platform.admin_token()
    with Load(platform, admin, "brk") as load:
        time.sleep(5)
        # "stopping": the node closes connections, then exits; the outage lasts until the
        # node listens again
        with outage_of("the broker", stop=rabbit.stop, start=rabbit.start, down_for=OUTAGE,
                       back=lambda: platform.wait_healthy(60, interval=0.25), load=load,
                       stopping="stopping", phase="outage", settle=5) as broker:
            pass
    stop_seconds, start_seconds = broker.stop_seconds, broker.start_seconds
    listening_at, recovered = broker.back_at, broker.recovered
    outage = [o for o in load.outcomes if o.phase == "outage"]
    stopping = [o for o in load.outcomes if o.phase == "stopping"]
    # sent while the broker was surely down (not in the last half second before it listened,
    # when a request may reach the new node before the services do: then the RPC timeout)
    down = [o for o in outage if o.started < listening_at - 0.5]
    down_latency = sorted(o.latency for o in down)
    after = [o for o in load.outcomes if o.phase == "after"]
    chaos_report(f"injected: private RabbitMQ stopped (rabbitmqctl stop, {stop_seconds:.1f} s) "
                 f"under 4 client threads, down {OUTAGE:.0f} s, started again "
                 f"(listening after {start_seconds:.1f} s)")
    load.report_phases(chaos_report)
    if down_latency:
        chaos_report(f"requests sent while the broker was down: {len(down)}, "
                     f"{sum(o.status == 503 for o in down)} answered 503, latency median "
                     f"{down_latency[len(down) // 2] * 1000:.0f} ms, max "
                     f"{down_latency[-1] * 1000:.0f} ms")
    chaos_report(f"every service answers health_check {recovered:.1f} s after the broker "
                 f"listened again")
    assert not load.unexpected(), load.unexpected()[:10]
    assert down, "no request was sent while the broker was down"
    assert all(o.status == 503 for o in down)
    assert down_latency[-1] < 1.0, "requests hung while the broker was down"
    # sent while it was closing connections or coming back: at worst the RPC timeout (the
    # request was published, its reply never came)
    assert max(o.latency for o in outage + stopping) < RPC_TIMEOUT + 1.0
    assert recovered is not None and recovered + start_seconds < 30
    assert after and all(200 <= o.status < 300 for o in after), \
        [o for o in after if o.status >= 300][:10]
    load.verify_and_report(module_smtp, chaos_report)
