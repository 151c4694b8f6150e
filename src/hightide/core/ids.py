"""Identifiers: a prefix and a time-ordered random part, so that ids sort by creation."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _b32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str, now: float) -> str:
    """``prefix_`` + 10 chars of milliseconds + 12 random chars, e.g. ``run_01jd3k...``."""
    return f"{prefix}_{_b32(int(now * 1000), 10)}{_b32(secrets.randbits(60), 12)}"


def new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(24)}"
