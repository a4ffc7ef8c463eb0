"""The alerts service's audit-log entrypoints, mixed into ``AlertsService`` (service.py
holds the rest): API-call records from the gateway's ``alerts.audit`` queue
(``services.alerts.audit_wire``), the log queries and edits, and retention. Entrypoints
only; the domain is ``services.alerts.audit``.
"""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from berth.actor import Actor
from berth.db import utcnow
from berth.errors import BadRequest
from berth.lease import try_acquire
from berth.service import consume, every, rpc
from berth.settings import get_settings
from berth.validation import parse
from services.alerts import audit, digest
from services.alerts.audit_wire import AUDIT_QUEUE, WIRE_VERSION
from services.alerts.models import Lease
from services.alerts.schemas import SystemLogQuery, UpdateLog, UserLogQuery

log = logging.getLogger(__name__)


def _readable_actor(record: dict) -> bool:
    """Whether the record's actor is absent or one ``Actor.of`` reads (the gateway sends no
    other; one that is not is dropped alone, not with the batch it came in)."""
    try:
        audit.record_actor(record)
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    return True


class AuditLogEntrypoints:
    # --- API-call audit records from the gateway -----------------------------------------

    @consume(AUDIT_QUEUE)
    def record_api_calls(self, message):
        """A batch ``{"v": 1, "records": [...]}`` (or one record) from the gateway: one
        transaction, one row per record id (the gateway's, one per request)."""
        version = message.get("v") if isinstance(message, dict) else None
        records = message.get("records") if version is not None and "records" in message \
            else [message]
        if not isinstance(records, list):
            records = [records]
        good = [r for r in records if isinstance(r, dict) and r.get("request_id")
                and version == WIRE_VERSION and _readable_actor(r)]
        if len(good) != len(records):
            log.error("dropping %d malformed audit record(s): %.200r",
                      len(records) - len(good), message)
        if not good:
            return
        try:
            with self.db() as session:
                now = utcnow()
                for record in good:
                    audit.record_api_call(session, record, now)
                session.commit()
        except (OperationalError, InterfaceError, DisconnectionError):
            raise  # the database is away: requeued, retried
        except Exception:  # noqa: BLE001 - a record no retry can store: do not spin on it
            log.exception("dropping audit records that cannot be stored: %.200r", message)

    # --- the log -------------------------------------------------------------------------------

    @rpc
    def system_logs(self, query: dict) -> dict:
        q = parse(SystemLogQuery, query, "Invalid query")
        with self.db() as session:
            rows, total = audit.query(session, q.limit, q.offset, involving_user=q.user_id,
                                      action=q.action, source=q.source,
                                      subject_type=q.subject_type, subject_id=q.subject_id,
                                      since=q.since, until=q.until)
            return {"logs": [audit.to_dict(r) for r in rows], "total": total,
                    "limit": q.limit, "offset": q.offset}

    @rpc
    def user_logs(self, actor: dict, query: dict) -> dict:
        """A user's log as ``actor`` may see it (``audit.to_dict_for``): the gateway lets only
        the user themself or an admin ask."""
        viewer = Actor.of(actor)
        q = parse(UserLogQuery, query, "Invalid query")
        # as a seed client calls it, with no query: the caller's own log, the last 24 hours
        user_id = q.user_id if q.user_id is not None else viewer.user_id
        end = q.end if q.end is not None else utcnow()
        try:
            start = q.start if q.start is not None else end - dt.timedelta(hours=24)
        except OverflowError:  # an end within a day of year 1
            raise BadRequest("Invalid query", [{"field": "end", "message": "too early"}]) \
                from None
        if user_id is None:
            raise BadRequest("Invalid query", [{"field": "user_id",
                                                "message": "name the user whose log to read"}])
        if start >= end:
            raise BadRequest("Invalid query", [{"field": "end",
                                                "message": "end must be after start"}])
        with self.db() as session:
            rows, total = audit.query(session, q.limit, q.offset, involving_user=user_id,
                                      since=start, until=end)
            return {"user_id": user_id, "logs": [audit.to_dict_for(r, viewer) for r in rows],
                    "total": total, "limit": q.limit, "offset": q.offset}

    @rpc
    def update_log(self, actor: dict, log_id: int, data: dict) -> dict:
        body = parse(UpdateLog, data, "Invalid log data")
        editor = Actor.of(actor)
        with self.db() as session:
            row = audit.edit(session, log_id, body.message, editor.user_id, utcnow())
            session.commit()
            return {"message": "Log updated successfully", "log": audit.to_dict(row)}

    @rpc
    def delete_log(self, log_id: int) -> dict:
        with self.db() as session:
            session.delete(audit.get(session, log_id))
            session.commit()
        return {"message": "Log deleted successfully", "log_id": log_id}

    @every("audit_retention_interval")
    def prune_audit_log(self):
        """Delete audit rows (and handled alert notices) past BERTH_AUDIT_RETENTION_DAYS, in
        batches, in one replica."""
        if not try_acquire(self.db, Lease, "alerts-audit-retention",
                           get_settings().audit_retention_interval * 0.8):
            return
        self.prune_audit_log_now()

    @rpc
    def prune_audit_log_now(self) -> dict:
        """Audit retention now, outside the timer (operators, tests); handled alert notices
        (the digest's bookkeeping) go after the same time."""
        days = get_settings().audit_retention_days
        removed = audit.prune(self.db, utcnow(), days)
        notices = digest.prune(self.db, utcnow(), days)
        if removed or notices:
            log.info("audit retention: removed %d row(s) and %d alert notice(s) older than "
                     "%g days", removed, notices, days)
        return {"removed": removed, "notices_removed": notices, "retention_days": days}
