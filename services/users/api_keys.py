"""API keys for automation (issue 16, item 4). No nameko here.

A key is ``berth_<id>_<secret>`` (``berth.api_keys``): ``<id>`` is the row's public integer
id, ``<secret>`` 32 random bytes (256 bits, URL-safe base64). Only the SHA-256 of the secret
is stored: for a uniformly random 256-bit secret a fast hash is the right one (nothing to
brute-force, unlike a password, so a slow KDF would only cost every request), and the
gateway compares digests in constant time. The full key is shown once, in the reply that creates it.

A key works until it expires (an expiry is required, at most BERTH_API_KEY_MAX_DAYS) or is
revoked, and only while its owner exists, is enabled, has the role the key was created under
and the same token version: whatever ends every session of the user (disabling, a role
change, a password change or reset) ends every key too, for good (re-enabling the account or
giving the role back does not revive it; the version only grows). The gateway asks
``state`` for a key at most once per BERTH_TOKEN_CHECK_SECONDS per worker, and that lookup
records the key's last use (at most once per LAST_USED_GRANULARITY).
"""
from __future__ import annotations

import datetime as dt
import hmac
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from berth.api_keys import KEY_PREFIX, SCOPES, allowed, digest
from berth.db import isoformat
from berth.errors import BadRequest, Conflict, NotFound
from berth.queries import page
from services.users.models import ApiKey, User

SECRET_BYTES = 32
LAST_USED_GRANULARITY = dt.timedelta(seconds=60)
NO_SUCH_KEY = "API key not found"


def status(key: ApiKey, owner: User | None, now: dt.datetime) -> str:
    """``active``, ``revoked``, ``expired``, or ``ended`` (its owner was disabled, changed
    role or changed their password since: it never works again)."""
    if key.revoked_at is not None:
        return "revoked"
    if owner is None or owner.disabled or owner.role != key.role \
            or (owner.token_version or 0) != key.token_version:
        return "ended"
    if key.expires_at <= now:
        return "expired"
    return "active"


def _active_count(session: Session, user: User, now: dt.datetime) -> int:
    return session.scalar(select(func.count()).select_from(ApiKey).where(
        ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None), ApiKey.expires_at > now,
        ApiKey.role == user.role, ApiKey.token_version == (user.token_version or 0)))


def create(session: Session, user: User, name: str, scopes: list[str], days: int,
           now: dt.datetime, max_days: int, max_keys: int) -> tuple[ApiKey, str]:
    """A new key of ``user`` (locked by the caller) and its full text (shown once).
    BadRequest for scopes beyond the user's role or an expiry beyond ``max_days``; Conflict
    when the user already has ``max_keys`` active keys."""
    chosen = sorted(set(scopes), key=SCOPES.index)
    beyond = [s for s in chosen if s not in allowed(user.role)]
    if beyond:
        raise BadRequest("Invalid API key data", [{
            "field": "scopes", "message": f"the {user.role} role cannot grant "
                                          f"{', '.join(beyond)}"}])
    if days > max_days:
        raise BadRequest("Invalid API key data", [{
            "field": "expires_in_days", "message": f"must be at most {max_days}"}])
    if _active_count(session, user, now) >= max_keys:
        raise Conflict(f"You already have {max_keys} active API keys, the most allowed; "
                       "revoke one first")
    secret = secrets.token_urlsafe(SECRET_BYTES)
    key = ApiKey(user_id=user.id, name=name, scopes=chosen, secret_hash=digest(secret),
                 role=user.role, token_version=user.token_version or 0, created_at=now,
                 expires_at=now + dt.timedelta(days=days))
    session.add(key)
    session.flush()
    return key, f"{KEY_PREFIX}{key.id}_{secret}"


def to_dict(key: ApiKey, owner: User | None, now: dt.datetime) -> dict:
    return {"key_id": key.id, "name": key.name, "scopes": list(key.scopes),
            "prefix": f"{KEY_PREFIX}{key.id}_", "status": status(key, owner, now),
            "created_at": isoformat(key.created_at), "expires_at": isoformat(key.expires_at),
            "last_used_at": isoformat(key.last_used_at),
            "revoked_at": isoformat(key.revoked_at)}


def list_keys(session: Session, user: User, now: dt.datetime, limit: int,
              offset: int) -> dict:
    """The user's keys, newest first, each with its status (never a secret or its hash)."""
    keys, total = page(session, select(ApiKey).where(ApiKey.user_id == user.id),
                       (ApiKey.id.desc(),), limit, offset)
    return {"user_id": user.id, "keys": [to_dict(k, user, now) for k in keys],
            "total": total, "limit": limit, "offset": offset}


def revoke(session: Session, user_id: int, key_id: int, now: dt.datetime) -> ApiKey:
    """Revoke key ``key_id`` of ``user_id`` (NotFound if it is not theirs, the same answer
    as for no such key); revoking it again changes nothing."""
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id).with_for_update())
    if key is None or key.user_id != user_id:
        raise NotFound(NO_SUCH_KEY)
    if key.revoked_at is None:
        key.revoked_at = now
    return key


def state(session: Session, key_id: int, presented: str, now: dt.datetime) -> dict:
    """What a gateway needs to judge any request carrying key ``key_id`` (and keeps for
    BERTH_TOKEN_CHECK_SECONDS): whether it is usable apart from its expiry, which the gateway
    checks itself, its owner as they are now, its scopes and the digest of its secret. When
    ``presented`` (the digest of the secret a request carried) matches, the key's last use is
    recorded, at most once per LAST_USED_GRANULARITY."""
    key = session.get(ApiKey, key_id)
    owner = session.get(User, key.user_id) if key is not None else None
    if key is None or owner is None:
        return {"key_id": key_id, "exists": False, "usable": False}
    usable = status(key, owner, now) in ("active", "expired")  # expiry: the gateway's clock
    if usable and key.expires_at > now and hmac.compare_digest(presented, key.secret_hash) \
            and (key.last_used_at is None or now - key.last_used_at >= LAST_USED_GRANULARITY):
        key.last_used_at = now
    return {"key_id": key.id, "exists": True, "usable": usable, "user_id": owner.id,
            "username": owner.username, "role": owner.role, "scopes": list(key.scopes),
            "secret_hash": key.secret_hash, "expires_at": key.expires_at.timestamp()}
