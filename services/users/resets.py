"""Password reset links: random, single use, expiring within the hour, stored only as a
SHA-256 (OWASP Forgot Password cheat sheet). No nameko here."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from berth.db import isoformat
from berth.errors import BadRequest
from berth.events import PasswordResetRequested
from services.users import verification
from services.users.models import PasswordResetToken, User
from services.users.verification import token_hash

INVALID_LINK = "Invalid or expired password reset link"
FORGOT_ANSWER = "If an account has this address, a password reset link has been sent to it"


def recently_sent(session: Session, user: User, now: dt.datetime, resend_seconds: int) -> bool:
    return verification.recently_sent(session, user, now, resend_seconds, PasswordResetToken)


def request(session: Session, user: User, now: dt.datetime, ttl_seconds: int,
            public_url: str) -> tuple[PasswordResetToken, PasswordResetRequested]:
    """Issue a reset token for ``user`` and the event that mails its link (the raw token
    travels only in the event, to the mail; the table keeps its hash)."""
    raw, row = verification.issue_token(session, user, now, ttl_seconds, PasswordResetToken)
    session.flush()
    return row, PasswordResetRequested.new(
        user_id=user.id, username=user.username, email=user.email,
        reset_url=f"{public_url.rstrip('/')}/api/password/reset/{raw}",
        expires_at=isoformat(row.expires_at))


def find_usable(session: Session, raw: str, now: dt.datetime, lock: bool = False
                ) -> tuple[PasswordResetToken, User]:
    """The unused, unexpired token ``raw`` names and its user; BadRequest otherwise (also
    when the account is disabled or its address changed since the mail was sent)."""
    if not raw or len(raw) > 128:
        raise BadRequest(INVALID_LINK)
    query = select(PasswordResetToken).where(PasswordResetToken.token_hash == token_hash(raw))
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise BadRequest(INVALID_LINK)
    user = session.get(User, row.user_id)
    if user is None or user.disabled or user.email.lower() != row.email.lower():
        raise BadRequest(INVALID_LINK)
    return row, user


def redeem(session: Session, raw: str, now: dt.datetime) -> User:
    """Use the token: it and every other outstanding reset token of the user are spent (an
    older mail lying in the inbox no longer works). Receiving the link proves the address,
    so it counts as verified."""
    row, user = find_usable(session, raw, now, lock=True)
    session.execute(update(PasswordResetToken).where(
        PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now).execution_options(synchronize_session=False))
    row.used_at = now
    if user.email_verified_at is None:
        user.email_verified_at = now
    return user
