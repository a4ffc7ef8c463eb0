"""E-mail verification tokens: random, single use, expiring, stored only as a SHA-256."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from berth.db import isoformat
from berth.errors import BadRequest
from berth.events import VerificationEmailRequested
from services.users.models import User, VerificationToken

INVALID_LINK = "Invalid or expired verification link"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def recently_sent(session: Session, user: User, now: dt.datetime, resend_seconds: int,
                  model=VerificationToken) -> bool:
    """Whether ``user`` was issued a ``model`` token (a verification or a reset link) less
    than ``resend_seconds`` ago."""
    latest = session.scalar(
        select(model.created_at).where(model.user_id == user.id)
        .order_by(model.created_at.desc()).limit(1))
    return latest is not None and now - latest < dt.timedelta(seconds=resend_seconds)


def issue_token(session: Session, user: User, now: dt.datetime, ttl_seconds: int,
                model=VerificationToken) -> tuple[str, VerificationToken]:
    """A new ``model`` token (a verification or a reset link) for the user's current
    address; only its hash is stored, the raw token goes only into the mail."""
    raw = secrets.token_urlsafe(32)
    row = model(user_id=user.id, token_hash=token_hash(raw), email=user.email,
                created_at=now, expires_at=now + dt.timedelta(seconds=ttl_seconds))
    session.add(row)
    return raw, row


def request(session: Session, user: User, now: dt.datetime, ttl_seconds: int,
            public_url: str) -> tuple[VerificationToken, VerificationEmailRequested]:
    """Issue a token for ``user`` and the event that mails its link (the raw token travels
    only in the event, to the mail)."""
    raw, row = issue_token(session, user, now, ttl_seconds)
    session.flush()
    return row, VerificationEmailRequested.new(
        user_id=user.id, username=user.username, email=user.email,
        verification_url=f"{public_url.rstrip('/')}/api/verify_email/{raw}",
        expires_at=isoformat(row.expires_at))


def redeem_token(session: Session, raw: str, now: dt.datetime) -> User:
    """Mark the token used and the address verified; BadRequest if unknown, used or expired."""
    if not raw or len(raw) > 128:
        raise BadRequest(INVALID_LINK)
    row = session.scalar(select(VerificationToken)
                         .where(VerificationToken.token_hash == token_hash(raw))
                         .with_for_update())
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise BadRequest(INVALID_LINK)
    user = session.get(User, row.user_id)
    if user is None or user.email.lower() != row.email.lower():
        raise BadRequest(INVALID_LINK)  # the address changed since the mail was sent
    row.used_at = now
    if user.email_verified_at is None:
        user.email_verified_at = now
    return user
