"""Access control lists: a user's permissions, every change logged, served as a file."""
from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from berth.db import isoformat
from berth.errors import Conflict, NotFound
from berth.queries import get_or_404, page
from services.users.accounts import get_user
from services.users.models import Acl, AclLog, User


def _normalise(permissions: list[str]) -> list[str]:
    return list(dict.fromkeys(permissions))  # drop repeats, keep order


def _log(session: Session, user_id: int, action: str, actor_id: int | None,
         permissions: list[str], now: dt.datetime) -> None:
    session.add(AclLog(user_id=user_id, action=action, actor_id=actor_id,
                       permissions=permissions, created_at=now))


def generate(session: Session, user_id: int, permissions: list[str], actor_id: int,
             now: dt.datetime) -> Acl:
    get_user(session, user_id)
    if session.get(Acl, user_id) is not None:
        raise Conflict(f"User {user_id} already has an ACL; use /api/acl/update")
    acl = Acl(user_id=user_id, permissions=_normalise(permissions), created_at=now,
              updated_at=now)
    session.add(acl)
    try:
        session.flush()
    except IntegrityError:  # a concurrent generate for the same user won
        session.rollback()
        raise Conflict(f"User {user_id} already has an ACL; use /api/acl/update") from None
    _log(session, user_id, "created", actor_id, acl.permissions, now)
    return acl


def change(session: Session, user_id: int, permissions: list[str], actor_id: int,
           now: dt.datetime) -> Acl:
    get_user(session, user_id)
    acl = get_or_404(session, Acl, user_id, f"User {user_id} has no ACL; generate one first")
    acl.permissions = _normalise(permissions)
    acl.updated_at = now
    _log(session, user_id, "updated", actor_id, acl.permissions, now)
    return acl


# the hot authenticated read (make bench): one query, its statement built once
_INFO = (select(User.role, Acl.permissions).outerjoin(Acl, Acl.user_id == User.id)
         .where(User.id == bindparam("user_id")))


def info(session: Session, user_id: int) -> dict:
    row = session.execute(_INFO, {"user_id": user_id}).first()
    if row is None:
        raise NotFound(f"User {user_id} not found")
    return {"user_id": user_id,
            "acl_info": {"permissions": row.permissions or [], "role": row.role}}


def logs(session: Session, user_id: int, limit: int, offset: int) -> dict:
    get_user(session, user_id)
    rows, total = page(session, select(AclLog).where(AclLog.user_id == user_id),
                       (AclLog.created_at.desc(), AclLog.id.desc()), limit, offset)
    return {"user_id": user_id, "total": total, "logs": [
        {"log_id": r.id, "action": r.action, "timestamp": isoformat(r.created_at),
         "actor_id": r.actor_id, "permissions": r.permissions} for r in rows]}


def acl_of(session: Session, user: User) -> Acl:
    """The user's ACL; a user who never had one generated has an empty one (not stored: the
    seed's ``POST /api/acl/generate`` still creates theirs), so that reading and downloading
    it works from the first day."""
    stored = session.get(Acl, user.id)
    if stored is not None:
        return stored
    return Acl(user_id=user.id, permissions=[], created_at=user.created_at,
               updated_at=user.created_at)


def record_download(session: Session, user: User, actor_id: int, now: dt.datetime) -> None:
    _log(session, user.id, "downloaded", actor_id, acl_of(session, user).permissions, now)


def render_file(user: User, acl: Acl, now: dt.datetime) -> str:
    """The downloadable ACL document (JSON)."""
    return json.dumps({
        "user_id": user.id, "username": user.username, "role": user.role,
        "permissions": acl.permissions, "updated_at": isoformat(acl.updated_at),
        "generated_at": isoformat(now),
    }, indent=2) + "\n"
