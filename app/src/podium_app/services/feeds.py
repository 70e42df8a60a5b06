"""Home feeds in Redis (hybrid fan-out). Filled in with the timelines."""

from __future__ import annotations


async def fan_out(db, redis, settings, status_id: str) -> None:
    return None


async def remove_everywhere(redis, status_id: str) -> None:
    return None
