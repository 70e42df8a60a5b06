"""The background queue (arq on Redis; docs/decisions/0011-job-queue.md).

Jobs: mail, fan-out of new posts into home feeds, removal of deleted posts from feeds,
admission of the waitlist at a set rate. Every job is idempotent, so arq's at-least-once
delivery and retries are safe; what Redis loses (feeds) rebuilds from PostgreSQL.
"""

from __future__ import annotations

import time

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from podium_app.settings import Settings

QUEUE_NAME = "podium:queue"


def redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(settings.redis_url)


async def connect(settings: Settings) -> ArqRedis:
    return await create_pool(redis_settings(settings), default_queue_name=QUEUE_NAME)


async def depth(queue: ArqRedis) -> int:
    return int(await queue.zcard(QUEUE_NAME))


async def oldest_age(queue: ArqRedis) -> float:
    """Seconds the oldest due job has waited (0 when none is due).

    arq scores each queued job with the time it is due, in milliseconds: the enqueue time,
    or later for a deferred job, which is not late until then.
    """
    oldest = await queue.zrange(QUEUE_NAME, 0, 0, withscores=True)
    if not oldest:
        return 0.0
    return max(0.0, time.time() - oldest[0][1] / 1000)
