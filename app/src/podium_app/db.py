"""Database engines and sessions: one for writes (via PgBouncer), an optional one for reads.

Reads go to the hot-standby replica (PODIUM_DATABASE_READ_URL) only while it is close enough
to the primary: a per-process monitor asks the replica for ``podium_ops.replica_lag_seconds()``
(the postgres role's function: 0 when it has replayed all it received, seconds behind
otherwise, NULL when it is not streaming) every PODIUM_DATABASE_READ_CHECK_INTERVAL seconds,
off the request path. The replica is used while the last answer is a number no greater than
PODIUM_DATABASE_READ_MAX_LAG and not older than three intervals; an error, a NULL or a stale
answer sends reads to the primary until the next good check. Callers that must see their own
writes ask for the primary (docs/decisions/0150-replica-reads.md).

Both URLs may list several hosts (``?host=A:6432&host=B:6432&target_session_attrs=read-write``,
libpq's form). Each new connection then goes to the first host that offers the session asked
for, trying the host that answered last time first and giving each host
PODIUM_DATABASE_CONNECT_TIMEOUT seconds: after a replica is promoted the app's next connection
finds it, with no change to the settings (docs/decisions/0160-failover-multi-host-url.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
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
    engine = create_async_engine(
        url,
        # All kept, none overflow: an overflow connection is closed when it is returned, so
        # a worker busier than its pool would open one per request (a backend forked, or a
        # SCRAM handshake with PgBouncer). Requests past the pool wait for a connection
        # (docs/decisions/0302-database-pool-holds-a-workers-concurrency.md).
        pool_size=settings.database_pool_size,
        max_overflow=0,
        # The pre-ping is ours (ping below): SQLAlchemy's takes three round trips.
        pool_pre_ping=False,
        connect_args={**connect_args, **host_list_args(url, settings)},
    )
    event.listen(engine.sync_engine.pool, "checkout", ping)
    return engine


PING = "SELECT 1"


def ping(dbapi_connection, connection_record, connection_proxy) -> None:
    """Pool ``checkout`` listener: a pooled connection to a host that went away (a restarted
    PostgreSQL or PgBouncer, a failover: docs/decisions/0160) is dropped when it is checked
    out, not handed to a request. Raises DisconnectionError for any failure, which makes the
    pool discard the connection and check out another (a new one after a disconnect).

    One round trip: ``SELECT 1`` in the simple query protocol (no Parse/Bind, no prepared
    statement, fine behind PgBouncer in transaction mode). SQLAlchemy's own
    ``pool_pre_ping`` on asyncpg sends BEGIN, ``;`` and ROLLBACK, three round trips on every
    request (docs/decisions/0290-home-read-ping-and-feed-script.md)."""
    try:
        dbapi_connection.run_async(lambda conn: conn.execute(PING))
    except Exception as err:  # whatever went wrong, this connection is not to be used
        raise DisconnectionError(f"database connection failed its ping: "
                                 f"{type(err).__name__}: {err}") from err


def host_list_args(url: str, settings: Settings) -> dict:
    """``connect_args`` for an engine on ``url``: with hosts in its query (libpq's form),
    SQLAlchemy hands the driver's arguments, the host and port lists among them, to a
    HostList instead of asyncpg.connect. Every engine on the app's URLs needs them (asyncpg's
    own host list would refuse a promoted replica's PgBouncer: see HostList)."""
    if "host" not in make_url(url).query:
        return {}
    return {"async_creator_fn": HostList(settings.database_connect_timeout).connect}


# What each target_session_attrs value accepts, by whether the session is read-only; the
# value "prefer-standby" also takes a read-write host when no read-only one answers.
SESSION_KINDS: dict[str, Callable[[bool], bool]] = {
    "any": lambda read_only: True,
    "read-write": lambda read_only: not read_only,
    "primary": lambda read_only: not read_only,
    "read-only": lambda read_only: read_only,
    "standby": lambda read_only: read_only,
    "prefer-standby": lambda read_only: read_only,
}


@dataclass
class HostList:
    """Connections to the first of several PostgreSQL hosts (or the PgBouncers in front of
    them) that offers the session kind asked for (``target_session_attrs``).

    asyncpg takes host lists too, but under one timeout for the whole list: a host that does
    not answer at all (a stopped server whose address drops packets) would use it up before
    the next host is tried. Here each host gets ``timeout`` seconds; the host chosen last time
    is tried first, and a host that failed to answer in the last ``retry_after`` seconds last
    (so after a primary dies only the first connection of a process waits for it). A session
    is read-only when ``transaction_read_only`` is on (a hot standby, or a database set
    read-only); it is asked with a query, not read from the parameters the server reports at
    login, which PgBouncer answers from its cache (stale after a promotion)."""

    timeout: float
    connect_fn: Callable[..., Awaitable[asyncpg.Connection]] = asyncpg.connect
    retry_after: float = 30.0
    clock: Callable[[], float] = time.monotonic
    preferred: tuple[str, int] | None = None
    failed: dict[tuple[str, int], float] = field(default_factory=dict)

    async def connect(self, *, host: str | list[str], port: int | list[int] | None = None,
                      target_session_attrs: str = "any", **options) -> asyncpg.Connection:
        """A connection of the kind asked for. Raises ConnectionError naming every host and
        why it was refused when none offers one, ValueError for an unknown kind."""
        if target_session_attrs not in SESSION_KINDS:
            raise ValueError(f"target_session_attrs={target_session_attrs!r} in the database "
                             f"URL: use one of {', '.join(SESSION_KINDS)}")
        accepts = SESSION_KINDS[target_session_attrs]
        hosts = [host] if isinstance(host, str) else list(host)
        ports = port if isinstance(port, list) else [port or 5432] * len(hosts)
        now = self.clock()
        targets = sorted(zip(hosts, ports, strict=True), key=lambda target: (
            now - self.failed.get(target, -self.retry_after) < self.retry_after,
            target != self.preferred))
        fallback: tuple[tuple[str, int], asyncpg.Connection] | None = None
        refused = []
        for target in targets:
            conn = None
            try:
                conn = await self.connect_fn(host=target[0], port=target[1],
                                             timeout=self.timeout, **options)
                read_only = await conn.fetchval(
                    "SELECT current_setting('transaction_read_only') = 'on'",
                    timeout=self.timeout)
            except (OSError, TimeoutError, asyncpg.PostgresError,
                    asyncpg.InterfaceError) as err:
                refused.append(f"{target[0]}:{target[1]}: {type(err).__name__}: {err}")
                self.failed[target] = self.clock()
                if conn is not None:
                    conn.terminate()
                continue
            self.failed.pop(target, None)
            if accepts(read_only):
                if fallback is not None:
                    fallback[1].terminate()
                self.preferred = target
                return conn
            if target_session_attrs == "prefer-standby" and fallback is None:
                fallback = (target, conn)
                continue
            conn.terminate()
            refused.append(f"{target[0]}:{target[1]}: {'read-only' if read_only else 'read-write'}")
        if fallback is not None:
            self.preferred = fallback[0]
            return fallback[1]
        raise ConnectionError(f"no database host offers a {target_session_attrs} session: "
                              + "; ".join(refused))


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

    def read_only_engine(self, replica: bool) -> AsyncEngine:
        """The engine of read_only_sessions(replica), for a connection without a session
        (podium_app/homefast.py)."""
        if replica:
            metrics.DB_READS.labels("replica").inc()
            return self.replica_statement_sessions.kw["bind"]
        return self.statement_sessions.kw["bind"]

    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def dispose(self) -> None:
        if self.replica is not None:
            await self.replica.stop()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
