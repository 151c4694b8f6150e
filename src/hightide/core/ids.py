"""Identifiers: a prefix, milliseconds and a random part, monotonic within a process, so that ids
sort by creation (runs triggered in one batch keep their order)."""

from __future__ import annotations

import secrets
import threading

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_lock = threading.Lock()
_last = (-1, 0)  # (milliseconds, random part) of the last id made here


def _b32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str, now: float) -> str:
    """``prefix_`` + 10 chars of milliseconds + 12 chars of randomness, e.g. ``run_01jd3k...``.
    Within the same millisecond the random part counts up (a monotonic ULID)."""
    global _last
    ms = int(now * 1000)
    with _lock:
        last_ms, last_rand = _last
        rand = last_rand + 1 if ms == last_ms else secrets.randbits(59)
        _last = (ms, rand)
    return f"{prefix}_{_b32(ms, 10)}{_b32(rand, 12)}"


def new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(24)}"
