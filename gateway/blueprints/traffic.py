"""Routes of the traffic service: realtime rates, history, stats and quotas (bytes; rates in
bytes per second over the latest sampling window)."""
from __future__ import annotations

import functools


from berth import api_keys
from gateway.api import SIGNED_IN, ApiBlueprint, call
from services.traffic.schemas import (ContainerRealtime, HistoryQuery, Overlimit, RealtimeAll,
                                      StatsBody, TrafficHistory, TrafficStats)

bp = ApiBlueprint("traffic", __name__)


traffic = functools.partial(call, "traffic")


@bp.api("/traffic/realtime", ["GET"], summary="Every container's bytes/s in and out over the "
        "latest sampling window, and their sums", reply=RealtimeAll)
def realtime_traffic(caller):
    return traffic("realtime")


@bp.api("/traffic/realtime/<int:container_id>", ["GET"], summary="One container's bytes/s in "
        "and out over the latest sampling window (owner or admin)", reply=ContainerRealtime,
        access=SIGNED_IN, errors=(403, 404, 503))
def container_realtime_traffic(caller, container_id):
    return traffic("container_realtime", caller.to_wire(), container_id)


@bp.api("/traffic/history/<int:user_id>", ["GET"], summary="A user's bytes in and out per "
        "sweep, hour or day (self or admin)", query=HistoryQuery, reply=TrafficHistory,
        access=SIGNED_IN, owner="user_id", errors=(404,), invalid="Invalid query")
def traffic_history(caller, user_id, query):
    return traffic("history", caller.to_wire(), user_id, query.model_dump(exclude_none=True))


@bp.api("/traffic/stats", ["POST"], summary="Total bytes in and out over whole days "
        "(inclusive, UTC), with the heaviest users", body=StatsBody, reply=TrafficStats,
        scope=api_keys.READ)  # a query in a body: a read
def traffic_stats(caller, body):
    return traffic("stats", body.model_dump(mode="json"))


@bp.api("/traffic/overlimit", ["GET"], summary="Users whose in+out this calendar month (UTC) "
        "exceeds their quota", reply=Overlimit, errors=(503,))
def overlimit_traffic(caller):
    return traffic("overlimit")


@bp.api("/ha/container_traffic/<int:container_id>", ["GET"], summary="One container's bytes/s "
        "in and out over the latest sampling window", reply=ContainerRealtime,
        errors=(404, 503))
def ha_container_traffic(caller, container_id):
    return traffic("container_realtime", caller.to_wire(), container_id)
