"""Images are pulled onto a host that lacks them (issue 15, item 4), from a real registry:
Debian's ``docker-registry`` on 127.0.0.1 (the engine trusts loopback registries over HTTP).
A copy made again (replace) on a host that lost the image pulls too; an image no registry has
is a 400 naming ``image`` that leaves no row and no engine object."""
from __future__ import annotations

import shutil
import subprocess

import docker
import pytest

from berth.errors import BadRequest
from services.containers.service import ContainersService
from tests.docker_support import TEST_IMAGE
from tests.support import free_port, poll, wait_for_port

ADMIN = {"user_id": 1, "role": "admin", "username": "root"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """``127.0.0.1:<port>``: a registry of its own, storing under a temporary folder."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("`apt-get install -y docker-registry` (.ci/run does it)")
    folder = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = folder / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {folder / 'data'}\nhttp:\n"
                      f"  addr: 127.0.0.1:{port}\n")
    with open(folder / "registry.log", "wb") as log:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, 20)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def pushed(registry, docker_client):
    """TEST_IMAGE in the registry as ``<registry>/berth-test/pulled:<n>``, absent from the
    engine (so the first create must pull it)."""
    ref = f"{registry}/berth-test/pulled:{free_port()}"
    repository, tag = ref.rsplit(":", 1)
    docker_client.api.tag(TEST_IMAGE, repository, tag)
    for message in docker_client.api.push(repository, tag, stream=True, decode=True):
        assert "error" not in message, message
    docker_client.api.remove_image(ref)
    yield ref
    try:
        docker_client.api.remove_image(ref, force=True)
    except docker.errors.ImageNotFound:
        pass


@pytest.fixture
def server(rpc, make_service, clean_docker, docker_url, registry, monkeypatch):
    from berth.settings import reload_settings
    monkeypatch.setenv("BERTH_CONTAINER_PULL_REGISTRIES", f"docker.example,{registry}")
    reload_settings()
    make_service(ContainersService, HEALTH_INTERVAL=3600)
    yield rpc.containers.add_server({"server_name": "local", "ip_address": "127.0.0.1",
                                     "docker_url": docker_url})["server_id"]
    monkeypatch.undo()
    reload_settings()


def has_image(client, ref: str) -> bool:
    try:
        client.api.inspect_image(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def test_an_image_the_host_lacks_is_pulled_and_so_it_is_again_for_a_new_copy(
        rpc, server, clean_docker, pushed):
    assert not has_image(clean_docker, pushed)
    port = free_port()
    created = rpc.containers.create_container(ADMIN, {"container_name": "pulled",
                                                      "image": pushed,
                                                      "ports": {"80/tcp": port}})
    assert created["status"] == "running" and has_image(clean_docker, pushed)
    (copy,) = clean_docker.containers.list(filters={"label": "berth.managed"})
    assert copy.name == "pulled" and copy.attrs["Config"]["Image"] == pushed

    # the host loses the image (the copy keeps its layers); a new copy pulls it again
    clean_docker.api.remove_image(pushed, force=True)
    assert not has_image(clean_docker, pushed)
    rpc.containers.replace_container({"container_name": "pulled"})
    assert has_image(clean_docker, pushed)
    poll(lambda: [c.name for c in clean_docker.containers.list(
        filters={"label": "berth.managed"})], until=lambda names: names == ["pulled"],
         what="one running copy")


def test_an_image_no_registry_has_is_a_400_naming_image_and_leaves_nothing(
        rpc, server, clean_docker, registry):
    missing = f"{registry}/berth-test/absent:1"
    with pytest.raises(BadRequest) as caught:
        rpc.containers.create_container(ADMIN, {"container_name": "nothing",
                                                "image": missing})
    (detail,) = caught.value.details
    assert detail["field"] == "image" and missing in detail["message"], detail
    assert rpc.containers.list_containers(ADMIN, {})["containers"] == []
    assert clean_docker.api.containers(all=True, filters={"label": "berth.managed"}) == []


def test_a_tag_the_registry_lacks_is_a_400_naming_image_and_leaves_nothing(
        rpc, server, clean_docker, pushed):
    """The repository exists in the registry, this tag does not: the pull fails, and neither
    a row nor an engine object (container, image) is left."""
    missing = pushed.rsplit(":", 1)[0] + ":no-such-tag"
    before = {n["Name"] for n in clean_docker.api.networks()}
    with pytest.raises(BadRequest) as caught:
        rpc.containers.create_container(ADMIN, {"container_name": "untagged",
                                                "image": missing,
                                                "ports": {"80/tcp": free_port()}})
    (detail,) = caught.value.details
    assert detail["field"] == "image" and missing in detail["message"], detail
    assert rpc.containers.list_containers(ADMIN, {})["containers"] == []
    assert clean_docker.api.containers(all=True, filters={"label": "berth.managed"}) == []
    assert clean_docker.api.containers(all=True, filters={"name": "^/untagged$"}) == []
    assert not has_image(clean_docker, missing)
    assert {n["Name"] for n in clean_docker.api.networks()} <= before | {"berth"}


def test_a_registry_the_operator_did_not_list_is_never_asked(rpc, server, clean_docker,
                                                            registry):
    port = registry.rsplit(":", 1)[1]
    unlisted = f"localhost:{port}/berth-test/pulled:1"  # the same registry, by another name
    with pytest.raises(BadRequest) as caught:
        rpc.containers.create_container(ADMIN, {"container_name": "unlisted",
                                                "image": unlisted})
    (detail,) = caught.value.details
    assert detail["field"] == "image" and "BERTH_CONTAINER_PULL_REGISTRIES" in \
        detail["message"]
    assert not has_image(clean_docker, unlisted)
    assert clean_docker.api.containers(all=True, filters={"label": "berth.managed"}) == []


@pytest.mark.parametrize("image, registry", [
    ("nginx", "docker.io"), ("library/nginx:1.27", "docker.io"),
    ("ghcr.io/acme/app:2", "ghcr.io"), ("127.0.0.1:5000/x/y:1", "127.0.0.1:5000"),
    ("localhost/app", "localhost"), ("app@sha256:" + "0" * 64, "docker.io")])
def test_the_registry_an_image_names(image, registry):
    from services.containers.engine_ops import registry_of
    assert registry_of(image) == registry
