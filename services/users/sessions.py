"""Sessions and token versions: what makes an access token stop working before it expires.

A login opens a session (its id is the token's ``sid``); logout revokes that one session.
Raising the user's ``token_version`` ends every session at once (a token carries the version
it was issued under as ``ver``): disabling the user, an admin's role change, a password
change or reset do it (and delete the session rows, so a credential-changing call checks
``live_session`` and fails at once). A two-factor change logs out the other sessions instead
(``log_out_everywhere``), so API keys, which live as long as the token version, stay. The gateway asks ``token_state`` for a user (and keeps the answer for
BERTH_TOKEN_CHECK_SECONDS) and refuses a token whose ``ver`` or ``sid`` it does not allow.
No nameko here.
"""
from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from berth.errors import Unauthorized
from berth.tokens import LEEWAY_SECONDS, SESSION_ENDED
from services.users.models import LoginSession, User


def open_session(session: Session, user: User, now: dt.datetime,
                 ttl_seconds: int) -> LoginSession:
    """A new session for ``user`` lasting as long as the token issued for it; the user's
    sessions that are over (expired) are deleted on the way, so the table stays small."""
    session.execute(delete(LoginSession).where(
        LoginSession.user_id == user.id,
        LoginSession.expires_at < now - dt.timedelta(seconds=LEEWAY_SECONDS)))
    row = LoginSession(id=secrets.token_hex(16), user_id=user.id, created_at=now,
                       expires_at=now + dt.timedelta(seconds=ttl_seconds))
    session.add(row)
    return row


def live_session(session: Session, user_id: int, session_id: str,
                 now: dt.datetime) -> LoginSession:
    """The caller's session, locked; Unauthorized if it is revoked, over or not theirs."""
    row = session.scalar(select(LoginSession).where(LoginSession.id == session_id)
                         .with_for_update())
    if row is None or row.user_id != user_id or row.revoked_at is not None \
            or row.expires_at + dt.timedelta(seconds=LEEWAY_SECONDS) <= now:
        raise Unauthorized(SESSION_ENDED)
    return row


def revoke(session: Session, user_id: int, session_id: str, now: dt.datetime) -> bool:
    """End one session of ``user_id`` (logout); False if it was not theirs or already over."""
    row = session.get(LoginSession, session_id)
    if row is None or row.user_id != user_id or row.revoked_at is not None:
        return False
    row.revoked_at = now
    return True


def end_every_session(session: Session, user: User, keep: str | None = None) -> None:
    """Every token issued to ``user`` so far stops working (at the gateways within
    BERTH_TOKEN_CHECK_SECONDS: a new token version), and every session but ``keep`` (the
    caller's, which gets a fresh token) is gone at once here: in the seconds a gateway still
    lets an old token through, it reaches no ``live_session`` (so it cannot mint an API key or
    turn two-factor sign-in on after a password change)."""
    user.token_version = (user.token_version or 0) + 1
    query = delete(LoginSession).where(LoginSession.user_id == user.id)
    if keep is not None:
        query = query.where(LoginSession.id != keep)
    session.execute(query)


def log_out_everywhere(session: Session, user_id: int, now: dt.datetime) -> None:
    """Log out every session of ``user_id`` (as ``revoke`` does one), without a new token
    version: the user's API keys live on (a two-factor change; the caller then opens a new
    session)."""
    session.execute(update(LoginSession).where(
        LoginSession.user_id == user_id,
        LoginSession.revoked_at.is_(None)).values(revoked_at=now))


def token_state(session: Session, user_id: int, now: dt.datetime) -> dict:
    """What a gateway needs to judge any token of ``user_id``: the current version, whether
    the account is disabled, its role, and the revoked sessions whose tokens could still be
    unexpired. A user that does not exist (deleted) has ``exists`` false."""
    user = session.get(User, user_id)
    if user is None:
        return {"user_id": user_id, "exists": False, "version": -1, "disabled": True,
                "role": "", "revoked_sessions": []}
    revoked = session.scalars(select(LoginSession.id).where(
        LoginSession.user_id == user_id, LoginSession.revoked_at.is_not(None),
        LoginSession.expires_at > now - dt.timedelta(seconds=LEEWAY_SECONDS)))
    return {"user_id": user_id, "exists": True, "version": user.token_version or 0,
            "disabled": bool(user.disabled), "role": user.role,
            "revoked_sessions": sorted(revoked)}
