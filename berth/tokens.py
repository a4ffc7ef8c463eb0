"""Signed tokens: access tokens (JWT HS256) and short-lived file links.

Access tokens carry ``sub`` (user id, a string as RFC 7519 wants), ``role``, ``username``,
``exp``, ``iat``, ``jti`` and ``typ="access"``; decoding requires all of them, so a token
without ``exp`` or a file-link token is never accepted as a login.
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
_REQUIRED = ["sub", "exp", "iat", "jti", "typ"]
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
    return claims


def issue_access_token(secret: str, user_id: int, role: str, username: str,
                       ttl_seconds: int) -> str:
    return issue(secret, ACCESS, user_id, ttl_seconds, role=role, username=username)
