"""Routes of the containers service: servers, containers and high availability."""
from __future__ import annotations

import functools


from berth import api_keys
from gateway.api import SIGNED_IN, ApiBlueprint, call, fields, not_found_if_too_long
from services.containers.schemas import ContainerAction, ContainerLogs, LogsQuery
from services.containers.schemas import (AddServer, ContainerCreated, ContainerList,
                                         ContainerQuery, ContainerStatusReply, CreateContainer,
                                         HaHealth, HaReply, Maintenance, ReplaceContainer,
                                         Replaced, ServerAdded, ServerChanged, ServerDeleted,
                                         ServerDrained, ServerHealth, ServerList,
                                         ServerStatusReply, UpdateContainer, UpdateServer)

bp = ApiBlueprint("containers", __name__, write_scope=api_keys.CONTAINERS)

NAME_LIMIT = 63


containers = functools.partial(call, "containers")



# --- servers -------------------------------------------------------------------------------

@bp.api("/add_server", ["POST"], summary="Add a Docker host (probed at once)", body=AddServer,
        reply=ServerAdded, errors=(409,), invalid="Invalid server data")
def add_server(caller, body):
    return containers("add_server", fields(body))


@bp.api("/servers", ["GET"], summary="Every server with its status and container count",
        reply=ServerList)
def list_servers(caller):
    return containers("servers")


@bp.api("/servers/<int:server_id>", ["PUT"], summary="Correct a server: name, address, "
        "docker_url, TLS material (checked as when adding; the engine is probed again)",
        body=UpdateServer, reply=ServerChanged, errors=(404, 409),
        invalid="Invalid server data")
def update_server(caller, server_id, body):
    return containers("update_server", caller.to_wire(), server_id, fields(body))


@bp.api("/servers/<int:server_id>/maintenance", ["POST"], summary="Maintenance on or off: no "
        "new containers on it, its alerts muted, its containers left running",
        body=Maintenance, reply=ServerChanged, errors=(404,))
def server_maintenance(caller, server_id, body):
    return containers("set_server_maintenance", caller.to_wire(), server_id, fields(body))


@bp.api("/servers/<int:server_id>/drain", ["POST"], summary="Maintenance on, and every "
        "container moved to other healthy servers", reply=ServerDrained, errors=(404, 409))
def drain_server(caller, server_id):
    return containers("drain_server", caller.to_wire(), server_id)


@bp.api("/servers/<int:server_id>", ["DELETE"], summary="Delete a server that holds no "
        "containers (409 otherwise: drain it first)", reply=ServerDeleted, errors=(404, 409))
def delete_server(caller, server_id):
    return containers("delete_server", caller.to_wire(), server_id)


@bp.api("/server/status/<int:server_id>", ["GET"], summary="A server's last known status",
        reply=ServerStatusReply, errors=(404,))
def server_status(caller, server_id):
    return containers("server_status", server_id)


# --- containers ----------------------------------------------------------------------------

@bp.api("/containers", ["GET"], summary="Containers (all for an admin, else the caller's own)",
        query=ContainerQuery, reply=ContainerList, access=SIGNED_IN)
def list_containers(caller, query):
    return containers("list_containers", caller.to_wire(), query.model_dump())


@bp.api("/containers", ["POST"], summary="Create and start a container (on the least-loaded "
        "healthy server unless an admin gives server_id; a customer: for themselves, from "
        "their plan's catalogue)", body=CreateContainer, reply=ContainerCreated,
        access=SIGNED_IN, owner="user_id", errors=(403, 404, 409, 503),
        invalid="Invalid container data")
def create_container(caller, body):
    return containers("create_container", caller.to_wire(), fields(body))


@bp.api("/containers/<container_name>/status", ["GET"], summary="A container's status, from "
        "its engine (owner or admin)", reply=ContainerStatusReply, access=SIGNED_IN,
        errors=(403, 404, 503))
def container_status(caller, container_name):
    return containers("container_status", caller.to_wire(),
                      not_found_if_too_long(container_name, NAME_LIMIT))


@bp.api("/containers/<container_name>/stop", ["POST"], summary="Stop a container (owner or "
        "admin)", access=SIGNED_IN, errors=(403, 404, 409, 503))
def stop_container(caller, container_name):
    return containers("stop_container", caller.to_wire(),
                      not_found_if_too_long(container_name, NAME_LIMIT))


@bp.api("/containers/<container_name>/start", ["POST"], summary="Start a stopped container "
        "(owner or admin; a customer's rental must be active)", reply=ContainerAction,
        access=SIGNED_IN, errors=(403, 404, 409, 503))
def start_container(caller, container_name):
    return containers("start_container", caller.to_wire(),
                      not_found_if_too_long(container_name, NAME_LIMIT))


@bp.api("/containers/<container_name>/restart", ["POST"], summary="Stop and start a "
        "container (owner or admin; a customer's rental must be active)",
        reply=ContainerAction, access=SIGNED_IN, errors=(403, 404, 409, 503))
def restart_container(caller, container_name):
    return containers("restart_container", caller.to_wire(),
                      not_found_if_too_long(container_name, NAME_LIMIT))


@bp.api("/containers/<container_name>/logs", ["GET"], summary="The last lines a container "
        "wrote (owner or admin)", query=LogsQuery, reply=ContainerLogs, access=SIGNED_IN,
        errors=(403, 404, 503), invalid="Invalid query")
def container_logs(caller, container_name, query):
    return containers("container_logs", caller.to_wire(),
                      not_found_if_too_long(container_name, NAME_LIMIT), query.model_dump())


@bp.api("/containers/<container_name>", ["PUT"], summary="Rename a container in place, or "
        "recreate it with a new image, command, environment or ports", body=UpdateContainer,
        errors=(404, 409, 503), invalid="Invalid container data")
def update_container(caller, container_name, body):
    return containers("update_container", not_found_if_too_long(container_name, NAME_LIMIT),
                      fields(body))


@bp.api("/containers/<container_name>", ["DELETE"], summary="Delete a container and its "
        "engine copy (owner or admin)", access=SIGNED_IN, errors=(403, 404))
def delete_container(caller, container_name):
    return containers("delete_container", caller.to_wire(),
                      not_found_if_too_long(container_name, NAME_LIMIT))


# --- high availability ---------------------------------------------------------------------

@bp.api("/ha/health", ["GET"], summary="Ping every server now: healthy, degraded or unhealthy",
        reply=HaHealth)
def ha_health(caller):
    return containers("ha_health")


@bp.api("/ha/health/<int:server_id>", ["GET"], summary="Ping one server now", reply=ServerHealth,
        errors=(404,))
def ha_server_health(caller, server_id):
    return containers("server_health", server_id)


@bp.api("/ha/failover", ["POST"], summary="Recreate the containers of offline servers on "
        "healthy ones (servers in maintenance are left alone: drain them)", reply=HaReply,
        errors=(409,))
def failover(caller):
    return containers("failover")


@bp.api("/ha/load_balance", ["POST"], summary="Even out container counts across healthy "
        "servers", reply=HaReply, errors=(409,))
def load_balance(caller):
    return containers("load_balance")


@bp.api("/ha/disaster_recovery", ["POST"], summary="Recreate every container that should run "
        "but no engine runs", reply=HaReply, errors=(409,))
def disaster_recovery(caller):
    return containers("disaster_recovery")


@bp.api("/ha/replace_container", ["POST"], summary="Recreate one container from its stored "
        "spec", body=ReplaceContainer, reply=Replaced, errors=(404, 409, 503))
def replace_container(caller, body):
    return containers("replace_container", fields(body))
