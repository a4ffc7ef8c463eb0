"""The operator's fleet journey in a real headless Chromium (issue 17, item 8), every part
real: the platform's processes with a 1 s health tick, the default Docker engine as the server
"home", and a second dockerd in its own network namespace (tests.docker_support.SecondEngine)
that the operator adds in the console as "edge-1". The test puts a container on edge-1 and
kills that engine (SIGKILL); the operator's page shows the alert as it arrives and the server
going offline, without a reload; a confirmed failover moves the container to home, where it
runs. The journey is ``operator_fleet`` in ``console_area_journeys.py``; its screenshots go to
a folder this test reports.

It uses the default engine: make test runs it in its "engine" shard, with one such test at
a time (tests/shards.py); by hand, not beside another run on the same engine."""
from __future__ import annotations

import pytest

from tests.docker_support import TEST_IMAGE, remove_berth_containers
from tests.e2e.helpers import Beside
from tests.e2e.test_console_operator import built_console, journey, ok  # noqa: F401 (autouse)
from tests.support import poll, report, rmtree, running_platform

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory, amqp_uri, module_smtp, docker_client):
    """The platform with a 1 s health tick and no automatic failover (the operator's to do)."""
    remove_berth_containers(docker_client)
    folder = tmp_path_factory.mktemp("console-fleet")
    with running_platform(folder, amqp_uri, smtp_port=module_smtp.port, extra_env={
            "BERTH_HEALTH_INTERVAL": "1", "BERTH_ALERT_CHECK_INTERVAL": "3600",
            "BERTH_FAILOVER_AFTER": "0"}) as platform:
        yield platform
    remove_berth_containers(docker_client)
    rmtree(folder)


def test_an_operator_adds_a_server_sees_it_die_live_and_fails_over(
        stack, docker_url, second_engine, tmp_path_factory):
    engine = second_engine
    if engine.pid is None:
        engine.restart()
    admin = stack.admin_token()
    home = ok(stack, "POST", "/api/add_server", {"server_name": "home",
                                                 "ip_address": "127.0.0.1",
                                                 "docker_url": docker_url}, admin)
    assert home["status"] == "online", home
    shots = tmp_path_factory.mktemp("console-fleet-screenshots")
    sync = tmp_path_factory.mktemp("console-fleet-sync")
    done: dict = {}

    def put_a_container_there_and_kill_the_engine():
        poll(lambda: (sync / "added").exists(), timeout=120, what="the server added")
        [edge] = [s for s in ok(stack, "GET", "/api/servers", token=admin)["servers"]
                  if s["server_name"] == "edge-1"]
        done["edge"] = edge
        created = ok(stack, "POST", "/api/containers", {
            "container_name": "fleet-box", "image": TEST_IMAGE,
            "server_id": edge["server_id"]}, admin)
        done["container"] = created
        poll(lambda: engine.client().containers.list(
            filters={"label": f"berth.container_id={created['container_id']}"}),
             timeout=60, what="fleet-box running on edge-1")
        engine.kill()  # the host dies

    helper = Beside(put_a_container_there_and_kill_the_engine, sync / "killed")
    helper.start()
    try:
        seen = journey(stack, "operator_fleet", shots=str(shots),
                       username=stack.admin["username"], password=stack.admin["password"],
                       engine_url=engine.url, sync=str(sync))
    finally:
        helper.finish()
    report(f"console fleet journey screenshots: {shots} (the add-server form, edge-1 online, "
           f"the alert notice arriving, edge-1 offline, the alert listed, the failover's "
           f"actions)")
    report(f"console fleet: after the engine was killed the alert showed in "
           f"{seen['alert_after']} s and the server offline in {seen['offline_after']} s, "
           f"without a reload (health tick 1 s)")

    edge, box = done["edge"], done["container"]
    assert edge["status"] == "online" and box["server_id"] == edge["server_id"]
    assert seen["added_status"].lower() == "online"
    assert engine.url in seen["added_row"]
    assert "Alert:" in seen["notice"] and "edge-1" in seen["notice"]
    assert "offline" in seen["offline_row"].lower()
    assert any("edge-1" in row and "open" in row.lower() for row in seen["alert_rows"])
    assert seen["same_document"]  # all of it live, no reload
    assert "Fail over" in seen["failover_confirm"]
    assert seen["failover_result"].startswith("Failover operation successful")
    [moved] = seen["failover_actions"]
    assert "fleet-box" in moved and "moved" in moved.lower()
    assert f"edge-1 #{edge['server_id']}" in moved and f"home #{home['server_id']}" in moved
    # what the API says: the container is on home now, and runs there
    rows = poll(lambda: ok(stack, "GET", "/api/containers", token=admin)["containers"],
                until=lambda rs: [(r["server_id"], r["status"]) for r in rs
                                  if r["container_name"] == "fleet-box"]
                == [(home["server_id"], "running")], timeout=60, what="fleet-box on home")
    assert len(rows) == 1
    assert len(seen["screenshots"]) == 6
