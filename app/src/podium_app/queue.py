"""The background queue (arq on Redis; docs/decisions/0011-job-queue.md).

Jobs: mail, fan-out of new posts into home feeds, removal of deleted posts from feeds,
admission of the waitlist at a set rate. Every job is idempotent, so arq's at-least-once
delivery and retries are safe; what Redis loses (feeds) rebuilds from PostgreSQL.
"""

from __future__ import annotations

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
