"""Two-factor sign-in: TOTP (RFC 6238, through ``pyotp``) and one-time recovery codes.

A user enrols (a new secret, pending), confirms with a code (two-factor sign-in is then on and
ten recovery codes are issued, shown once), and from then on every login needs a code after
the password. A code is six digits for the current 30-second step, one step either side
accepted (clock drift); a step once accepted is spent (``last_step``, set by one conditional
UPDATE, so two requests racing with the same code cannot both pass). A recovery code works
once. The secret is sealed at rest with BERTH_SECRETS_KEY (``berth.docker.sealing``, as the
engines' TLS keys); recovery codes are stored as SHA-256 digests: each holds 80 random bits,
so, as for the reset links, a slow hash would add cost and no safety. Failed codes count per
user in the login throttle table (key ``totp:<user id>``), the database's backstop behind the
gateway's per-address limits. No nameko here.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

import pyotp
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from berth.db import insert_once, isoformat
from berth.docker.sealing import seal, unseal
from berth.errors import BadRequest, Conflict, Unauthorized
from services.users import accounts
from services.users.models import LoginThrottle, RecoveryCode, TwoFactor, User

ISSUER = "Berth"
DRIFT_STEPS = 1  # steps either side of the current one that are accepted
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # 5 bits a character, 16 of them

INVALID_CODE = "Invalid two-factor code"
ALREADY_ON = "Two-factor sign-in is already on; disable it first to enrol again"
NOTHING_TO_CONFIRM = "No two-factor enrolment to confirm; start one with POST /api/2fa/enrol"
NOT_ON = "Two-factor sign-in is not on for this account"


def throttle_key(user_id: int) -> str:
    """The login throttle row counting ``user_id``'s failed codes (never a login's key: those
    are 64 hex digits)."""
    return f"totp:{int(user_id)}"


# --- codes ---------------------------------------------------------------------------------

def new_recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(16))
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def normalise(code: str) -> str:
    """A code as typed: spaces and hyphens dropped, lower case."""
    return "".join(code.split()).replace("-", "").lower()


def recovery_hash(code: str) -> str:
    return hashlib.sha256(normalise(code).encode()).hexdigest()


def matching_step(secret: str, code: str, now: dt.datetime) -> int | None:
    """The time step (``now``'s or one either side) whose code ``code`` is; None if none."""
    code = normalise(code)
    if len(code) != 6 or not (code.isascii() and code.isdigit()):  # not '١٢٣٤٥٦'
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):  # (every step is compared)
            found = step
    return found


def _spend_step(session: Session, user_id: int, step: int) -> bool:
    """Record ``step`` as the user's last accepted one; False if it (or a later one) was
    accepted already: a code is never accepted twice."""
    result = session.execute(
        update(TwoFactor).where(TwoFactor.user_id == user_id,
                                or_(TwoFactor.last_step.is_(None), TwoFactor.last_step < step))
        .values(last_step=step).execution_options(synchronize_session=False))
    return result.rowcount == 1


def _spend_recovery_code(session: Session, user_id: int, code: str, now: dt.datetime) -> bool:
    if len(normalise(code)) != 16:
        return False
    result = session.execute(
        update(RecoveryCode).where(RecoveryCode.user_id == user_id,
                                   RecoveryCode.code_hash == recovery_hash(code),
                                   RecoveryCode.used_at.is_(None))
        .values(used_at=now).execution_options(synchronize_session=False))
    return result.rowcount == 1


def _totp_ok(session: Session, row: TwoFactor, code: str, now: dt.datetime) -> bool:
    step = matching_step(unseal(row.secret), code, now)
    return step is not None and _spend_step(session, row.user_id, step)


# --- state ---------------------------------------------------------------------------------

def credential(session: Session, user_id: int, lock: bool = False) -> TwoFactor | None:
    query = select(TwoFactor).where(TwoFactor.user_id == user_id)
    return session.scalar(query.with_for_update() if lock else query)


def is_on(session: Session, user_id: int) -> bool:
    row = credential(session, user_id)
    return row is not None and row.confirmed_at is not None


def status(session: Session, user_id: int) -> dict:
    row = credential(session, user_id)
    left = session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)))
    on = row is not None and row.confirmed_at is not None
    return {"enabled": on, "pending": row is not None and not on,
            "enabled_at": isoformat(row.confirmed_at) if on else None,
            "recovery_codes_left": int(left or 0) if on else 0}


def new_recovery_codes(session: Session, user_id: int, now: dt.datetime) -> list[str]:
    """Replace the user's recovery codes with ``RECOVERY_CODES`` new ones (returned in
    clear, once: only their digests are kept)."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
    session.add_all([RecoveryCode(user_id=user_id, code_hash=recovery_hash(c), created_at=now)
                     for c in codes])
    return codes


# --- the journey ---------------------------------------------------------------------------

def enrol(session: Session, user: User, now: dt.datetime, issuer: str = ISSUER,
          keys=None) -> tuple[str, str]:
    """A new pending secret for ``user`` (replacing a pending one): (secret, otpauth URI).
    Conflict when two-factor sign-in is already on."""
    insert_once(session, TwoFactor, user_id=user.id, secret="", created_at=now)
    row = credential(session, user.id, lock=True)
    if row.confirmed_at is not None:
        raise Conflict(ALREADY_ON)
    secret = pyotp.random_base32()
    row.secret, row.created_at, row.last_step = seal(secret, keys), now, None
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=issuer)
    return secret, uri


def confirm(session: Session, user: User, code: str, now: dt.datetime) -> list[str]:
    """Turn two-factor sign-in on with a code of the pending secret; the new recovery codes.
    BadRequest for a wrong code (the caller counts it as a failure)."""
    row = credential(session, user.id, lock=True)
    if row is None or row.confirmed_at is not None or not row.secret:
        raise Conflict(ALREADY_ON if row is not None and row.confirmed_at else
                       NOTHING_TO_CONFIRM)
    if not _totp_ok(session, row, code, now):
        raise bad_code()
    row.confirmed_at = now
    return new_recovery_codes(session, user.id, now)


def verify(session: Session, user_id: int, code: str, now: dt.datetime) -> str:
    """Check a second factor of a user with two-factor sign-in on: ``"totp"`` or
    ``"recovery"`` (that recovery code is spent); Unauthorized otherwise."""
    row = credential(session, user_id, lock=True)
    if row is None or row.confirmed_at is None:
        raise Unauthorized(INVALID_CODE)
    if _totp_ok(session, row, code, now):
        return "totp"
    if _spend_recovery_code(session, user_id, code, now):
        return "recovery"
    raise Unauthorized(INVALID_CODE)


def disable(session: Session, user: User, code: str, now: dt.datetime) -> None:
    """Turn two-factor sign-in off (a code or a recovery code confirms it)."""
    if not is_on(session, user.id):
        raise Conflict(NOT_ON)
    try:
        verify(session, user.id, code, now)
    except Unauthorized:
        raise bad_code() from None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    session.execute(delete(TwoFactor).where(TwoFactor.user_id == user.id))


def regenerate(session: Session, user: User, code: str, now: dt.datetime) -> list[str]:
    """New recovery codes (the old ones stop working); a code confirms it."""
    if not is_on(session, user.id):
        raise Conflict(NOT_ON)
    try:
        verify(session, user.id, code, now)
    except Unauthorized:
        raise bad_code() from None
    return new_recovery_codes(session, user.id, now)


def bad_code() -> BadRequest:
    """A wrong code on a signed-in route: 400 (a 401 would say the session ended)."""
    return BadRequest(INVALID_CODE, [{"field": "code", "message": "is not a current "
                                      "two-factor code or an unused recovery code"}])


def check_throttle(session: Session, user_id: int, now: dt.datetime,
                   policy: accounts.ThrottlePolicy) -> None:
    accounts.check_throttle(session, throttle_key(user_id), now, policy)


def record_failure(session: Session, user_id: int, now: dt.datetime,
                   policy: accounts.ThrottlePolicy) -> bool:
    """Count one wrong code of ``user_id``; True when this one reached the limit (the codes
    are refused from now until the window ends: time to tell the owner)."""
    accounts.record_failure(session, throttle_key(user_id), now, policy)
    row = session.get(LoginThrottle, throttle_key(user_id))
    return row is not None and row.failures == policy.max_failures
