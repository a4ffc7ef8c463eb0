"""The platform's monitoring status from what the probes found. No nameko, no I/O here.

healthy   every service answers, every server is online (or in maintenance), every container
          is in its desired state (or on a server in maintenance);
degraded  something is wrong but the platform still serves: a service other than users does not
          answer, a server is offline, a container is not as desired, the fleet is unknown;
unhealthy users does not answer (nobody can sign in), every server is offline, or most
          services do not answer.
"""
from __future__ import annotations

import datetime as dt

from berth.db import isoformat

CRITICAL_SERVICES = ("users",)


def format_uptime(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    if seconds >= 60:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def assess(services: dict[str, str], fleet: dict | None, fleet_error: str | None,
           now: dt.datetime, started_at: dt.datetime, open_alerts: int = 0) -> dict:
    """``services``: name -> "ok" or "down: <why>"; ``fleet``: containers.fleet_summary()."""
    stamp = isoformat(now)
    issues = []
    down = [name for name, state in services.items() if state != "ok"]
    for name in down:
        issues.append({"type": "service_down", "timestamp": stamp, "service": name,
                       "message": f"The {name} service is not answering ({services[name]})"})
    servers = (fleet or {}).get("servers") or []
    containers = (fleet or {}).get("containers") or {}
    if fleet is None:
        issues.append({"type": "fleet_unknown", "timestamp": stamp,
                       "message": f"Server and container states are unknown: {fleet_error}"})
    # a server in maintenance (or a container on one) is planned work, not a problem
    maintenance = [s for s in servers if s.get("maintenance") or s.get("status") == "maintenance"]
    muted = {s.get("server_id") for s in maintenance}
    watched = [s for s in servers if s.get("server_id") not in muted]
    offline = [s for s in watched if s.get("status") == "offline"]
    for server in offline:
        name = server.get("server_name") or f"server {server.get('server_id')}"
        issues.append({"type": "server_down",
                       "timestamp": server.get("down_since") or server.get("last_seen_at")
                       or stamp, "server_id": server.get("server_id"),
                       "message": f"Server {server.get('server_id')} ({name}) is down"})
    wrong = [row for row in containers.get("not_as_desired") or []
             if not row.get("maintenance") and row.get("server_id") not in muted]
    for row in wrong:
        issues.append({"type": "container_not_as_desired", "timestamp": stamp,
                       "container_id": row.get("container_id"),
                       "message": f"Container {row.get('container_id')} "
                                  f"({row.get('container_name')}) is {row.get('status')}, "
                                  f"should be {row.get('desired_state')}"})

    unhealthy = (any(name in CRITICAL_SERVICES for name in down)
                 or len(down) * 2 > len(services)
                 or (watched and len(offline) == len(watched)))
    status = "unhealthy" if unhealthy else ("degraded" if issues else "healthy")
    uptime = (now - started_at).total_seconds()
    by_status: dict[str, int] = {}
    for server in servers:
        state = "maintenance" if server.get("server_id") in muted else server.get("status",
                                                                                 "unknown")
        by_status[state] = by_status.get(state, 0) + 1
    return {
        "status": status,
        "uptime": format_uptime(uptime),
        "issues": issues,
        "uptime_seconds": int(uptime),
        "started_at": isoformat(started_at),
        "checked_at": stamp,
        "services": services,
        "servers": {"total": len(servers), "by_status": by_status,
                    "maintenance": sorted(s.get("server_id") for s in maintenance)}
        if fleet is not None else None,
        "containers": {"total": containers.get("total", 0),
                       "by_status": containers.get("by_status", {}),
                       "not_as_desired": len(wrong)} if fleet is not None else None,
        "open_alerts": open_alerts,
    }
