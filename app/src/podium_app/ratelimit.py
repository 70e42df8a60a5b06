"""Rate limits in Redis: fixed windows per (limit, subject); 429 with Retry-After when over.

A limit is "COUNT/SECONDS" (settings). When Redis is unreachable the limit is not enforced
(logged): refusing every sign-up because the limiter is down would be worse than a burst.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from podium_app.errors import ApiError
from podium_app.settings import Settings

log = logging.getLogger("podium_app.ratelimit")


async def hit(redis: Redis, name: str, subject: str, rule: str) -> None:
    """Count one event; raise ApiError(429) with Retry-After when the window is full."""
    count, seconds = Settings.parse_rate(rule)
    now = int(time.time())
    window = now // seconds
    key = f"podium:rl:{name}:{subject}:{window}"
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, seconds + 1)
            used, _ = await pipe.execute()
    except RedisError as err:
        log.warning("rate limit %s not enforced: Redis error %s", name, err)
        return
    if int(used) > count:
        retry_after = (window + 1) * seconds - now
        raise ApiError(429, "Too many requests", headers={"Retry-After": str(max(retry_after, 1))})
