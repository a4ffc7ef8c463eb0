"""Alert rules and alerts: what fires, one open alert per condition, resolution. No nameko.

A *condition* is something wrong with one subject (a server, a container, a user): a server
offline, a container not in its desired state, a user over their quota or over a rule's
threshold, a container over a rule's threshold. Evaluating rules against what is known about a
subject gives the conditions that hold (``Firing``) and the dedupe keys that were examined.
``apply`` then raises each firing condition (one open alert per dedupe key: the unique
``open_key`` makes a repeat a no-op that only counts it) and resolves the examined keys that no
longer fire.

Rule types and their threshold:

| alert_type        | subject   | fires when                                   | threshold         |
|-------------------|-----------|----------------------------------------------|-------------------|
| server_health     | server    | offline for at least threshold seconds        | seconds (0: now)  |
| docker_container  | container | status differs from desired_state             | unused (give 0)   |
| traffic           | user      | this month's in+out >= threshold              | bytes             |
| docker_traffic    | container | this month's in+out >= threshold              | bytes             |

With no rule of a type, server_health and docker_container fire at once (a dead server or
container is always an alert). A user over their own quota is always an alert (``traffic_quota``),
whatever the traffic rules say; rules add their own thresholds. docker_traffic needs a rule.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from berth.db import insert_once, isoformat
from berth.queries import get_or_404, page
from services.alerts.models import Alert, AlertId, AlertRule

ALERT_TYPES = ("traffic", "server_health", "docker_traffic", "docker_container")
SERVER_DOWN, CONTAINER_DOWN = "server_down", "container_down"
TRAFFIC_QUOTA, TRAFFIC_THRESHOLD, CONTAINER_TRAFFIC = (
    "traffic_quota", "traffic_threshold", "container_traffic")


@dataclass(frozen=True)
class Subject:
    type: str  # server, container, user
    id: int
    name: str | None = None
    user_id: int | None = None  # the user the subject belongs to (a container's owner)


@dataclass(frozen=True)
class Firing:
    alert_type: str
    condition: str
    key: str
    message: str
    rule_id: int | None = None
    details: dict = field(default_factory=dict)


def dedupe_key(condition: str, rule_id: int | None, subject: Subject,
               period: str | None = None) -> str:
    key = f"{condition}:{rule_id or 0}:{subject.type}:{subject.id}"
    return f"{key}:{period}" if period else key


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


# --- evaluation (pure) ------------------------------------------------------------------------

def evaluate_server(subject: Subject, offline: bool, ip_address: str, down_for: float,
                    rules: list[AlertRule], reason: str | None = None
                    ) -> tuple[list[Firing], list[str]]:
    """Firing conditions and examined keys for one server; ``down_for`` in seconds."""
    label = f"{subject.name or f'server {subject.id}'} ({ip_address})"
    what = f"is down: {reason}" if reason else "is down"
    if not rules:
        key = dedupe_key(SERVER_DOWN, None, subject)
        firing = [Firing("server_health", SERVER_DOWN, key, f"Server {label} {what}",
                         details={"ip_address": ip_address, "reason": reason})] if offline else []
        return firing, [key]
    firing, keys = [], []
    for rule in rules:
        key = dedupe_key(SERVER_DOWN, rule.id, subject)
        keys.append(key)
        if offline and down_for >= rule.threshold:
            firing.append(Firing("server_health", SERVER_DOWN, key,
                                 f"{rule.message}: server {label} {what}", rule.id,
                                 {"ip_address": ip_address, "reason": reason,
                                  "threshold_seconds": rule.threshold}))
    return firing, keys


def evaluate_container(subject: Subject, status: str, desired_state: str,
                       rules: list[AlertRule], server_id: int | None = None
                       ) -> tuple[list[Firing], list[str]]:
    """``server_id`` (kept in the details) lets a server's maintenance resolve the alert."""
    wrong = status != desired_state
    label = f"{subject.name or 'container'} (container {subject.id})"
    text = f"{label} is {status}, should be {desired_state}"
    details = {"status": status, "desired_state": desired_state, "server_id": server_id}
    if not rules:
        key = dedupe_key(CONTAINER_DOWN, None, subject)
        return ([Firing("docker_container", CONTAINER_DOWN, key,
                        f"Container {text}", details=details)] if wrong else []), [key]
    firing, keys = [], []
    for rule in rules:
        key = dedupe_key(CONTAINER_DOWN, rule.id, subject)
        keys.append(key)
        if wrong:
            firing.append(Firing("docker_container", CONTAINER_DOWN, key,
                                 f"{rule.message}: container {text}", rule.id, details))
    return firing, keys


def evaluate_user_traffic(subject: Subject, month: str, used: int, limit: int | None,
                          rules: list[AlertRule]) -> tuple[list[Firing], list[str]]:
    """The quota condition (always watched when the limit is known) and each traffic rule."""
    firing, keys = [], []
    details = {"month": month, "used_bytes": used, "limit_bytes": limit}
    if limit is not None:
        key = dedupe_key(TRAFFIC_QUOTA, None, subject, month)
        keys.append(key)
        if used > limit:
            firing.append(Firing("traffic", TRAFFIC_QUOTA, key,
                                 f"User {subject.id} used {human_bytes(used)} of their "
                                 f"{human_bytes(limit)} quota in {month}", details=details))
    for rule in rules:
        key = dedupe_key(TRAFFIC_THRESHOLD, rule.id, subject, month)
        keys.append(key)
        if used >= rule.threshold:
            firing.append(Firing("traffic", TRAFFIC_THRESHOLD, key,
                                 f"{rule.message}: user {subject.id} used {human_bytes(used)} "
                                 f"in {month} (threshold {human_bytes(rule.threshold)})",
                                 rule.id, {**details, "threshold_bytes": rule.threshold}))
    return firing, keys


def evaluate_container_traffic(subject: Subject, month: str, total: int,
                               rules: list[AlertRule]) -> tuple[list[Firing], list[str]]:
    firing, keys = [], []
    label = subject.name or f"container {subject.id}"
    for rule in rules:
        key = dedupe_key(CONTAINER_TRAFFIC, rule.id, subject, month)
        keys.append(key)
        if total >= rule.threshold:
            firing.append(Firing("docker_traffic", CONTAINER_TRAFFIC, key,
                                 f"{rule.message}: {label} (container {subject.id}) used "
                                 f"{human_bytes(total)} in {month} (threshold "
                                 f"{human_bytes(rule.threshold)})", rule.id,
                                 {"month": month, "total_bytes": total,
                                  "threshold_bytes": rule.threshold}))
    return firing, keys


# --- ids, rules -------------------------------------------------------------------------------

def next_id(session: Session, kind: str) -> int:
    row = AlertId(kind=kind)
    session.add(row)
    session.flush()
    return row.id


def add_rule(session: Session, alert_type: str, threshold: int, message: str,
             actor_id: int | None, now: dt.datetime) -> AlertRule:
    rule = AlertRule(id=next_id(session, "rule"), alert_type=alert_type, threshold=threshold,
                     message=message, created_by=actor_id, created_at=now)
    session.add(rule)
    session.flush()
    return rule


def rules_of(session: Session, alert_type: str) -> list[AlertRule]:
    return list(session.scalars(select(AlertRule).where(AlertRule.alert_type == alert_type)
                                .order_by(AlertRule.id)))


def rule_to_dict(rule: AlertRule) -> dict:
    return {"alert_id": rule.id, "rule_id": rule.id, "alert_type": rule.alert_type,
            "threshold": rule.threshold, "message": rule.message,
            "created_by": rule.created_by, "timestamp": isoformat(rule.created_at)}


# --- raising and resolving --------------------------------------------------------------------

@dataclass
class Outcome:
    raised: list[Alert] = field(default_factory=list)     # new open alerts
    repeated: list[Alert] = field(default_factory=list)   # already open: counted, not raised
    resolved: list[Alert] = field(default_factory=list)


def raise_alert(session: Session, firing: Firing, subject: Subject,
                now: dt.datetime) -> tuple[Alert, bool]:
    """The open alert for ``firing.key``: created (True) or the existing one, counted (False).

    Of two concurrent raisers exactly one inserts (unique ``open_key``); the other counts."""
    existing = session.scalar(select(Alert).where(Alert.open_key == firing.key))
    if existing is None:
        alert_id = next_id(session, "alert")
        if insert_once(session, Alert, id=alert_id, alert_type=firing.alert_type,
                       condition=firing.condition, dedupe_key=firing.key, open_key=firing.key,
                       rule_id=firing.rule_id, subject_type=subject.type,
                       subject_id=subject.id, subject_name=subject.name,
                       user_id=subject.user_id, message=firing.message[:1000],
                       details=firing.details, status="open", occurrences=1, raised_at=now,
                       last_seen_at=now):
            return session.get(Alert, alert_id), True
        existing = session.scalar(select(Alert).where(Alert.open_key == firing.key))
    session.execute(update(Alert).where(Alert.id == existing.id)
                    .values(occurrences=Alert.occurrences + 1, last_seen_at=now))
    session.refresh(existing)
    return existing, False


def resolve(session: Session, alerts: list[Alert], now: dt.datetime,
            resolution: str) -> list[Alert]:
    """Close these open alerts (conditionally: one closes each once)."""
    done = []
    for alert in alerts:
        result = session.execute(update(Alert).where(Alert.id == alert.id,
                                                     Alert.status == "open")
                                 .values(status="resolved", open_key=None, resolved_at=now,
                                         resolution=resolution[:255]))
        if result.rowcount == 1:
            session.refresh(alert)
            done.append(alert)
    return done


def open_alerts(session: Session, *, keys: list[str] | None = None,
                condition: str | None = None, subject: Subject | None = None,
                rule_id: int | None = None) -> list[Alert]:
    query = select(Alert).where(Alert.status == "open")
    if keys is not None:
        if not keys:
            return []
        query = query.where(Alert.open_key.in_(keys))
    if condition is not None:
        query = query.where(Alert.condition == condition)
    if subject is not None:
        query = query.where(Alert.subject_type == subject.type, Alert.subject_id == subject.id)
    if rule_id is not None:
        query = query.where(Alert.rule_id == rule_id)
    return list(session.scalars(query.order_by(Alert.id)))


def apply(session: Session, subject: Subject, firing: list[Firing], examined: list[str],
          now: dt.datetime, observed_at: dt.datetime | None = None,
          resolution: str = "the condition cleared") -> Outcome:
    """Raise what fires; resolve what was examined and no longer fires.

    ``observed_at`` is when the facts were read: an alert raised or seen after it (an event
    that arrived meanwhile) is newer than the observation and is not resolved by it."""
    outcome = Outcome()
    for item in firing:
        alert, created = raise_alert(session, item, subject, now)
        (outcome.raised if created else outcome.repeated).append(alert)
    firing_keys = {item.key for item in firing}
    stale = [alert for alert in open_alerts(session, keys=[k for k in examined
                                                           if k not in firing_keys])
             if observed_at is None or alert.last_seen_at <= observed_at]
    outcome.resolved = resolve(session, stale, now, resolution)
    return outcome


def delete(session: Session, alert_id: int, now: dt.datetime) -> dict:
    """Delete a rule (its open alerts resolve: nothing watches them any more) or an alert."""
    rule = session.get(AlertRule, alert_id)
    if rule is not None:
        resolved = resolve(session, open_alerts(session, rule_id=rule.id), now,
                           f"rule {rule.id} deleted")
        session.delete(rule)
        return {"deleted": "rule", "resolved": resolved}
    session.delete(get_or_404(session, Alert, alert_id))
    return {"deleted": "alert", "resolved": []}


def to_dict(alert: Alert) -> dict:
    return {"alert_id": alert.id, "message": alert.message,
            "timestamp": isoformat(alert.raised_at), "alert_type": alert.alert_type,
            "condition": alert.condition, "status": alert.status, "rule_id": alert.rule_id,
            "subject": {"type": alert.subject_type, "id": alert.subject_id,
                        "name": alert.subject_name},
            "user_id": alert.user_id, "occurrences": alert.occurrences,
            "last_seen_at": isoformat(alert.last_seen_at),
            "resolved_at": isoformat(alert.resolved_at), "resolution": alert.resolution,
            "details": alert.details or {}}


def listing(session: Session, limit: int, offset: int, status: str | None = None) -> dict:
    query = select(Alert)
    if status is not None:
        query = query.where(Alert.status == status)
    rows, total = page(session, query, (Alert.raised_at.desc(), Alert.id.desc()), limit, offset)
    return {"alerts": [to_dict(a) for a in rows], "total": total,
            "limit": limit, "offset": offset}
