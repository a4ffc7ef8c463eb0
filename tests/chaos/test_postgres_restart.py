"""PostgreSQL restarts under a steady mixed load (every service's database on it): requests
that need a database while it is away get a clear 503, and afterwards everything works again
without restarting any Berth process (a pooled connection that rested is pinged before use); no
acknowledged operation is lost.

The database is a private cluster (tests/chaos/instances.py), shut down with
``pg_ctl stop -m fast`` (every session terminated), left down a few seconds, started again.
A bare ``pg_ctl restart`` takes 0.2 s here, too short to see anything but a few errors.
"""
from __future__ import annotations

import time

import pytest

from tests.chaos.instances import PrivatePostgres
from tests.chaos.load import Load
from tests.chaos.outage import outage_of
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
        with outage_of("PostgreSQL", stop=postgres.stop, start=postgres.start,
                       down_for=OUTAGE, back=lambda: platform.wait_healthy(60, interval=0.25),
                       load=load, phase="outage", settle=4) as database:
            pass
    stop_seconds, start_seconds = database.stop_seconds, database.start_seconds
    recovered = database.recovered
    outage = [o for o in load.outcomes if o.phase == "outage"]
    chaos_report(f"injected: private PostgreSQL (all five databases) stopped with pg_ctl "
                 f"stop -m fast ({stop_seconds:.1f} s) under 4 client threads, down "
                 f"{OUTAGE:g} s, started again ({start_seconds:.1f} s)")
    load.report_phases(chaos_report)
    chaos_report(f"every service answers health_check {recovered:.1f} s after PostgreSQL "
                 f"accepted connections again; no Berth process restarted")
    assert not load.unexpected(), load.unexpected()[:10]
    assert any(o.status == 503 for o in outage), "no request saw the database away"
    assert max(o.latency for o in load.outcomes) < RPC_TIMEOUT + 1.0
    assert recovered is not None and recovered < 30
    after = [o for o in load.outcomes if o.phase == "after"]
    assert after and all(200 <= o.status < 300 for o in after), \
        [o for o in after if o.status >= 300][:10]
    assert {name: proc.pid for name, proc in platform.procs.items()} == pids
    assert all(proc.poll() is None for proc in platform.procs.values())
    load.verify_and_report(module_smtp, chaos_report)
