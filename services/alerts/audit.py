"""The audit trail: one row per domain event and per successful state-changing API call,
with actor, subject and time; queries for the system log and a user's log; retention (rows
older than BERTH_AUDIT_RETENTION_DAYS are deleted in batches). No nameko here.
"""
from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from berth.actor import Actor
from berth.db import delete_in_batches, insert_once, isoformat
from berth.events import Event
from berth.queries import get_or_404, page
from services.alerts.audit_wire import REDACTED, is_id, is_secret, redact
from services.alerts.models import AuditLog

ENVELOPE = ("event_id", "occurred_at", "version")

EVENT_MESSAGES = {
    "verification_email_requested": "Verification e-mail requested for user {user_id} "
                                    "({username})",
    "password_reset_requested": "Password reset link requested for user {user_id} "
                                "({username})",
    "two_factor_locked": "{failures} wrong two-factor codes for user {user_id} ({username}); "
                         "its code steps are refused for up to {minutes} minutes",
    "distributor_code_redeemed": "User {user_id} redeemed distributor serial {serial_id}",
    "rental_started": "Rental {rental_id} of user {user_id} started; it ends {end_date}",
    "rental_renewed": "Rental {rental_id} of user {user_id} renewed until {end_date} "
                      "(was {previous_end_date})",
    "rental_expired": "Rental {rental_id} of user {user_id} expired on {end_date}",
    "rental_expiry_reminder_due": "Rental {rental_id} of user {user_id} ends in {days_left} "
                                  "days ({end_date}): reminder due",
    "rental_expiry_notice_requested": "Expiry notice requested for user {user_id}: the rental "
                                      "expires {expiry_date}",
    "allotment_changed": "Allotment of distributor {distributor_id} for plan {plan_id}: "
                         "{change:+d} {unit}, {balance} left",
    "server_went_down": "Server {server_name} ({ip_address}) went down: {reason}",
    "server_came_back": "Server {server_name} ({ip_address}) came back",
    "server_updated": "Server {server_name} ({ip_address}) edited: {changed}; maintenance "
                      "{maintenance}",
    "server_removed": "Server {server_name} ({ip_address}) removed",
    "container_created": "Container {container_name} ({container_id}) created for user "
                         "{user_id} from {image}",
    "container_removed": "Container {container_name} ({container_id}) of user {user_id} "
                         "removed",
    "container_stopped": "Container {container_name} ({container_id}) of user {user_id} "
                         "stopped ({reason})",
    "container_started": "Container {container_name} ({container_id}) of user {user_id} "
                         "started again ({reason})",
    "container_died": "Container {container_name} ({container_id}) of user {user_id} is "
                      "{status}, should be running",
    "container_recovered": "Container {container_name} ({container_id}) of user {user_id} "
                           "runs again",
    "container_moved": "Container {container_name} ({container_id}) moved from server "
                       "{from_server_id} to server {server_id} ({reason})",
    "traffic_quota_exceeded": "User {user_id} passed their traffic quota for {month}: "
                              "{used_bytes} of {limit_bytes} bytes",
    "traffic_quota_cleared": "User {user_id} is within their traffic quota for {month} again "
                             "({cause})",
    "rental_suspended": "Rental {rental_id} of user {user_id} suspended: {reason}",
    "rental_resumed": "Rental {rental_id} of user {user_id} resumed ({cause})",
    "rental_plan_changed": "Rental {rental_id} of user {user_id} moved from plan "
                           "{from_plan_id} to plan {plan_id}",
}

# the subject of an event: the first of these id fields it carries
SUBJECT_FIELDS = (("container_id", "container"), ("server_id", "server"),
                  ("rental_id", "rental"), ("serial_id", "serial"), ("user_id", "user"),
                  ("distributor_id", "user"))
# the user an event concerns (whose log shows it): the first of these it carries
USER_FIELDS = ("user_id", "distributor_id")


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def event_details(event: Event) -> dict:
    """The payload without its envelope, secret-named fields redacted (a verification link
    never reaches the audit log)."""
    payload = event.model_dump(exclude=set(ENVELOPE))
    return redact(payload)


def record_event(session: Session, event: Event, now: dt.datetime) -> bool:
    """One row per event id (a redelivery adds nothing); True if this call added it."""
    fields = event.model_dump()
    subject_type = subject_id = None
    for name, kind in SUBJECT_FIELDS:
        if fields.get(name) is not None:
            subject_type, subject_id = kind, str(fields[name])
            break
    template = EVENT_MESSAGES.get(event.TYPE, f"{event.TYPE} event")
    safe = {k: (REDACTED if is_secret(k, v) else v) for k, v in fields.items()}
    try:
        message = template.format_map(safe)
    except (KeyError, IndexError, ValueError):
        message = f"{event.TYPE} event"
    actor_id = fields.get("actor_id")
    return insert_once(
        session, AuditLog, source_key=f"event:{event.event_id}", source="event",
        action=event.TYPE, occurred_at=parse_time(event.occurred_at) or now, recorded_at=now,
        actor_type="user" if actor_id else "system", actor_user_id=actor_id,
        actor_username=None, actor_role=None, subject_type=subject_type,
        subject_id=subject_id, status_code=None,
        user_id=next((fields[f] for f in USER_FIELDS if fields.get(f) is not None), None),
        message=message[:1000], details={"event_id": event.event_id, "source": event.SOURCE,
                                         "version": event.version,
                                         "payload": event_details(event)})


# --- API calls ----------------------------------------------------------------------------

_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")


def _route_noun(route: str) -> str:
    """``/api/serial/update/<int:id>`` -> ``serial``: what an ``id`` parameter names."""
    parts = [p for p in route.split("/") if p and p != "api" and not p.startswith("<")]
    noun = parts[0] if parts else "resource"
    return {"users": "user", "alerts": "alert", "logs": "log", "containers": "container",
            "servers": "server", "serials": "serial"}.get(noun, noun)


def _ids(mapping: dict) -> list[tuple[str, str]]:
    out = []
    for key, value in (mapping or {}).items():
        if key.endswith("_id") and is_id(key, value):
            out.append((key[:-3], str(value)))
    return out


def api_subject(route: str, path_params: dict, body: dict, reply_ids: dict,
                actor: Actor | None = None) -> tuple[str | None, str | None]:
    """What a call concerns, as (type, id) with one type per kind of object, the same as
    event rows (``SUBJECT_FIELDS``): a path parameter (a ``<container_name>`` is the
    ``container`` whose id the reply names, with no id if the reply names none; a parameter
    of another kind than the route's noun yields to the noun's id in the reply), else an id
    the reply names (what it created), else an id in the body (a user last: it is often
    just the owner); a sign-in concerns the user who signed in, by id. A subject id is
    always an id, never a name."""
    params = path_params or {}
    for name in _PARAM.findall(route):
        if name not in params or is_secret(name, params[name]):
            continue
        value = params[name]
        if name == "id":
            return _route_noun(route), str(value)
        if name.endswith("_name"):  # a name is never a subject id: the reply's id, or none
            kind = name[:-5]
            known = (reply_ids or {}).get(f"{kind}_id")
            return kind, (str(known) if is_id(f"{kind}_id", known) else None)
        kind = name[:-3] if name.endswith("_id") else name
        noun = _route_noun(route)
        named = (reply_ids or {}).get(f"{noun}_id")
        if kind != noun and is_id(f"{noun}_id", named):
            # ``DELETE /api/rental/delete/<serial_id>`` is about the rental the reply names
            return noun, str(named)
        return kind, str(value)
    for source in (reply_ids, body):
        ids = _ids(source)
        others = [pair for pair in ids if pair[0] != "user"]
        if others:
            return others[0]
        if ids:
            return ids[0]
    username = body.get("username") if isinstance(body, dict) else None
    if actor is not None and isinstance(username, str) \
            and username.casefold() == actor.username.casefold():
        return "user", str(actor.user_id)  # a sign-in: the actor is who signed in
    return None, None


def concerned_user(path_params: dict, body: dict, reply_ids: dict,
                   actor: Actor | None) -> int | None:
    for source in (path_params, body, reply_ids):
        value = (source or {}).get("user_id")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return actor.user_id if actor is not None else None


def record_actor(record: dict) -> Actor | None:
    """Who made the call a gateway ``api_call`` record describes (``None``: nobody signed
    in). An actor without a user id, which the gateway never sends, raises ``KeyError``,
    ``TypeError`` or ``ValueError`` (``record_api_calls`` drops such a record first)."""
    wire = record.get("actor")
    return Actor.of(wire) if wire else None


def record_api_call(session: Session, record: dict, now: dt.datetime) -> bool:
    """One row per request id from a gateway ``api_call`` record; True if this call added it."""
    actor = record_actor(record)
    route = str(record.get("route") or record.get("path") or "?")[:80]
    method = str(record.get("method") or "?")[:8]
    params = redact(record.get("path_params") or {})
    body = redact(record.get("body") or {})
    reply_ids = record.get("reply_ids") or {}
    subject_type, subject_id = api_subject(route, params, body if isinstance(body, dict) else {},
                                           reply_ids, actor)
    status = record.get("status")
    api_key_id = record.get("api_key_id")
    api_key_id = api_key_id if is_id("api_key_id", api_key_id) else None
    if actor is not None:
        who = f"{actor.username or 'user ' + str(actor.user_id)} ({actor.role})"
        if api_key_id is not None:
            who += f" with API key {api_key_id}"
    else:
        who = "anonymous"
    about = f" [{subject_type} {subject_id}]" if subject_id else \
        f" [{subject_type}]" if subject_type else ""
    message = f"{who}: {method} {route}{about} -> {status}"
    # the gateway's random record id; records queued by an older gateway have only request_id
    unique = record.get("record_id") or record.get("request_id")
    return insert_once(
        session, AuditLog, source_key=f"api:{str(unique)[:40]}",
        source="api", action=f"{method} {route}"[:96],
        occurred_at=parse_time(record.get("occurred_at")) or now, recorded_at=now,
        actor_type="user" if actor is not None else "anonymous",
        actor_user_id=actor.user_id if actor is not None else None,
        actor_username=(actor.username or None) if actor is not None else None,
        actor_role=(actor.role or None) if actor is not None else None,
        subject_type=subject_type, subject_id=(subject_id or None) and subject_id[:64],
        user_id=concerned_user(params, body if isinstance(body, dict) else {}, reply_ids, actor),
        status_code=status if isinstance(status, int) else None, message=message[:1000],
        details={"request_id": record.get("request_id"), "path": record.get("path"),
                 "path_params": params, "body": body, "reply_ids": redact(reply_ids),
                 "remote_addr": record.get("remote_addr"), "api_key_id": api_key_id})


# --- reading and editing ----------------------------------------------------------------------

def to_dict(row: AuditLog) -> dict:
    return {"log_id": row.id, "message": row.message, "timestamp": isoformat(row.occurred_at),
            "source": row.source, "action": row.action,
            "actor": {"type": row.actor_type, "user_id": row.actor_user_id,
                      "username": row.actor_username, "role": row.actor_role},
            "subject": {"type": row.subject_type, "id": row.subject_id},
            "user_id": row.user_id, "status_code": row.status_code,
            "recorded_at": isoformat(row.recorded_at),
            "edited_at": isoformat(row.edited_at), "original_message": row.original_message,
            "details": row.details or {}}


# What a row's details may show to a user who is not its actor (their own log, holding
# what an admin or a distributor did about them): what was done, never who did it from
# where. Kept to a list, so a detail added later (the caller's address, a user agent) stays
# between its actor and the admins until someone decides otherwise.
DETAILS_FOR_OTHERS = ("request_id", "path", "path_params", "body", "reply_ids",
                      "event_id", "source", "version", "payload")


def to_dict_for(row: AuditLog, viewer: Actor) -> dict:
    """``to_dict`` as ``viewer`` may see it: everything for admins and for the row's own
    actor (or a row with no signed-in actor); for anyone else, only the details in
    ``DETAILS_FOR_OTHERS`` (an admin's address never reaches the user they acted on)."""
    data = to_dict(row)
    if viewer.is_admin or row.actor_user_id is None or row.actor_user_id == viewer.user_id:
        return data
    data["details"] = {key: value for key, value in data["details"].items()
                       if key in DETAILS_FOR_OTHERS}
    return data


def query(session: Session, limit: int, offset: int, *, user_id: int | None = None,
          actor_id: int | None = None, action: str | None = None, source: str | None = None,
          subject_type: str | None = None, subject_id: str | None = None,
          since: dt.datetime | None = None, until: dt.datetime | None = None,
          involving_user: int | None = None) -> tuple[list[AuditLog], int]:
    """Newest first. ``involving_user``: rows about that user or done by them."""
    conditions = []
    if user_id is not None:
        conditions.append(AuditLog.user_id == user_id)
    if actor_id is not None:
        conditions.append(AuditLog.actor_user_id == actor_id)
    if involving_user is not None:
        conditions.append(or_(AuditLog.user_id == involving_user,
                              AuditLog.actor_user_id == involving_user))
    if action is not None:
        conditions.append(or_(AuditLog.action == action,
                              AuditLog.action.like(f"% {action}")) if "/" in action
                          else AuditLog.action == action)
    if source is not None:
        conditions.append(AuditLog.source == source)
    if subject_type is not None:
        conditions.append(AuditLog.subject_type == subject_type)
    if subject_id is not None:
        conditions.append(AuditLog.subject_id == subject_id)
    if since is not None:
        conditions.append(AuditLog.occurred_at >= since)
    if until is not None:
        conditions.append(AuditLog.occurred_at < until)
    return page(session, select(AuditLog).where(*conditions),
                (AuditLog.occurred_at.desc(), AuditLog.id.desc()), limit, offset)


def get(session: Session, log_id: int) -> AuditLog:
    return get_or_404(session, AuditLog, log_id, f"Log {log_id} not found")


def edit(session: Session, log_id: int, message: str, editor_id: int | None,
         now: dt.datetime) -> AuditLog:
    """Change a row's message; the first original is kept beside it."""
    row = get(session, log_id)
    if row.original_message is None:
        row.original_message = row.message
    row.message = message
    row.edited_at, row.edited_by = now, editor_id
    return row


# --- retention --------------------------------------------------------------------------------

RETENTION_BATCH = 5000


def prune(session_factory, now: dt.datetime, retention_days: float,
          batch: int = RETENTION_BATCH) -> int:
    """Delete rows that occurred more than ``retention_days`` before ``now`` (0: keep every
    row), ``batch`` rows per statement and transaction (berth.db.delete_in_batches). Returns
    how many rows went."""
    if retention_days <= 0:
        return 0
    cutoff = now - dt.timedelta(days=retention_days)
    return delete_in_batches(session_factory, AuditLog, AuditLog.occurred_at < cutoff, batch)
