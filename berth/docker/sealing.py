"""Secrets Berth must keep but never show, sealed at rest: a remote engine's TLS client key.

A sealed value is ``sealed:v1:<Fernet token>`` (AES-128-CBC + HMAC-SHA256, from the
``cryptography`` package). ``BERTH_SECRETS_KEY`` holds one or more keys, comma-separated,
newest first: values are sealed with the first and unsealed with any of them, so a key is
rotated by putting a new one in front (values sealed with the old one keep working; they are
sealed with the new one when next written). Each key is any string of at least 32
characters; the Fernet key is derived from it with HKDF-SHA256. Development has a built-in
key; elsewhere sealing without ``BERTH_SECRETS_KEY`` is refused.

A value without the prefix is plaintext written before sealing existed; it is returned as is
(containers' migration 0004 seals such values).
"""
from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from berth.errors import ServiceUnavailable
from berth.settings import InsecureConfiguration, get_settings

PREFIX = "sealed:v1:"


class CannotUnseal(ServiceUnavailable):
    """No key in BERTH_SECRETS_KEY opens this value."""


def _fernet_key(secret: str) -> bytes:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"berth-sealing-v1",
                   info=b"fernet").derive(secret.encode())
    return base64.urlsafe_b64encode(derived)


def _box(keys: Sequence[str] | None) -> MultiFernet:
    if keys is None:
        try:
            keys = get_settings().sealing_keys
        except InsecureConfiguration as exc:
            raise ServiceUnavailable(str(exc)) from None
    return MultiFernet([Fernet(_fernet_key(k)) for k in keys])


def is_sealed(value: str | None) -> bool:
    return bool(value) and value.startswith(PREFIX)


def seal(value: str | None, keys: Sequence[str] | None = None) -> str | None:
    """``value`` sealed with the newest key (None and already sealed values pass through)."""
    if not value or is_sealed(value):
        return value
    return PREFIX + _box(keys).encrypt(value.encode()).decode()


def unseal(value: str | None, keys: Sequence[str] | None = None) -> str | None:
    """The plaintext of a sealed value (plaintext and None pass through)."""
    if not is_sealed(value):
        return value
    try:
        return _box(keys).decrypt(value[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise CannotUnseal("a sealed secret cannot be opened: BERTH_SECRETS_KEY does not hold "
                           "the key it was sealed with") from None
