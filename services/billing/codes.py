"""Serial codes: 95 random bits from the OS CSPRNG in Crockford base32, plus a check character.

A code is 19 random symbols and one Luhn mod 32 check symbol, shown in groups of five:
``7KQ2M-XW4TB-9HD3R-F6JNC``. Typing is forgiving (case, spaces, hyphens, O for 0, I or L for 1);
the check symbol catches every single mistyped symbol and every swap of two adjacent symbols
except 0<->Z (Luhn's one blind pair) before the database is asked.
"""
from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
RANDOM_SYMBOLS = 19  # 19 * 5 = 95 bits
LENGTH = RANDOM_SYMBOLS + 1
GROUP = 5
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_TYPOS = str.maketrans({"O": "0", "I": "1", "L": "1"})


def check_symbol(body: str) -> str:
    """Luhn mod N over the alphabet (N = 32)."""
    n = len(ALPHABET)
    factor, total = 2, 0
    for char in reversed(body):
        addend = factor * _VALUE[char]
        factor = 1 if factor == 2 else 2
        total += addend // n + addend % n
    return ALPHABET[(n - total % n) % n]


def generate() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_SYMBOLS))
    return body + check_symbol(body)


def normalise(text: str) -> str | None:
    """The canonical 20-symbol form, or None if it is not a well-formed code."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    code = text.upper().replace("-", "").replace(" ", "").translate(_TYPOS)
    if len(code) != LENGTH or any(c not in _VALUE for c in code):
        return None
    if check_symbol(code[:-1]) != code[-1]:
        return None
    return code


def display(code: str) -> str:
    return "-".join(code[i:i + GROUP] for i in range(0, len(code), GROUP))
