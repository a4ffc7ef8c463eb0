"""Signed tokens: access tokens (JWT HS256) and short-lived file links.

Access tokens carry ``sub`` (user id, a string as RFC 7519 wants), ``role``, ``username``,
``exp``, ``iat``, ``jti``, ``typ="access"``, ``sid`` (the session the login opened: logout
revokes it) and ``ver`` (the user's token version when it was issued: disabling the user, a
role change, a password change or reset raise it). Decoding requires all of them, so a token
without ``exp``, a file-link token, or an access token issued before sessions existed (no
``sid``/``ver``) is never accepted as a login. Whether the session and version are still
current is the gateway's check (``gateway.sessions``), not this module's. An access token may
also carry ``enrol_only: true`` (an admin without two-factor sign-in while
BERTH_REQUIRE_2FA_FOR_ADMINS is on): the gateway lets it reach only the enrolment routes.

A login challenge (``typ="login_challenge"``) is what a correct password earns when the
account has two-factor sign-in on: it names the user and their token version, lasts
``CHALLENGE_TTL_SECONDS`` and is good only for ``POST /api/login/2fa``; it is never an access
token. There is no refresh token: a second factor is needed at every login.
"""
from __future__ import annotations

import datetime as dt
import uuid

import jwt

from berth.db import utcnow
from berth.errors import Unauthorized

ALGORITHM = "HS256"
ACCESS = "access"
ACL_FILE = "acl_file"
LOGIN_CHALLENGE = "login_challenge"
CHALLENGE_TTL_SECONDS = 300
_REQUIRED = ["sub", "exp", "iat", "jti", "typ"]
SESSION_ENDED = "Session ended; sign in again"
LEEWAY_SECONDS = 30  # clock skew between the users hosts (issuing) and gateways (checking)


def issue(secret: str, typ: str, subject: int, ttl_seconds: int, **claims) -> str:
    now = utcnow()
    payload = {
        "sub": str(subject), "typ": typ, "jti": uuid.uuid4().hex,
        "iat": now, "exp": now + dt.timedelta(seconds=ttl_seconds), **claims,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def decode(secret: str, token: str, typ: str) -> dict:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], leeway=LEEWAY_SECONDS,
                            options={"require": _REQUIRED})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("Token has expired") from None
    except jwt.PyJWTError:
        raise Unauthorized("Invalid token") from None
    if claims.get("typ") != typ or not str(claims["sub"]).isdigit():
        raise Unauthorized("Invalid token")
    if typ == ACCESS and not (isinstance(claims.get("sid"), str) and claims["sid"]
                              and type(claims.get("ver")) is int):
        raise Unauthorized(SESSION_ENDED)  # issued before sessions existed: sign in again
    return claims


def issue_access_token(secret: str, user_id: int, role: str, username: str,
                       ttl_seconds: int, session_id: str, version: int,
                       enrol_only: bool = False) -> str:
    extra = {"enrol_only": True} if enrol_only else {}
    return issue(secret, ACCESS, user_id, ttl_seconds, role=role, username=username,
                 sid=session_id, ver=version, **extra)


def issue_challenge(secret: str, user_id: int, username: str, version: int) -> str:
    return issue(secret, LOGIN_CHALLENGE, user_id, CHALLENGE_TTL_SECONDS, username=username,
                 ver=version)


def challenge_subject(secret: str, token) -> int | None:
    """The user a login challenge names if it is one this installation signed (expired or
    not), else None: what the gateway's limits count a two-factor attempt against."""
    if not isinstance(token, str) or len(token) > 2048:
        return None
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM],
                            options={"verify_exp": False, "require": _REQUIRED})
    except jwt.PyJWTError:
        return None
    if claims.get("typ") != LOGIN_CHALLENGE or not str(claims["sub"]).isdigit():
        return None
    return int(claims["sub"])
