"""The sweeps: ``containers.fleet_summary`` turned into server and container alerts, and a
month of user traffic into traffic alerts, raised and resolved in the caller's transaction.
No nameko here.

What the sweep relies on in the summary (missing fields are tolerated):

- a server: ``status`` (online/offline), ``down_since`` (when Berth first saw it down),
  ``last_seen_at``, ``added_at`` and ``maintenance`` (bool). Down-time counts from
  ``down_since``, else ``last_seen_at``, else ``added_at``, else "just now": never "forever".
- ``containers.not_as_desired``: each container whose status differs from its desired state,
  and each one in an open incident (``died_at`` set) even while it runs between two crashes;
  ``maintenance`` (bool) says its server is in maintenance.

A server or container in maintenance raises nothing, and its open alerts resolve. Alerts
about a server the summary no longer lists (deleted) and about containers on it resolve; a
container recovered or removed after the summary was read raises nothing from its stale row;
traffic alerts of a month before the current one resolve ("month ended").
"""
from __future__ import annotations

import datetime as dt

from services.alerts import alerting, notifications, ordering
from services.alerts.audit import parse_time
from services.alerts.alerting import Outcome, Subject

MAINTENANCE = "maintenance"


def seconds_down(now: dt.datetime, *moments: str | None) -> float:
    """Seconds since the first of ``moments`` that is known; 0 when none is."""
    for moment in moments:
        since = parse_time(moment)
        if since is not None:
            return max(0.0, (now - since).total_seconds())
    return 0.0


def merge(total: Outcome, outcome: Outcome) -> Outcome:
    total.raised += outcome.raised
    total.repeated += outcome.repeated
    total.resolved += outcome.resolved
    return total


def resolve_subject(session, subject: Subject, condition: str | None, now, resolution: str,
                    hook, pending, before: dt.datetime | None = None) -> Outcome:
    """Resolve the subject's open alerts (of ``condition``, or all) raised before ``before``."""
    alerts = [a for a in alerting.open_alerts(session, condition=condition, subject=subject)
              if before is None or a.raised_at < before]
    outcome = Outcome(resolved=alerting.resolve(session, alerts, now, resolution))
    notifications.outcome_changed(session, outcome, hook, now, pending)
    return outcome


def apply(session, subject, firing, examined, now, hook, pending, observed_at=None) -> Outcome:
    outcome = alerting.apply(session, subject, firing, examined, now, observed_at)
    notifications.outcome_changed(session, outcome, hook, now, pending)
    return outcome


SERVER_OUTAGE_ENDS = ("server_came_back", "server_removed", ordering.SERVER_MAINTENANCE)
CONTAINER_INCIDENT_ENDS = ("container_recovered", "container_removed")


def outage_over(session, server_id: int, occurred: dt.datetime) -> bool:
    """Whether a server outage that began at ``occurred`` was ended by a later event handled
    first (events travel on different queues): the server came back, was removed, or was put
    into maintenance."""
    return ordering.occurred_since(session, "server", server_id, SERVER_OUTAGE_ENDS, occurred)


def incident_over(session, container_id: int, occurred: dt.datetime) -> bool:
    """Whether a container death at ``occurred`` was followed by a recovery or removal that
    was handled first."""
    return ordering.occurred_since(session, "container", container_id,
                                   CONTAINER_INCIDENT_ENDS, occurred)


def incident_status(row: dict) -> str:
    """The status a container alert reports: a container running between two crashes of an
    open incident (``died_at`` set) is still down as far as alerts go."""
    status = row.get("status") or "missing"
    if status == row.get("desired_state") and row.get("died_at"):
        return "crash-looping"
    return status


def check_container(session, subject: Subject, row: dict, now: dt.datetime,
                    observed_at: dt.datetime, hook, pending) -> Outcome:
    """One container (``containers.container_info``), as the sweep judges it: in an open
    incident it is down even while it runs; on a server in maintenance its alerts resolve."""
    if row.get("maintenance"):
        return resolve_subject(session, subject, None, now, MAINTENANCE, hook, pending)
    firing, keys = alerting.evaluate_container(subject, incident_status(row),
                                               row["desired_state"],
                                               alerting.rules_of(session, "docker_container"),
                                               server_id=row.get("server_id"))
    return apply(session, subject, firing, keys, now, hook, pending, observed_at)


def sweep(session, fleet: dict, now: dt.datetime, observed_at: dt.datetime, hook,
          pending) -> Outcome:
    total = Outcome()
    server_rules = alerting.rules_of(session, "server_health")
    muted_servers = set()
    for server in fleet.get("servers", []):
        subject = Subject("server", server["server_id"], server.get("server_name"))
        if server.get("maintenance"):
            muted_servers.add(server["server_id"])
            merge(total, resolve_subject(session, subject, None, now, MAINTENANCE, hook,
                                         pending))
            continue
        down_for = seconds_down(now, server.get("down_since"), server.get("last_seen_at"),
                                server.get("added_at"))
        firing, keys = alerting.evaluate_server(subject, server.get("status") == "offline",
                                                server.get("ip_address") or "?", down_for,
                                                server_rules)
        merge(total, apply(session, subject, firing, keys, now, hook, pending, observed_at))
    container_rules = alerting.rules_of(session, "docker_container")
    listed = {row["container_id"]: row for row in
              fleet.get("containers", {}).get("not_as_desired", [])}
    # recovered or removed after the summary was read: its row is stale, raise nothing
    stale = ordering.applied_since(session, "container", CONTAINER_INCIDENT_ENDS,
                                   observed_at)
    muted = set()
    for container_id, row in listed.items():
        subject = Subject("container", container_id, row.get("container_name"),
                          row.get("user_id"))
        if row.get("maintenance") or row.get("server_id") in muted_servers:
            muted.add(container_id)
            merge(total, resolve_subject(session, subject, None, now, MAINTENANCE, hook,
                                         pending))
            continue
        if container_id in stale:
            continue
        firing, keys = alerting.evaluate_container(subject, incident_status(row),
                                                   row["desired_state"], container_rules,
                                                   server_id=row.get("server_id"))
        merge(total, apply(session, subject, firing, keys, now, hook, pending, observed_at))
    if "servers" in fleet:
        merge(total, servers_gone(session, {s["server_id"] for s in fleet["servers"]},
                                  set(listed), now, observed_at, hook, pending))
    cleared = [a for a in alerting.open_alerts(session, condition=alerting.CONTAINER_DOWN)
               if a.subject_id not in listed and a.last_seen_at <= observed_at]
    merge(total, _resolve(session, cleared, "the container is as desired", now, hook,
                          pending))
    return merge(total, months_ended(session, now, hook, pending))


def _resolve(session, alerts, resolution, now, hook, pending) -> Outcome:
    outcome = Outcome(resolved=alerting.resolve(session, alerts, now, resolution))
    notifications.outcome_changed(session, outcome, hook, now, pending)
    return outcome


def servers_gone(session, present: set[int], listed: set[int], now, observed_at, hook,
                 pending) -> Outcome:
    """Resolve the open alerts about servers the summary no longer has (deleted, whatever
    became of the ``server_removed`` event) and about containers on them. An alert seen after
    the summary was read (a server added meanwhile) is newer than the read and stays."""
    def server_of(alert):
        if alert.subject_type == "server":
            return alert.subject_id
        if alert.subject_type == "container" and alert.subject_id not in listed:
            return (alert.details or {}).get("server_id")
        return None
    gone = [a for a in alerting.open_alerts(session)
            if server_of(a) is not None and server_of(a) not in present
            and a.last_seen_at <= observed_at]
    return _resolve(session, gone, "the server was removed", now, hook, pending)


MONTHLY = (alerting.TRAFFIC_QUOTA, alerting.TRAFFIC_THRESHOLD, alerting.CONTAINER_TRAFFIC)


def months_ended(session, now: dt.datetime, hook, pending) -> Outcome:
    """Resolve the open traffic alerts of months before this one (a month's traffic is what
    they are about; the new month starts from zero)."""
    current = now.strftime("%Y-%m")
    ended = [a for condition in MONTHLY for a in alerting.open_alerts(session,
                                                                       condition=condition)
             if ((a.details or {}).get("month") or current) < current]
    return _resolve(session, ended, "month ended", now, hook, pending)


# --- a month of user traffic ------------------------------------------------------------------

def traffic_month(session, month: str, quota_rows: list[dict], threshold_rows: list[dict],
                  covered: bool, now, observed_at, hook, pending) -> Outcome:
    """``quota_rows``: users over their quota (used_bytes, limit_bytes); ``threshold_rows``:
    users at or over the lowest traffic rule's threshold (used_bytes), whatever their quota.
    ``covered``: the quota list is complete for ``month``, so open quota alerts of users not
    in it resolve (back under the quota)."""
    rules = alerting.rules_of(session, "traffic")
    users: dict[int, tuple[int, int | None]] = {
        int(r["user_id"]): (int(r["used_bytes"]), None) for r in threshold_rows}
    for r in quota_rows:
        users[int(r["user_id"])] = (int(r["used_bytes"]), int(r["limit_bytes"]))
    total = Outcome()
    for user_id, (used, limit) in sorted(users.items()):
        subject = Subject("user", user_id, f"user {user_id}", user_id)
        firing, keys = alerting.evaluate_user_traffic(subject, month, used, limit, rules)
        merge(total, apply(session, subject, firing, keys, now, hook, pending, observed_at))
    if covered:
        over_quota = {int(r["user_id"]) for r in quota_rows}
        stale = [a for a in alerting.open_alerts(session, condition=alerting.TRAFFIC_QUOTA)
                 if a.subject_id not in over_quota and (a.details or {}).get("month") == month
                 and a.last_seen_at <= observed_at]
        resolved = alerting.resolve(session, stale, now, "back under the quota")
        notifications.outcome_changed(session, Outcome(resolved=resolved), hook, now, pending)
        total.resolved += resolved
    return total
