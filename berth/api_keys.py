"""API keys: their format, and their scopes (what a key may do).

A key is ``berth_<id>_<secret>`` (sent as ``Authorization: Bearer <key>``): ``<id>`` is its
public integer id, ``<secret>`` 32 random bytes in URL-safe base64; only the SHA-256 of the
secret is stored (``services.users.api_keys``).

Every route the gateway declares needs one scope from an API key (``gateway.api``): a GET
needs ``read``; a write that only admins may make needs ``admin``; any other write needs its
blueprint's scope (``containers`` for container writes, ``billing`` for serial redeem and
generate and applying as a distributor); routes that manage credentials (API keys,
passwords, the e-mail address, logout, two-factor sign-in, roles) need ``NO_KEYS``, which no
key has: a leaked key cannot mint keys, change the password or lock its owner out.

A key's scopes are chosen when it is created, from those its owner's role allows
(``ROLE_SCOPES``); the key works only while its owner keeps that role (``services.users.
api_keys``). No flask, no nameko here: the gateway and the users service both read it.
"""
from __future__ import annotations

import hashlib

READ = "read"
CONTAINERS = "containers"
BILLING = "billing"
ADMIN = "admin"
SCOPES = (READ, CONTAINERS, BILLING, ADMIN)
NO_KEYS = "credentials"  # a route's scope that no key can hold: session tokens only

ROLE_SCOPES = {
    "user": frozenset({READ, CONTAINERS, BILLING}),
    "distributor": frozenset({READ, CONTAINERS, BILLING}),
    "admin": frozenset(SCOPES),
}

KEY_PREFIX = "berth_"  # every API key starts with it (a JWT starts with "eyJ")


def allowed(role: str) -> frozenset:
    """The scopes a key of someone with ``role`` may carry (none for an unknown role)."""
    return ROLE_SCOPES.get(role, frozenset())


def digest(secret: str) -> str:
    """The stored form of a key's secret. SHA-256 suits a uniformly random 256-bit secret:
    there is nothing to guess a word at a time, so a slow password hash would only slow
    every request."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(raw: str) -> tuple[int, str] | None:
    """``(id, secret)`` of a key in the ``berth_<id>_<secret>`` format, else None."""
    if not raw.startswith(KEY_PREFIX):
        return None
    key_id, _, secret = raw[len(KEY_PREFIX):].partition("_")
    if not (key_id.isascii() and key_id.isdigit() and 0 < len(key_id) <= 10
            and 20 <= len(secret) <= 128):
        return None
    return int(key_id), secret
