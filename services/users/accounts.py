"""Accounts: registration, login with per-account throttling, admin updates, first admin."""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from berth.db import insert_once, isoformat
from berth.errors import Conflict, Forbidden, TooManyRequests, Unauthorized
from berth.queries import get_or_404, page
from services.users.models import DistributorGrant, LoginThrottle, User
from services.users.sessions import end_every_session

INVALID_LOGIN = "Invalid username or password"
# sign-up answers the same whichever of the two is taken, so it does not tell whether an
# address has an account (OWASP: no account enumeration); it still tells that one of the two
# cannot be used, which a sign-up must
TAKEN = "That username or e-mail address cannot be used"


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
    """Add a user and flush; Conflict (one message for both) if the name or the address is
    taken (any letter case)."""
    if find_by_username(session, username) is not None \
            or find_by_email(session, email) is not None:
        raise Conflict(TAKEN)
    user = User(username=username, email=email.lower(), password_hash=password_hash, role=role)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # a concurrent registration won the race
        session.rollback()
        raise Conflict(TAKEN) from None
    return user


def list_users(session: Session, limit: int, offset: int) -> tuple[list[User], int]:
    return page(session, select(User), (User.id,), limit, offset)


def update_user(session: Session, user_id: int, changes: dict) -> tuple[User, bool]:
    """Apply admin changes (role, traffic_limit, disabled, email); only keys present are
    changed. A role change or disabling ends every session of the user (their tokens stop
    working); so does nothing else. Returns the user and whether the address changed (it is
    then unverified, and the caller mails a new verification)."""
    user = get_user(session, user_id)
    if changes.get("role") is not None and changes["role"] != user.role:
        user.role = changes["role"]
        end_every_session(session, user)
    if changes.get("disabled") is not None and changes["disabled"] != user.disabled:
        user.disabled = changes["disabled"]
        if user.disabled:
            end_every_session(session, user)
    if "traffic_limit" in changes:
        user.traffic_limit = changes["traffic_limit"]
    email_changed = changes.get("email") is not None and change_email(session, user,
                                                                      changes["email"])
    return user, email_changed


def change_email(session: Session, user: User, email: str) -> bool:
    """Give ``user`` a new address (unverified until its link is opened); Conflict if another
    account has it. False if it is the same address (in any letter case): nothing changes."""
    if email.lower() == user.email.lower():
        return False
    other = find_by_email(session, email)
    if other is not None and other.id != user.id:
        raise Conflict("Email address already registered")
    user.email, user.email_verified_at = email.lower(), None
    try:
        session.flush()
    except IntegrityError:  # a concurrent registration took it
        session.rollback()
        raise Conflict("Email address already registered") from None
    return True


def grant_distributor(session: Session, user_id: int, serial_id: int,
                      now: dt.datetime) -> User:
    """Make a plain user a distributor for distributor serial ``serial_id`` (effective in
    their next token); never demotes. At most once per serial: a second call for the same
    serial (the event after billing's synchronous call, or a retried call) changes nothing,
    so it cannot re-promote a user an admin demoted in between."""
    user = get_user(session, user_id)
    if insert_once(session, DistributorGrant, serial_id=serial_id, user_id=user_id,
                   granted_at=now) and user.role == "user":
        user.role = "distributor"
    return user


# --- login ---------------------------------------------------------------------------------

def throttle_key(username: str) -> str:
    """The throttle row's key: a fixed-length digest of the name in any letter case (some
    characters grow when lower-cased, so the name itself might not fit the column)."""
    return hashlib.sha256(username.lower().encode()).hexdigest()


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int
    window_seconds: int


def check_throttle(session: Session, account: str, now: dt.datetime,
                   policy: ThrottlePolicy) -> None:
    """429 if the account name has had ``max_failures`` failed logins in the current window.

    Only failures count, never attempts: a correct password in flight does not use up the
    allowance, so any number of concurrent correct logins pass. This is the users database's
    backstop, per account name from any address; the gateway's limits (``gateway.limits``,
    per address and per account and address, in a shared store) come first and are far
    lower, so one address cannot reach it. Parallel wrong guesses that all read the count
    before any of them raised it can overshoot it by the number in flight (bounded by the
    service's workers).
    """
    row = session.get(LoginThrottle, account)
    if row is None or now - row.window_started_at >= dt.timedelta(
            seconds=policy.window_seconds):
        return
    if row.failures >= policy.max_failures:
        retry_at = row.window_started_at + dt.timedelta(seconds=policy.window_seconds)
        raise TooManyRequests("Too many failed login attempts; try again later",
                              [{"field": "retry_after",
                                "message": str(int((retry_at - now).total_seconds()) + 1)}])


def record_failure(session: Session, account: str, now: dt.datetime,
                   policy: ThrottlePolicy) -> None:
    """Count one failed login of the account name (the row is locked on PostgreSQL, so
    concurrent failures all count); a failure after the window starts a new one."""
    insert_once(session, LoginThrottle, account=account, failures=0, window_started_at=now)
    row = session.scalar(select(LoginThrottle).where(LoginThrottle.account == account)
                         .with_for_update())
    if now - row.window_started_at >= dt.timedelta(seconds=policy.window_seconds):
        row.failures, row.window_started_at = 0, now
    row.failures += 1


def clear_failures(session: Session, account: str) -> None:
    """Forget the account name's failures (a bulk delete: concurrent successes may race to
    it, and each deletes what is there)."""
    if session.get(LoginThrottle, account) is not None:
        session.execute(delete(LoginThrottle).where(LoginThrottle.account == account))


@dataclass(frozen=True)
class Credentials:
    user_id: int
    username: str
    role: str
    disabled: bool
    password_hash: str


def authenticate(session_factory, username: str, password: str, now: dt.datetime,
                 policy: ThrottlePolicy, verify: Callable[[str, str], bool]) -> Credentials:
    """Check a login. The same 401 whether or not the account exists; 429 once the account
    name has had too many failures (``check_throttle``).

    ``verify`` is the (slow) password check, run outside any open transaction.
    """
    from services.users.passwords import DUMMY_HASH

    account = throttle_key(username)
    with session_factory() as session:
        check_throttle(session, account, now, policy)
        user = find_by_username(session, username)
        found = user and Credentials(user.id, user.username, user.role, user.disabled,
                                     user.password_hash)
    ok = verify(found.password_hash if found else DUMMY_HASH, password) and bool(found)
    if not ok:
        with session_factory() as session:
            record_failure(session, account, now, policy)
            session.commit()
        raise Unauthorized(INVALID_LOGIN)
    with session_factory() as session:
        clear_failures(session, account)  # (only a read when there were none)
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
