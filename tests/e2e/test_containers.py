"""Servers, containers and HA end to end: HTTP only on Berth's side, the docker SDK to check
what the engine really runs, and a real file download from a container's published port."""
from __future__ import annotations

import datetime as dt
import functools
import itertools
import time
import urllib.request

import pytest

from tests.docker_support import TEST_IMAGE, TEST_IMAGE_V2, remove_berth_containers
from tests.support import free_port, poll, rmtree, running_platform

pytestmark = pytest.mark.e2e

_names = itertools.count(1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, amqp_uri, docker_client):
    """The platform with a 1 s health tick, on an engine cleared of Berth containers."""
    remove_berth_containers(docker_client)
    folder = tmp_path_factory.mktemp("containers-platform")
    with running_platform(folder, amqp_uri, extra_env={"BERTH_HEALTH_INTERVAL": "1"}) as p:
        yield p
    remove_berth_containers(docker_client)
    rmtree(folder)


@pytest.fixture(scope="module")
def admin(stack):
    return stack.admin_token()


@pytest.fixture(scope="module")
def server_id(stack, admin, docker_url):
    return ok(stack, "POST", "/api/add_server", {
        "server_name": "local", "ip_address": "127.0.0.1", "docker_url": docker_url,
        "status": "online"}, admin)["server_id"]


def ok(stack, method, path, body=None, token=None) -> dict:
    status, reply = stack.request(method, path, body, token=token)
    assert status == 200, (method, path, status, reply)
    return reply


def day(n: int) -> str:
    return (dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=n)).isoformat()


def new_user(stack) -> dict:
    name = f"tenant{next(_names)}"
    user_id, token = stack.new_user(name)
    return {"id": user_id, "token": token, "username": name}


def engine_copy(client, container_id: int):
    found = [c for c in client.containers.list(all=True, filters={
        "label": f"berth.container_id={container_id}"})]
    assert len(found) == 1, found
    return found[0]


def download(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.read()



def test_servers_and_health(stack, admin, server_id, tmp_path):
    status = ok(stack, "GET", f"/api/server/status/{server_id}", token=admin)
    assert status["server_id"] == server_id and status["status"] == "online"
    assert ok(stack, "GET", "/api/ha/health", token=admin)["status"] == "healthy"
    one = ok(stack, "GET", f"/api/ha/health/{server_id}", token=admin)
    assert one == {**one, "server_id": server_id, "status": "healthy"}
    code, reply = stack.request("POST", "/api/add_server", {"server_name": "x",
                                                            "ip_address": "300.1.1.1"},
                                token=admin)
    assert (code, reply["error"]) == (400, "Invalid server data")
    code, reply = stack.request("POST", "/api/add_server", {"server_name": "local",
                                                            "ip_address": "127.0.0.1",
                                                            "docker_url": "unix:///tmp/x.sock"},
                                token=admin)
    assert code == 409
    # issue 15: the default URL is tcp://<ip>:2376, and plaintext tcp:// is refused outside
    # development (this add was a 409 for its name before; the URL is now checked first)
    code, reply = stack.request("POST", "/api/add_server", {"server_name": "plain",
                                                            "ip_address": "127.0.0.1"},
                                token=admin)
    assert code == 400 and reply["details"][0]["field"] == "docker_url", reply
    assert stack.request("GET", "/api/server/status/9999", token=admin)[0] == 404
    user = new_user(stack)
    # (POST /api/containers is a customer's too since issue 15: without a rental, a 409)
    for method, path in (("GET", f"/api/server/status/{server_id}"), ("GET", "/api/ha/health"),
                         ("POST", "/api/ha/failover")):
        assert stack.request(method, path, {"container_name": "x", "image": TEST_IMAGE}
                             if method == "POST" else None, token=user["token"])[0] == 403


def test_admin_container_lifecycle(stack, admin, server_id, docker_client):
    port = free_port()
    created = ok(stack, "POST", "/api/containers", {
        "container_name": "site", "image": TEST_IMAGE, "ports": {"80/tcp": port}}, admin)
    assert created["message"] == "Container created successfully"
    copy = engine_copy(docker_client, created["container_id"])
    assert copy.status == "running" and copy.name == "site"
    assert len(download(port, "/blob")) == 1024 * 1024
    listed = ok(stack, "GET", "/api/containers", token=admin)["containers"]
    assert {"container_name": "site", "status": "running"}.items() <= \
        next(c for c in listed if c["container_id"] == created["container_id"]).items()
    assert ok(stack, "GET", "/api/containers/site/status", token=admin)["status"] == "running"

    for body, code in (({"container_name": "site", "image": TEST_IMAGE}, 409),
                       ({"container_name": "ghost", "image": "berth-test/none:1"}, 400),
                       ({"container_name": "bad name", "image": TEST_IMAGE}, 400),
                       ({"container_name": "extra", "image": TEST_IMAGE, "x": 1}, 400)):
        status, reply = stack.request("POST", "/api/containers", body, token=admin)
        assert status == code, (body, reply)
        assert isinstance(reply["error"], str)
    assert [c.name for c in docker_client.containers.list(all=True, filters={
        "label": "berth.managed"})] == ["site"]

    assert ok(stack, "PUT", "/api/containers/site", {"container_name": "site2"},
              admin)["message"] == "Container updated successfully"
    assert engine_copy(docker_client, created["container_id"]).name == "site2"
    ok(stack, "PUT", "/api/containers/site2", {"image": TEST_IMAGE_V2}, admin)
    assert download(port, "/version").strip() == b"2"
    assert engine_copy(docker_client, created["container_id"]).id != copy.id

    stopped = ok(stack, "POST", "/api/containers/site2/stop", token=admin)
    assert stopped["message"] == "Container stopped successfully"
    assert engine_copy(docker_client, created["container_id"]).status == "exited"
    assert ok(stack, "GET", "/api/containers/site2/status", token=admin)["status"] == "stopped"
    time.sleep(2.5)  # two health ticks: a stop that was asked for stays stopped
    assert engine_copy(docker_client, created["container_id"]).status == "exited"
    assert stack.request("GET", "/api/containers/nope/status", token=admin)[0] == 404
    assert stack.request("DELETE", "/api/containers/site2", token=admin)[0] == 200


def test_a_customers_container_runs_under_their_plans_limits_in_every_copy(
        stack, admin, server_id, docker_client):
    """The plan a customer's serial sold reaches the engine: memory (swap equal), CPUs,
    processes and log size, read back from the engine's own HostConfig, after a replace too."""
    carol = new_user(stack)
    plan = ok(stack, "POST", "/api/plans", {
        "name": f"tiny-{carol['id']}", "cpus": 0.25, "memory_mib": 48, "pids_limit": 40,
        "max_containers": 1, "max_ports": 1, "log_max_mib": 6}, admin)["plan"]
    serial = ok(stack, "POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": day(30), "plan_id": plan["plan_id"]}, admin)
    ok(stack, "POST", "/api/serial/redeem", {"serial_code": serial["serial_code"]},
       carol["token"])
    name = f"carol-box-{carol['id']}"
    created = ok(stack, "POST", "/api/containers", {
        "container_name": name, "image": TEST_IMAGE, "user_id": carol["id"]}, admin)

    def limits() -> tuple:
        config = engine_copy(docker_client, created["container_id"]).attrs["HostConfig"]
        return (config["Memory"], config["MemorySwap"], config["NanoCpus"],
                config["PidsLimit"], config["LogConfig"]["Config"]["max-size"])
    expected = (48 * 2**20, 96 * 2**20, 250_000_000, 40, "2m")  # 6 MiB over 3 files
    assert limits() == expected
    ok(stack, "POST", "/api/ha/replace_container", {"container_name": name}, admin)
    assert limits() == expected
    assert stack.request("DELETE", f"/api/containers/{name}", token=admin)[0] == 200


def test_a_customer_runs_their_own_container_and_no_one_elses(stack, admin, server_id,
                                                              docker_client):
    dave, eve = new_user(stack), new_user(stack)
    serial = ok(stack, "POST", "/api/serial/generate", {"type": "rental",
                                                        "expiry_date": day(30)}, admin)
    rental_id = ok(stack, "POST", "/api/serial/redeem", {"serial_code": serial["serial_code"]},
                   dave["token"])["rental_id"]
    name = f"dave-box-{dave['id']}"
    created = ok(stack, "POST", "/api/containers", {
        "container_name": name, "image": TEST_IMAGE, "user_id": dave["id"],
        "command": ["sh", "-c", "echo hello; echo world; exec sleep 3600"]}, admin)
    copy = functools.partial(engine_copy, docker_client, created["container_id"])
    base = f"/api/containers/{name}"
    for method, path in (("POST", f"{base}/start"), ("POST", f"{base}/restart"),
                         ("GET", f"{base}/logs"), ("DELETE", base)):
        assert stack.request(method, path, token=eve["token"])[0] == 403, (method, path)
    assert copy().status == "running"

    logs = poll(lambda: ok(stack, "GET", f"{base}/logs?tail=1", token=dave["token"]),
                until=lambda reply: reply["lines"], what="the container's output")
    assert logs["lines"] == ["world"] and logs["tail"] == 1
    assert ok(stack, "GET", f"{base}/logs", token=dave["token"])["lines"] == ["hello", "world"]
    assert stack.request("GET", f"{base}/logs?tail=1001", token=dave["token"])[0] == 400
    ok(stack, "POST", f"{base}/stop", token=dave["token"])
    assert copy().status == "exited"
    assert ok(stack, "POST", f"{base}/start", token=dave["token"])["status"] == "running"
    assert copy().status == "running"
    started = copy().attrs["State"]["StartedAt"]
    assert ok(stack, "POST", f"{base}/restart", token=dave["token"])["status"] == "running"
    assert copy().status == "running" and copy().attrs["State"]["StartedAt"] != started

    # the rental ends: its containers stop, and the customer cannot start them (an admin can)
    ok(stack, "PUT", f"/api/rental/history/update/{rental_id}", {"status": "expired"}, admin)
    poll(lambda: copy().status, until=lambda status: status == "exited",
         what="the container stopped by the rental's end")
    for action in ("start", "restart"):
        status, reply = stack.request("POST", f"{base}/{action}", token=dave["token"])
        assert status == 409 and "rental is expired" in reply["error"], reply
    assert copy().status == "exited"  # a refused restart stopped nothing either
    ok(stack, "POST", f"{base}/start", token=admin)
    assert copy().status == "running"
    ok(stack, "DELETE", base, token=dave["token"])
    assert docker_client.containers.list(all=True, filters={
        "label": f"berth.container_id={created['container_id']}"}) == []


def test_a_customer_creates_from_their_plans_catalogue_within_its_count(
        stack, admin, server_id, docker_client):
    fay, gus = new_user(stack), new_user(stack)
    image = ok(stack, "POST", "/api/images", {
        "reference": TEST_IMAGE, "display_name": "web", "container_port": 80}, admin)["image"]
    plan = ok(stack, "POST", "/api/plans", {
        "name": f"one-site-{fay['id']}", "cpus": 0.5, "memory_mib": 64, "pids_limit": 64,
        "max_containers": 1, "max_ports": 1, "log_max_mib": 3,
        "image_ids": [image["image_id"]]}, admin)["plan"]
    serial = ok(stack, "POST", "/api/serial/generate", {
        "type": "rental", "expiry_date": day(30), "plan_id": plan["plan_id"]}, admin)
    body = {"container_name": f"fay-site-{fay['id']}", "image": TEST_IMAGE}
    status, reply = stack.request("POST", "/api/containers", body, token=fay["token"])
    assert status == 409 and "no active rental" in reply["error"], reply  # not yet
    ok(stack, "POST", "/api/serial/redeem", {"serial_code": serial["serial_code"]},
       fay["token"])

    for refused, code in (({**body, "image": TEST_IMAGE_V2}, 400),  # not in the catalogue
                          ({**body, "user_id": gus["id"]}, 403),  # for someone else
                          ({**body, "server_id": server_id}, 403),  # Berth picks the server
                          ({**body, "ports": {"80/tcp": free_port()}}, 400)):  # and the port
        status, reply = stack.request("POST", "/api/containers", refused, token=fay["token"])
        assert status == code, (refused, status, reply)
    created = ok(stack, "POST", "/api/containers", body, fay["token"])
    row = ok(stack, "GET", "/api/containers", token=fay["token"])["containers"][0]
    port = row["ports"]["80/tcp"]
    assert 20000 <= port <= 29999 and row["container_id"] == created["container_id"]
    assert poll(lambda: download(port, "/"), until=None, retry_on=OSError,
                what="the customer's site")  # served on the port Berth picked
    config = engine_copy(docker_client, created["container_id"]).attrs["HostConfig"]
    assert (config["Memory"], config["NanoCpus"]) == (64 * 2**20, 500_000_000)
    status, reply = stack.request("POST", "/api/containers", {**body, "container_name": "x2"},
                                  token=fay["token"])
    assert status == 409 and "allows 1 container" in reply["error"], reply
    ok(stack, "DELETE", f"/api/containers/{body['container_name']}", token=fay["token"])


def test_customers_need_a_rental_and_see_only_their_own(stack, admin, server_id,
                                                        docker_client):
    alice, bob = new_user(stack), new_user(stack)
    body = {"container_name": "alice-box", "image": TEST_IMAGE, "user_id": alice["id"]}
    status, reply = stack.request("POST", "/api/containers", body, token=admin)
    assert status == 409 and "rental" in reply["error"]
    serial = ok(stack, "POST", "/api/serial/generate", {"type": "rental",
                                                        "expiry_date": day(30)}, admin)
    ok(stack, "POST", "/api/serial/redeem", {"serial_code": serial["serial_code"]},
       alice["token"])
    created = ok(stack, "POST", "/api/containers", body, admin)
    mine = ok(stack, "GET", "/api/containers", token=alice["token"])["containers"]
    assert [c["container_name"] for c in mine] == ["alice-box"]
    assert ok(stack, "GET", "/api/containers", token=bob["token"])["containers"] == []
    assert stack.request("GET", "/api/containers/alice-box/status",
                         token=bob["token"])[0] == 403
    assert stack.request("POST", "/api/containers/alice-box/stop",
                         token=bob["token"])[0] == 403
    assert engine_copy(docker_client, created["container_id"]).status == "running"
    assert ok(stack, "GET", "/api/containers/alice-box/status",
              token=alice["token"])["status"] == "running"
    ok(stack, "POST", "/api/containers/alice-box/stop", token=alice["token"])
    assert engine_copy(docker_client, created["container_id"]).status == "exited"
    assert stack.request("DELETE", "/api/containers/alice-box", token=admin)[0] == 200


def test_rental_expiry_stops_containers_and_renewal_starts_them(stack, admin, server_id,
                                                                 docker_client):
    carol = new_user(stack)
    serial = ok(stack, "POST", "/api/serial/generate", {"type": "rental",
                                                        "expiry_date": day(10)}, admin)
    rental = ok(stack, "POST", "/api/serial/redeem", {"serial_code": serial["serial_code"]},
                carol["token"])
    ids = [ok(stack, "POST", "/api/containers", {"container_name": f"carol{n}",
                                                 "image": TEST_IMAGE,
                                                 "user_id": carol["id"]}, admin)["container_id"]
           for n in range(2)]
    # an admin ends the rental: billing dispatches rental_expired, containers stops them
    ok(stack, "PUT", f"/api/rental/history/update/{rental['rental_id']}",
       {"status": "expired"}, admin)
    poll(lambda: [engine_copy(docker_client, i).status for i in ids],
         until=lambda states: set(states) == {"exited"}, timeout=30,
         what="containers stopped after the rental expired")
    rows = ok(stack, "GET", "/api/containers", token=carol["token"])["containers"]
    assert {r["desired_state"] for r in rows} == {"stopped"}
    ok(stack, "POST", "/api/rental/renew", {"rental_id": rental["rental_id"],
                                            "new_expiry_date": day(40)}, admin)
    poll(lambda: [engine_copy(docker_client, i).status for i in ids],
         until=lambda states: set(states) == {"running"}, timeout=30,
         what="containers running again after renewal")
    for n in range(2):
        ok(stack, "DELETE", f"/api/containers/carol{n}", token=admin)


def test_ha_routes(stack, admin, server_id, docker_client):
    created = ok(stack, "POST", "/api/containers", {"container_name": "ha-box",
                                                    "image": TEST_IMAGE}, admin)
    engine_copy(docker_client, created["container_id"]).remove(force=True)
    reply = ok(stack, "POST", "/api/ha/disaster_recovery", token=admin)
    assert reply["message"] == "Disaster recovery operation successful"
    assert [(a["container_name"], a["action"]) for a in reply["actions"]] == [
        ("ha-box", "recreated")]
    first = engine_copy(docker_client, created["container_id"])
    assert first.status == "running"
    reply = ok(stack, "POST", "/api/ha/replace_container", {"container_name": "ha-box"}, admin)
    assert reply["message"] == "Docker container replaced successfully"
    second = engine_copy(docker_client, created["container_id"])
    assert second.id != first.id and second.status == "running"
    status, reply = stack.request("POST", "/api/ha/replace_container", {}, token=admin)
    assert status == 400
    assert ok(stack, "POST", "/api/ha/failover", token=admin) == {
        "message": "Failover operation successful", "actions": []}
    assert ok(stack, "POST", "/api/ha/load_balance", token=admin) == {
        "message": "Load balance operation successful", "actions": []}
    # a container killed behind Berth's back is restarted by the health tick
    second.kill()
    poll(lambda: engine_copy(docker_client, created["container_id"]).status,
         until=lambda state: state == "running", timeout=30,
         what="the supervisor to restart a killed container")
    ok(stack, "DELETE", "/api/containers/ha-box", token=admin)


def test_a_request_id_follows_the_work_into_every_services_logs(stack, admin, server_id):
    status, headers, _ = stack.fetch("POST", "/api/containers", {
        "container_name": "traced", "image": TEST_IMAGE}, token=admin,
        headers={"X-Request-ID": "trace-e2e-0001"})
    assert status == 200 and headers["X-Request-ID"] == "trace-e2e-0001"
    # the containers service logged the create under it, and the alerts service handled the
    # container_created event under it (RPC context data, then the event's header)
    poll(lambda: (stack.folder / "alerts.log").read_text(),
         until=lambda log: "[trace-e2e-0001]" in log, timeout=30,
         what="the alerts service to log the event under the request id")
    created = [line for line in (stack.folder / "containers.log").read_text().splitlines()
               if "[trace-e2e-0001]" in line]
    assert any("created" in line for line in created)
    status, headers, _ = stack.fetch("GET", "/api/containers", token=admin,
                                     headers={"X-Request-ID": "bad id with spaces"})
    fresh = headers["X-Request-ID"]  # replaced by a fresh one (berth.context.unique_id)
    assert status == 200 and len(fresh) >= 24 and fresh.isalnum(), fresh
    ok(stack, "DELETE", "/api/containers/traced", token=admin)
