"""PostgreSQL restarts under a steady mixed load (every service's database on it): requests
that need a database while it is away get a clear 503, and afterwards everything works again
without restarting any Berth process (pooled connections are pinged before use); no
acknowledged operation is lost.

The database is a private cluster (tests/chaos/instances.py), shut down with
``pg_ctl stop -m fast`` (every session terminated), left down a few seconds, started again.
A bare ``pg_ctl restart`` takes 0.2 s here, too short to see anything but a few errors.
"""
from __future__ import annotations

import time

import pytest

from tests.chaos.instances import PrivatePostgres
from tests.chaos.load import Load, wait_until
from tests.support import rmtree, running_platform

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

OUTAGE = 6.0
RPC_TIMEOUT = 4.0  # tests.support.Platform's BERTH_RPC_TIMEOUT


@pytest.fixture(scope="module")
def postgres():
    with PrivatePostgres() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def platform(tmp_path_factory, amqp_uri, module_smtp, postgres):
    folder = tmp_path_factory.mktemp("chaos-postgres")
    with running_platform(folder, amqp_uri, smtp_port=module_smtp.port,
                          database_template=postgres.template) as stack:
        yield stack
    rmtree(folder)


def test_postgres_restart_under_load(platform, postgres, module_smtp, chaos_report):
    admin = platform.admin_token()
    pids = {name: proc.pid for name, proc in platform.procs.items()}
    with Load(platform, admin, "pgr") as load:
        time.sleep(4)
        load.phase = "outage"
        stopped_at = time.monotonic()
        postgres.stop()
        stop_seconds = time.monotonic() - stopped_at
        time.sleep(max(0.0, OUTAGE - stop_seconds))
        start_seconds = postgres.start()
        load.phase = "recovery"
        recovered = wait_until(platform.healthy, timeout=60)
        load.phase = "after"
        time.sleep(4)
    outage = [o for o in load.outcomes if o.phase == "outage"]
    chaos_report(f"injected: private PostgreSQL (all five databases) stopped with pg_ctl "
                 f"stop -m fast ({stop_seconds:.1f} s) under 4 client threads, down "
                 f"{OUTAGE:g} s, started again ({start_seconds:.1f} s)")
    chaos_report("observed requests by phase (phase = when the request was sent):")
    for line in load.summary():
        chaos_report(line)
    chaos_report(f"every service answers health_check "
                 f"{'%.1f s' % recovered if recovered is not None else 'NEVER'} after "
                 f"PostgreSQL accepted connections again; no Berth process restarted")
    assert not load.unexpected(), load.unexpected()[:10]
    assert any(o.status == 503 for o in outage), "no request saw the database away"
    assert max(o.latency for o in load.outcomes) < RPC_TIMEOUT + 1.0
    assert recovered is not None and recovered < 30
    after = [o for o in load.outcomes if o.phase == "after"]
    assert after and all(200 <= o.status < 300 for o in after), \
        [o for o in after if o.status >= 300][:10]
    assert {name: proc.pid for name, proc in platform.procs.items()} == pids
    assert all(proc.poll() is None for proc in platform.procs.values())
    began = time.monotonic()
    for line in load.verify(module_smtp):
        chaos_report(f"verified: {line}")
    chaos_report(f"verification took {time.monotonic() - began:.1f} s")
