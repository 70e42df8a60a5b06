"""Database engines and sessions: one for writes (via PgBouncer), an optional one for reads.

Reads go to the hot-standby replica (PODIUM_DATABASE_READ_URL) only while it is close enough
to the primary: a per-process monitor asks the replica for ``podium_ops.replica_lag_seconds()``
(the postgres role's function: 0 when it has replayed all it received, seconds behind
otherwise, NULL when it is not streaming) every PODIUM_DATABASE_READ_CHECK_INTERVAL seconds,
off the request path. The replica is used while the last answer is a number no greater than
PODIUM_DATABASE_READ_MAX_LAG and not older than three intervals; an error, a NULL or a stale
answer sends reads to the primary until the next good check. Callers that must see their own
writes ask for the primary (docs/decisions/0150-replica-reads.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from podium_app import metrics
from podium_app.settings import Settings

log = logging.getLogger("podium_app.db")
LAG_QUERY = text("SELECT podium_ops.replica_lag_seconds()")


def make_engine(url: str, settings: Settings, pgbouncer: bool | None = None) -> AsyncEngine:
    connect_args: dict = {}
    if settings.database_pgbouncer if pgbouncer is None else pgbouncer:
        # PgBouncer in transaction mode hands each transaction any server connection: named
        # prepared statements would leak between clients, so keep none.
        connect_args = {
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": lambda: f"__podium_{uuid.uuid4().hex}__",
        }
    return create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


@dataclass
class ReplicaMonitor:
    """Whether the replica may serve reads now (see the module doc). ``check()`` asks the
    replica once; ``run()`` checks forever; ``usable`` reads the last answer (no I/O)."""

    engine: AsyncEngine
    max_lag: float
    interval: float
    clock: Callable[[], float] = time.monotonic
    lag: float | None = None
    checked_at: float | None = None
    _task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def usable(self) -> bool:
        if self.checked_at is None or self.lag is None:
            return False
        return self.lag <= self.max_lag and self.clock() - self.checked_at <= 3 * self.interval

    async def check(self) -> float | None:
        """The replica's lag in seconds, or None (not streaming, unreachable, too slow)."""
        try:
            async with asyncio.timeout(max(self.interval, 1.0)), self.engine.connect() as conn:
                value = await conn.scalar(LAG_QUERY)
            lag = None if value is None else float(value)
        except Exception as err:  # any failure means: do not read from it
            if self.lag is not None or self.checked_at is None:
                log.warning("replica unusable, reads go to the primary: %s: %s",
                            type(err).__name__, err)
            lag = None
        self.lag, self.checked_at = lag, self.clock()
        metrics.REPLICA_LAG.set(float("nan") if lag is None else lag)
        metrics.REPLICA_USABLE.set(1 if self.usable else 0)
        return lag

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Start ``run()`` in the running event loop (once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(),
                                                                name="replica-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


@dataclass
class Database:
    writer: AsyncEngine
    reader: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    replica_sessions: async_sessionmaker[AsyncSession]
    replica: ReplicaMonitor | None = None
    # Same pools, no BEGIN/ROLLBACK around the statements: for the read-only routes
    # (readrouting.READ_ONLY_ROUTES). Under READ COMMITTED every statement takes its own
    # snapshot inside a transaction too, so a read loses nothing; it saves two round trips.
    statement_sessions: async_sessionmaker[AsyncSession] | None = None
    replica_statement_sessions: async_sessionmaker[AsyncSession] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, use_replica: bool = True) -> Database:
        """Engines for ``settings``. ``use_replica=False`` (the queue worker: its jobs read
        what the request that queued them has just written) never reads from the replica."""
        writer = make_engine(settings.database_url, settings)
        replica = None
        reader = writer
        if settings.database_read_url and use_replica:
            # Direct to the replica's PostgreSQL (no PgBouncer in front of it): the per-process
            # pool may keep its prepared statements.
            reader = make_engine(settings.database_read_url, settings,
                                 pgbouncer=settings.database_read_pgbouncer)
            replica = ReplicaMonitor(reader, settings.database_read_max_lag,
                                     settings.database_read_check_interval)
        def autocommit(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
            return async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"),
                                      expire_on_commit=False)

        return cls(
            writer=writer,
            reader=reader,
            sessions=async_sessionmaker(writer, expire_on_commit=False),
            replica_sessions=async_sessionmaker(reader, expire_on_commit=False),
            replica=replica,
            statement_sessions=autocommit(writer),
            replica_statement_sessions=autocommit(reader),
        )

    def start(self) -> None:
        """Start watching the replica's lag (in the running event loop)."""
        if self.replica is not None:
            self.replica.start()

    def replica_usable(self) -> bool:
        return self.replica is not None and self.replica.usable

    def read_sessions(self, primary: bool = False) -> AsyncSession:
        """A session for read-only work: on the replica while it is usable and ``primary`` is
        false, else on the primary. Nothing may be written through it (the replica refuses)."""
        if not primary and self.replica_usable():
            metrics.DB_READS.labels("replica").inc()
            return self.replica_sessions()
        metrics.DB_READS.labels("primary").inc()
        return self.sessions()

    def read_only_sessions(self, replica: bool) -> AsyncSession:
        """A session without a transaction for a read-only request, on the replica or the
        primary (the caller has decided which). Every statement commits on its own: never
        write through it."""
        if replica:
            metrics.DB_READS.labels("replica").inc()
            return self.replica_statement_sessions()
        return self.statement_sessions()

    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def dispose(self) -> None:
        if self.replica is not None:
            await self.replica.stop()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
