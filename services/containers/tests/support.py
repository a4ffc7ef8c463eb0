"""Helpers shared by the containers service tests."""
import json

from sqlalchemy import create_engine, text

from berth.db import normalise_url
from services.containers.engine_ops import KEPT_CAPABILITIES, Confinement


def outbox(databases) -> list[tuple[str, dict]]:
    """Every event the containers service recorded, in order: (event type, payload)."""
    engine = create_engine(normalise_url(databases.url("containers")))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT event_type, payload FROM event_outbox ORDER BY id"))
        found = [(kind, json.loads(payload)) for kind, payload in rows]
    engine.dispose()
    return found


def copy_of(client, name: str) -> dict:
    (summary,) = client.api.containers(all=True, filters={"label": "berth.managed",
                                                          "name": f"^/{name}$"})
    return client.api.inspect_container(summary["Id"])


def assert_confined(client, name: str, confinement: Confinement | None = None) -> None:
    """The engine's own HostConfig of Berth's copy ``name`` carries every limit of
    ``confinement`` (default: the operator's, from settings). Also checked on the
    copies failover and load balance make (test_failover)."""
    c = confinement or Confinement.of()
    info = copy_of(client, name)
    host = info["HostConfig"]
    assert host["Memory"] == c.memory_bytes
    assert host["MemorySwap"] == 2 * c.memory_bytes  # swap equal to memory
    assert host["NanoCpus"] == c.nano_cpus
    assert host["PidsLimit"] == c.pids_limit
    assert host["LogConfig"] == {"Type": "json-file", "Config": {
        "max-size": f"{c.log_max_size_mib}m", "max-file": str(c.log_max_files)}}
    assert host["CapDrop"] == ["ALL"] and sorted(host["CapAdd"]) == sorted(KEPT_CAPABILITIES)
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Privileged"] is False
    assert not host.get("Binds") and not host.get("Mounts") and not info["Mounts"]
    assert not host.get("Devices") and not host.get("VolumesFrom")
    assert host["NetworkMode"] == c.network and host["PidMode"] == "" \
        and host["IpcMode"] == "private"
    assert list(info["NetworkSettings"]["Networks"]) == [c.network]
