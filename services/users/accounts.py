"""Accounts: registration, login with per-account throttling, admin updates, first admin."""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from berth.db import insert_once, isoformat
from berth.errors import Conflict, Forbidden, TooManyRequests, Unauthorized
from berth.queries import get_or_404, page
from services.users.models import LoginThrottle, User

INVALID_LOGIN = "Invalid username or password"


def user_to_dict(user: User) -> dict:
    return {
        "user_id": user.id, "username": user.username, "email": user.email,
        "role": user.role, "traffic_limit": user.traffic_limit, "disabled": user.disabled,
        "email_verified": user.email_verified_at is not None,
        "created_at": isoformat(user.created_at),
    }


def find_by_username(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.username) == username.lower()))


def find_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == email.lower()))


def enabled_with_role(session: Session, role: str) -> list[User]:
    return list(session.scalars(select(User).where(User.role == role,
                                                   User.disabled.is_(False))
                                .order_by(User.id)))


def get_user(session: Session, user_id: int) -> User:
    return get_or_404(session, User, user_id)


def create_user(session: Session, username: str, email: str, password_hash: str,
                role: str = "user") -> User:
    """Add a user and flush; Conflict if the name or address is taken (any letter case)."""
    if find_by_username(session, username) is not None:
        raise Conflict("Username already exists")
    if find_by_email(session, email) is not None:
        raise Conflict("Email address already registered")
    user = User(username=username, email=email.lower(), password_hash=password_hash, role=role)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # a concurrent registration won the race
        session.rollback()
        raise Conflict("Username or email address already exists") from None
    return user


def list_users(session: Session, limit: int, offset: int) -> tuple[list[User], int]:
    return page(session, select(User), (User.id,), limit, offset)


def update_user(session: Session, user_id: int, changes: dict) -> User:
    """Apply admin changes (role, traffic_limit, disabled); only keys present are changed."""
    user = get_user(session, user_id)
    for field in ("role", "traffic_limit", "disabled"):
        if field in changes:
            if field != "traffic_limit" and changes[field] is None:
                continue
            setattr(user, field, changes[field])
    return user


def grant_distributor(session: Session, user_id: int) -> None:
    """Make a plain user a distributor (effective in their next token); never demotes."""
    user = session.get(User, user_id)
    if user is not None and user.role == "user":
        user.role = "distributor"


# --- login ---------------------------------------------------------------------------------

def throttle_key(username: str) -> str:
    """The throttle row's key: a fixed-length digest of the name in any letter case (some
    characters grow when lower-cased, so the name itself might not fit the column)."""
    return hashlib.sha256(username.lower().encode()).hexdigest()


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int
    window_seconds: int


def count_attempt(session: Session, account: str, now: dt.datetime,
                  policy: ThrottlePolicy) -> None:
    """Count a login attempt before the password is checked; 429 once the account has had
    ``max_failures`` attempts in the window without a success.

    The row is locked (PostgreSQL) and counted first, so parallel guesses cannot all pass a
    check that reads a count not yet raised by the others.
    """
    insert_once(session, LoginThrottle, account=account, failures=0, window_started_at=now)
    row = session.scalar(select(LoginThrottle).where(LoginThrottle.account == account)
                         .with_for_update())
    if now - row.window_started_at >= dt.timedelta(seconds=policy.window_seconds):
        row.failures, row.window_started_at = 0, now
    if row.failures >= policy.max_failures:
        retry_at = row.window_started_at + dt.timedelta(seconds=policy.window_seconds)
        raise TooManyRequests("Too many failed login attempts; try again later",
                              [{"field": "retry_after",
                                "message": str(int((retry_at - now).total_seconds()) + 1)}])
    row.failures += 1


def clear_failures(session: Session, account: str) -> None:
    row = session.get(LoginThrottle, account)
    if row is not None:
        session.delete(row)


@dataclass(frozen=True)
class Credentials:
    user_id: int
    username: str
    role: str
    disabled: bool
    password_hash: str


def authenticate(session_factory, username: str, password: str, now: dt.datetime,
                 policy: ThrottlePolicy, verify: Callable[[str, str], bool]) -> Credentials:
    """Check a login. The same 401 whether or not the account exists; 429 once throttled.

    ``verify`` is the (slow) password check, run outside any open transaction.
    """
    from services.users.passwords import DUMMY_HASH

    account = throttle_key(username)
    with session_factory() as session:
        count_attempt(session, account, now, policy)
        user = find_by_username(session, username)
        found = user and Credentials(user.id, user.username, user.role, user.disabled,
                                     user.password_hash)
        session.commit()
    ok = verify(found.password_hash if found else DUMMY_HASH, password) and bool(found)
    if not ok:
        raise Unauthorized(INVALID_LOGIN)  # the attempt was counted above
    with session_factory() as session:
        clear_failures(session, account)
        session.commit()
    if found.disabled:
        raise Forbidden("Account is disabled")
    return found


def ensure_admin(session: Session, username: str, email: str, password_hash: str) -> bool:
    """Create the first admin if no user has that name; True if created (idempotent)."""
    existing = find_by_username(session, username)
    if existing is not None:
        if existing.role != "admin":  # never promote an account someone else registered
            raise Conflict(f"User {username!r} exists and is not an admin; "
                           f"choose another BERTH_ADMIN_USERNAME")
        return False
    create_user(session, username, email, password_hash, role="admin")
    return True
