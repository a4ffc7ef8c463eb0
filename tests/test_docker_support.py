"""The Docker test infrastructure works: images serve real bytes, cleanup spares strangers, and
the second engine fails, comes back and goes away like a real host."""
from __future__ import annotations

import os
import subprocess
import time

import docker
import pytest
import requests

from tests.docker_support import (
    BLOB_SIZE, MANAGED_LABEL, TEST_IMAGE, TEST_IMAGE_V2, SecondEngine, ping,
    remove_berth_containers,
)
from tests.support import free_port, poll


def run_published(client, image, **kwargs):
    port = free_port()
    container = client.containers.run(
        image, detach=True, labels={MANAGED_LABEL: "test"},
        ports={"80/tcp": ("127.0.0.1", port)}, **kwargs)
    return container, f"http://127.0.0.1:{port}"


def get(url: str, timeout: float = 10.0) -> requests.Response:
    """GET once the container's server listens."""
    return poll(lambda: requests.get(url, timeout=5), until=None,
                retry_on=requests.ConnectionError, timeout=timeout, interval=0.05,
                what=f"{url} to answer")


def docker0_exists() -> bool:
    return subprocess.run(["ip", "link", "show", "docker0"], capture_output=True).returncode == 0


# --- the default engine ---------------------------------------------------------------------

def test_test_image_serves_a_mebibyte_on_a_published_port(clean_docker):
    _, base = run_published(clean_docker, TEST_IMAGE)

    blob = get(f"{base}/blob")
    assert blob.status_code == 200
    assert len(blob.content) == BLOB_SIZE == 1048576
    assert "berth test image v1" in get(f"{base}/").text
    assert get(f"{base}/version").text.strip() == "1"


def test_v2_image_serves_version_2(clean_docker):
    _, base = run_published(clean_docker, TEST_IMAGE_V2)

    assert get(f"{base}/version").text.strip() == "2"
    assert "berth test image v2" in get(f"{base}/").text


def test_test_image_stops_at_once(clean_docker):
    container, _ = run_published(clean_docker, TEST_IMAGE)

    started = time.monotonic()
    container.stop(timeout=10)
    container.reload()

    assert time.monotonic() - started < 3  # not the 10 s grace period of a deaf PID 1
    assert container.attrs["State"]["ExitCode"] == 0


def test_remove_berth_containers_spares_unlabelled_ones(clean_docker):
    labelled = clean_docker.containers.run(TEST_IMAGE, detach=True,
                                           labels={MANAGED_LABEL: "any value"})
    stranger = clean_docker.containers.run(TEST_IMAGE, detach=True, labels={"other": "1"})
    try:
        remove_berth_containers(clean_docker)

        with pytest.raises(docker.errors.NotFound):
            labelled.reload()
        stranger.reload()
        assert stranger.status == "running"
    finally:
        stranger.remove(force=True)


# --- a second engine ------------------------------------------------------------------------

def test_second_engine_is_a_separate_engine(second_engine, docker_client):
    client = second_engine.client()
    container = client.containers.run(TEST_IMAGE, detach=True, labels={MANAGED_LABEL: "second"},
                                      ports={"80/tcp": ("127.0.0.1", free_port())})
    container.reload()

    assert container.status == "running"
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(container.id)
    assert docker0_exists()
    remove_berth_containers(client)


def test_second_engine_kill_and_restart(second_engine):
    client = second_engine.client()
    plain = client.containers.run(TEST_IMAGE, detach=True, labels={MANAGED_LABEL: "plain"})
    always = client.containers.run(TEST_IMAGE_V2, detach=True, labels={MANAGED_LABEL: "always"},
                                   restart_policy={"Name": "always"})

    second_engine.kill()
    poll(lambda: ping(second_engine.url, timeout=1), until=lambda answers: not answers,
         timeout=3, interval=0.01, what="the engine to stop answering after SIGKILL")
    with pytest.raises(requests.ConnectionError):
        client.ping()

    second_engine.restart()

    assert client.ping()
    plain.reload()
    always.reload()
    # no live-restore: dockerd stops what it finds running; only a restart policy brings it back
    assert (plain.status, plain.attrs["State"]["ExitCode"]) == ("exited", 0)
    assert always.status == "running"

    plain.start()
    second_engine.kill(whole_host=True)  # a power cut: the containers die with the engine
    second_engine.restart()

    plain.reload()
    always.reload()
    assert (plain.status, plain.attrs["State"]["ExitCode"]) == ("exited", 255)
    assert always.status == "running"
    remove_berth_containers(client)


def test_second_engine_close_leaves_nothing_behind(docker_client):
    engine = SecondEngine().start()
    root = str(engine.root)
    client = engine.client()
    client.containers.run(TEST_IMAGE, detach=True, labels={MANAGED_LABEL: "x"},
                          ports={"80/tcp": ("127.0.0.1", free_port())})
    assert engine.processes()

    engine.close()

    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert engine.name not in netns
    assert not os.path.exists(root)
    assert engine.processes() == []
    with open("/proc/self/mountinfo") as mounts:
        assert root not in mounts.read()
    assert docker0_exists()
    assert docker_client.ping()
