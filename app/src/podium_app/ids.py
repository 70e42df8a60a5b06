"""Identifiers: time-sortable, not enumerable (docs/decisions/0010-ids.md).

An id is 128 bits: the creation time in milliseconds (48 bits) followed by 80 random bits.
PostgreSQL stores it as a native uuid (16 bytes, compared bytewise, so ordered by time);
clients see it as a decimal string, as Mastodon's ids are strings. A scraper that knows one
id learns nothing about the next: 80 random bits per millisecond.
"""

from __future__ import annotations

import secrets
import time
import uuid

RANDOM_BITS = 80


def new_id(at_ms: int | None = None) -> uuid.UUID:
    ms = int(time.time() * 1000) if at_ms is None else at_ms
    return uuid.UUID(int=(ms << RANDOM_BITS) | secrets.randbits(RANDOM_BITS))


def floor_id(at_ms: int) -> uuid.UUID:
    """The smallest id of a millisecond (for time-based pagination bounds)."""
    return uuid.UUID(int=at_ms << RANDOM_BITS)


def to_str(value: uuid.UUID) -> str:
    return str(value.int)


def parse(text: str | int | None) -> uuid.UUID | None:
    """A client-supplied id -> uuid, or None when it is not one of ours (never raises)."""
    if text is None:
        return None
    try:
        number = int(str(text).strip())
    except ValueError:
        return None
    if not 0 <= number < (1 << 128):
        return None
    return uuid.UUID(int=number)


def created_ms(value: uuid.UUID) -> int:
    return value.int >> RANDOM_BITS
