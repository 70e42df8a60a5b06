"""The default pool holds a web worker's usual concurrency without opening connections per
request (docs/decisions/0302-database-pool-holds-a-workers-concurrency.md).

A home read keeps its connection for the whole request. Past `pool_size` checkouts at once,
SQLAlchemy opens overflow connections and closes them again on return, since the pool keeps
only `pool_size`. Each such request pays a new connection: a PostgreSQL backend forked, or a
SCRAM handshake with PgBouncer. At 16 connections on one worker, that halved the rate and
made the p99 five times longer (docs/perf.md, session 15).
"""

import asyncio

from podium_app.db import Database
from podium_app.settings import Settings
from sqlalchemy import event, text

CONCURRENT = 16  # the bench's connections on one worker


def test_sixteen_concurrent_requests_reuse_the_pools_connections(base_settings):
    settings = Settings(_env_file=None, database_url=base_settings.database_url,
                        redis_url=base_settings.redis_url, database_pgbouncer=False)

    async def run() -> int:
        db = Database.from_settings(settings)
        opened: list[object] = []
        event.listen(db.writer.sync_engine.pool, "connect", lambda *args: opened.append(1))

        async def request() -> None:
            async with db.writer.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(0.05)"))

        try:
            for _ in range(3):  # three bursts, as a loaded worker sees them over and over
                await asyncio.gather(*(request() for _ in range(CONCURRENT)))
            return len(opened)
        finally:
            await db.dispose()

    # 16 in the first burst, none after. With the old default of 10, each burst after the
    # first opened 6 more.
    assert asyncio.run(run()) == CONCURRENT
    assert settings.database_pool_size >= CONCURRENT
