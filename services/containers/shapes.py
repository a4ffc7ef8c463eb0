"""What the fleet's replies and events are made of: a server's and a container's row, an
HA action's row, and the small conversions every part uses (no nameko). Who is asking is a
``berth.actor.Actor``."""
from __future__ import annotations

import shlex

from berth.db import isoformat
from services.containers.models import Container, Server


def server_row(server: Server, containers: int) -> dict:
    return {"server_id": server.id, "server_name": server.name,
            "ip_address": server.ip_address, "docker_url": server.docker_url,
            "status": server.status, "last_seen_at": isoformat(server.last_seen_at),
            "last_checked_at": isoformat(server.last_checked_at),
            "down_since": isoformat(server.down_since), "containers": containers,
            "maintenance": server.maintenance, "added_at": isoformat(server.created_at),
            "engine_version": server.engine_version, "last_error": server.last_error,
            "cpus": server.cpus, "memory_mib": server.memory_mib}


def container_row(c: Container) -> dict:
    return {"container_id": c.id, "container_name": c.name, "status": c.status,
            "desired_state": c.desired_state, "image": c.image, "user_id": c.user_id,
            "server_id": c.server_id, "ports": c.ports or {},
            "created_at": isoformat(c.created_at), "observed_at": isoformat(c.observed_at),
            "stopped_reason": c.stopped_reason, "exit_code": c.exit_code}


def event_fields(c: Container) -> dict:
    return {"container_id": c.id, "container_name": c.name, "user_id": c.user_id,
            "server_id": c.server_id}


def action(c: Container, kind: str, from_server: int | None, to_server: int | None,
           error: str | None = None) -> dict:
    row = {"container_id": c.id, "container_name": c.name, "action": kind,
           "from_server_id": from_server, "to_server_id": to_server}
    if error:
        row["error"] = error
    return row


def stored_command(command) -> list | None:
    """The stored form of a command: a list of arguments (a string is split like a shell)."""
    if command is None:
        return None
    if isinstance(command, str):
        return shlex.split(command)
    return list(command)


def failure_reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
