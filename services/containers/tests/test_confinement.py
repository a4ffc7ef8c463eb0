"""Every container Berth creates is confined (issue 15, items 4 and 10), on the real engine.

Each limit is read back from the engine's own ``HostConfig`` (and, for capabilities and
``no-new-privileges``, from the kernel's view inside the container). Then the limits are made
to bite: a memory hog is OOM-killed and reported as died with reason ``oom`` while its
neighbour serves on; a fork bomb stops at the PIDs limit while its neighbour serves on; a
tenant's container cannot open a TCP connection to another tenant's container.

The hog and the bomb are bounded (256 MiB, 4x the PIDs limit), so a broken confinement fails
these tests instead of taking the machine down.
"""
from __future__ import annotations

import time
import urllib.request

import pytest

from berth.errors import ServiceUnavailable
from services.containers.engine_ops import ICC_OPTION, KEPT_CAPABILITIES, Confinement
from services.containers.service import ContainersService
from services.containers.tests.support import assert_confined, copy_of, outbox
from tests.docker_support import TEST_IMAGE, TEST_IMAGE_V2
from tests.support import free_port, poll

ADMIN = {"user_id": 1, "role": "admin", "username": "root"}
OTHER_TENANT = {"user_id": 2, "role": "admin", "username": "other"}  # admins need no rental
MIB = 1024 ** 2
LIMITS = {"BERTH_CONTAINER_MEMORY_MIB": "32", "BERTH_CONTAINER_CPUS": "0.5",
          "BERTH_CONTAINER_PIDS_LIMIT": "32", "BERTH_CONTAINER_LOG_MAX_SIZE_MIB": "1",
          "BERTH_CONTAINER_LOG_MAX_FILES": "2"}
# the capability numbers of linux/capability.h
CAPABILITY_BITS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "KILL": 5, "SETGID": 6,
                   "SETUID": 7, "NET_BIND_SERVICE": 10}


@pytest.fixture
def limits(monkeypatch):
    from berth.settings import reload_settings
    for name, value in LIMITS.items():
        monkeypatch.setenv(name, value)
    reload_settings()
    yield
    monkeypatch.undo()
    reload_settings()


@pytest.fixture
def server(rpc, make_service, clean_docker, docker_url, limits):
    make_service(ContainersService, HEALTH_INTERVAL=3600)
    return rpc.containers.add_server({"server_name": "local", "ip_address": "127.0.0.1",
                                      "docker_url": docker_url})["server_id"]


def create(rpc, name, actor=ADMIN, **extra) -> dict:
    return rpc.containers.create_container(actor, {"container_name": name,
                                                   "image": TEST_IMAGE, **extra})


def run_in(client, name: str, *command: str) -> tuple[int, str]:
    engine_id = copy_of(client, name)["Id"]
    exec_id = client.api.exec_create(engine_id, list(command))["Id"]
    output = client.api.exec_start(exec_id).decode(errors="replace")
    return client.api.exec_inspect(exec_id)["ExitCode"], output


def fetch(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=5) as response:
        return response.read()


def test_every_limit_is_in_the_engines_host_config_and_in_force(rpc, server, clean_docker):
    port = free_port()
    create(rpc, "boxed", ports={"80/tcp": port})
    assert Confinement.of() == Confinement(memory_bytes=32 * MIB, nano_cpus=500_000_000,
                                           pids_limit=32, log_max_size_mib=1,
                                           log_max_files=2)  # LIMITS, as settings read them
    assert_confined(clean_docker, "boxed")
    assert fetch(port) == b"1\n"  # it serves on its published port as before
    network = clean_docker.api.inspect_network("berth")
    assert network["Driver"] == "bridge" and network["Options"][ICC_OPTION] == "false"

    # the kernel's view of PID 1 inside: exactly the kept capabilities, no new privileges
    code, status = run_in(clean_docker, "boxed", "cat", "/proc/1/status")
    assert code == 0
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    wanted = sum(1 << CAPABILITY_BITS[c] for c in KEPT_CAPABILITIES)
    assert int(fields["CapEff"], 16) == int(fields["CapBnd"], 16) == wanted
    assert fields["NoNewPrivs"].strip() == "1"

    # copies made again from the row are confined the same way (update in place, replace)
    rpc.containers.update_container("boxed", {"image": TEST_IMAGE_V2})
    assert_confined(clean_docker, "boxed")
    assert fetch(port) == b"2\n"
    rpc.containers.replace_container({"container_name": "boxed"})
    assert_confined(clean_docker, "boxed")


def test_a_memory_hog_is_oom_killed_and_reported_while_its_neighbour_serves(
        rpc, server, clean_docker, databases):
    port = free_port()
    create(rpc, "neighbour", ports={"80/tcp": port})
    # doubles a shell string to 256 MiB (several copies live at once): far over 32 + 32 MiB
    create(rpc, "hog", command=["sh", "-c", "x=a; i=0; while [ $i -lt 28 ]; do x=$x$x; "
                                            "i=$((i+1)); done; exec sleep 3600"])

    def hog_state():
        state = copy_of(clean_docker, "hog")["State"]
        return state if state["Status"] == "exited" else None
    state = poll(hog_state, timeout=60, what="the hog to be killed")
    assert state["OOMKilled"] is True and state["ExitCode"] == 137

    rpc.containers.run_supervision()
    (died,) = [p for kind, p in outbox(databases) if kind == "container_died"]
    assert (died["container_name"], died["reason"], died["status"], died["exit_code"]) == (
        "hog", "oom", "stopped", 137)
    assert copy_of(clean_docker, "neighbour")["State"]["Status"] == "running"
    assert fetch(port) == b"1\n"


def test_a_fork_bomb_stops_at_the_pids_limit_while_its_neighbour_serves(
        rpc, server, clean_docker):
    port = free_port()
    create(rpc, "neighbour", ports={"80/tcp": port})
    # tries for 128 processes (4x the limit) in a subshell, then PID 1 sleeps on
    create(rpc, "bomb", command=["sh", "-c", "(i=0; while [ $i -lt 128 ]; do sleep 600 & "
                                             "i=$((i+1)); done); exec sleep 3600"])
    engine_id = copy_of(clean_docker, "bomb")["Id"]

    def processes() -> int:
        return len(clean_docker.api.top(engine_id)["Processes"])
    # at the limit the bombing subshell cannot fork and gives up: its sleepers stay
    poll(processes, until=lambda n: n >= 30, timeout=30, what="30 processes or more")
    time.sleep(1)  # had it got through, it would be on its way to 129
    assert 30 <= processes() <= 32
    assert copy_of(clean_docker, "neighbour")["State"]["Status"] == "running"
    assert fetch(port) == b"1\n"
    assert rpc.containers.stop_container(ADMIN, "bomb")["status"] == "stopped"


def test_a_tenant_cannot_open_a_connection_to_another_tenants_container(
        rpc, server, clean_docker):
    ports = {name: free_port() for name in ("mine", "theirs")}
    create(rpc, "mine", ports={"80/tcp": ports["mine"]})
    create(rpc, "theirs", actor=OTHER_TENANT, ports={"80/tcp": ports["theirs"]})
    assert copy_of(clean_docker, "theirs")["Config"]["Labels"]["berth.user_id"] == "2"
    address = copy_of(clean_docker, "theirs")["NetworkSettings"]["Networks"]["berth"][
        "IPAddress"]
    request = "printf 'GET /version HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 {} 80"
    # the probe works: a container reaches its own server on its own address
    own = copy_of(clean_docker, "mine")["NetworkSettings"]["Networks"]["berth"]["IPAddress"]
    code, output = run_in(clean_docker, "mine", "sh", "-c", request.format(own))
    assert code == 0 and "200 OK" in output
    code, output = run_in(clean_docker, "mine", "sh", "-c", request.format(address))
    assert code != 0 and "200 OK" not in output, output
    # both still serve the outside through their published ports
    assert fetch(ports["mine"]) == fetch(ports["theirs"]) == b"1\n"


def test_a_network_that_lets_containers_talk_is_refused_and_nothing_is_left(
        rpc, server, clean_docker, monkeypatch):
    from berth.settings import reload_settings
    name = f"berth-open-{free_port()}"
    clean_docker.api.create_network(name, driver="bridge")  # inter-container traffic on
    try:
        monkeypatch.setenv("BERTH_CONTAINER_NETWORK", name)
        reload_settings()
        with pytest.raises(ServiceUnavailable, match=ICC_OPTION):
            create(rpc, "open")
        assert rpc.containers.list_containers(ADMIN, {})["containers"] == []
        assert clean_docker.api.containers(all=True, filters={"label": "berth.managed"}) == []
    finally:
        clean_docker.api.remove_network(name)
