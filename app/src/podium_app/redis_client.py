"""The shared Redis client (home feeds, rate limits, queue depth)."""

from __future__ import annotations

from redis.asyncio import Redis

from podium_app.settings import Settings


def make_redis(settings: Settings) -> Redis:
    return Redis.from_url(settings.redis_url, decode_responses=False,
                          socket_connect_timeout=2, socket_timeout=5,
                          health_check_interval=30)
