"""A service is SIGKILLed in the middle of requests and started again at once (as a
supervisor would): calls to it get a 503 within the gateway's RPC timeout meanwhile, and
afterwards every acknowledged operation has happened exactly once.

RabbitMQ requeues the requests the dead process had taken but not acknowledged; the restarted
process would run them a second time (ENGINEERING.md). The gateway's requests expire in the
queue after its RPC timeout, so that can only happen to requests younger than that: a restart
faster than the timeout is the case that matters: such a redelivered request is answered
with a 503, never run twice (berth.service.Rpc).
"""
from __future__ import annotations

import signal
import time

import pytest

from tests.chaos.load import Load
from tests.chaos.outage import outage_of

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

RPC_TIMEOUT = 4.0  # tests.support.Platform's BERTH_RPC_TIMEOUT
DOWN = 6.0  # longer than the RPC timeout: the requests expire in the queue, unanswered

# routes whose RPC goes to the service (the others may still answer while it is down)
ROUTES = {
    "users": {"/api/add_user", "/api/login", "/api/users", "/api/acl/generate",
              "/api/acl/update", "/api/security/user_acl_info"},
    "billing": {"/api/serial/generate", "/api/serial/redeem", "/api/user/rental_info"},
}


@pytest.mark.parametrize("service", ["users", "billing"])
def test_sigkill_mid_requests(platform, module_smtp, service, chaos_report):
    """Three kills each followed by an immediate restart (in-flight requests are redelivered
    to the new process within their TTL), then one kill with the service left down longer
    than the RPC timeout (calls to it are 503s)."""
    admin = platform.admin_token()
    log_path = platform.folder / f"{service}.log"

    def killed(down_for: float, **phases):
        return outage_of(f"the {service} service", down_for=down_for,
                         stop=lambda: platform.stop_service(service, signal.SIGKILL),
                         start=lambda: platform.start_service(service),
                         back=lambda: platform.wait_healthy(60, interval=0.25), **phases)
    with Load(platform, admin, f"kill{service}") as load:
        time.sleep(3)
        load.phase = "restarted"
        restarts = []
        for _ in range(3):
            with killed(0, settle=1.5) as restart:  # started again at once
                pass
            restarts.append(restart.recovered)
        with killed(DOWN, load=load, phase="down", settle=4) as kill:
            pass
    killed_at, back = kill.began, kill.since_stop
    # sent to the dead service at least an RPC timeout before it started again: expired
    # unanswered (later ones may be served by the new process, within their timeout)
    down = [o for o in load.outcomes if o.phase == "down" and o.route in ROUTES[service]
            and o.started < killed_at + DOWN - RPC_TIMEOUT]
    # on a loaded machine every client can be waiting on the service when it dies, and then
    # sends nothing new for the RPC timeout: those calls, sent before, were the dead
    # service's too (each a 503, or a 2xx whose reply it sent before it died)
    waiting = [o for o in load.outcomes if o.route in ROUTES[service]
               and o.started < kill.down_at < o.started + o.latency]
    redelivered = log_path.read_text(errors="replace").count("request redelivered")
    chaos_report(f"injected: SIGKILL to the {service} service under 4 client threads, 3 times "
                 f"restarted at once, then once left down {DOWN:g} s (RPC timeout "
                 f"{RPC_TIMEOUT:g} s)")
    load.report_phases(chaos_report)
    chaos_report(f"immediate restarts answered health_check after "
                 f"{', '.join('%.1f s' % r for r in restarts)}; "
                 f"requests redelivered to the new process (answered 503, not run twice): "
                 f"{redelivered}")
    for what, calls in ((f"calls to {service} while it was down", down),
                        (f"calls waiting on {service} when it died", waiting)):
        if calls:
            chaos_report(f"{what}: {len(calls)}, "
                         f"{sum(1 for o in calls if o.status == 503)} answered 503, max "
                         f"latency {max(o.latency for o in calls):.2f} s")
    chaos_report(f"{service} answers again {back:.1f} s after the "
                 f"last kill ({DOWN:g} s of it down on purpose)")
    assert not load.unexpected(), load.unexpected()[:10]
    assert all(r is not None and r < 30 for r in restarts) and back and back < DOWN + 30
    assert all(o.status == 503 for o in down), down[:10]
    assert down or any(o.status == 503 for o in waiting), waiting[:10]
    assert max(o.latency for o in load.outcomes) < RPC_TIMEOUT + 1.0
    after = [o for o in load.outcomes if o.phase == "after"]
    assert after and all(200 <= o.status < 300 for o in after), \
        [o for o in after if o.status >= 300][:10]
    load.verify_and_report(module_smtp, chaos_report)
