"""Statements built with SQLAlchemy Core, run on the asyncpg connection under a session.

The home timeline runs its four statements this way (docs/decisions/0250-home-read-raw-
asyncpg.md): the statement objects stay the single description of each query (built once,
bound parameters), but they are compiled to SQL text once per process and sent with
asyncpg's own `fetch`, whose statement cache keeps them prepared. That skips SQLAlchemy's
per-statement execution layers (session, greenlet bridge, result and ORM loading), which
cost more CPU per read than PostgreSQL spent on the queries.

Two executors with the same two methods let one function run on either path:
`Orm(session)` (ORM objects and result rows) and `Raw` (attribute-access rows from asyncpg
records). Rows of `Raw` are plain values read at the time of the statement: nothing is
cached between requests.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

_DIALECT = PGDialect_asyncpg()


class Compiled:
    """One statement as asyncpg takes it: SQL text with $n placeholders, and the names of
    its parameters in $n order (literal values from the statement as defaults)."""

    def __init__(self, statement) -> None:
        compiled = statement.compile(dialect=_DIALECT)
        self.sql = str(compiled)
        self.names = list(compiled.positiontup or ())
        self.defaults = dict(compiled.params)

    def args(self, values: dict[str, Any]) -> list:
        return [values[name] if name in values else self.defaults[name]
                for name in self.names]


# Keyed by the statement object's identity: the statements are module constants or built
# once per shape (functools.cache), so this holds a handful of entries per process. The
# statement is kept in the value so its id cannot be reused.
_compiled: dict[int, tuple[Any, Compiled]] = {}


def compiled(statement) -> Compiled:
    found = _compiled.get(id(statement))
    if found is None or found[0] is not statement:
        found = _compiled[id(statement)] = (statement, Compiled(statement))
    return found[1]


class Row:
    """A result row whose columns read as attributes (`row.id`), like the ORM objects the
    renderers were written for (plain instance attributes: the fastest to read)."""

    def __init__(self, items) -> None:
        self.__dict__.update(items)

    def __repr__(self) -> str:
        return f"Row({self.__dict__!r})"


class Raw:
    """Statements on an asyncpg connection (see the module doc). `session` is an ORM
    session on the same connection, for the parts still on the ORM (media attachments, a
    feed rebuild); without one given, it is opened when first asked for."""

    def __init__(self, connection, session: AsyncSession | None = None,
                 bind: AsyncConnection | None = None) -> None:
        self.connection = connection
        self._session = session
        self._bind = bind

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = AsyncSession(bind=self._bind, expire_on_commit=False)
        return self._session

    @classmethod
    async def of(cls, session: AsyncSession) -> Raw:
        """The asyncpg connection under `session` (checked out from the pool as the session
        would: same engine, pre-ping and isolation; with a read-only session, no
        transaction)."""
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        return cls(raw.driver_connection, session)

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, engine: AsyncEngine) -> AsyncIterator[Raw]:
        """A connection from `engine`'s pool (same pre-ping and isolation as a session on
        it) without an ORM session unless one is needed."""
        async with engine.connect() as bind:
            raw = await bind.get_raw_connection()
            run = cls(raw.driver_connection, bind=bind)
            try:
                yield run
            finally:
                if run._session is not None:
                    await run._session.close()

    async def _fetch(self, statement, values: dict[str, Any]) -> list:
        found = compiled(statement)
        return await self.connection.fetch(found.sql, *found.args(values))

    async def entities(self, statement, values: dict[str, Any]) -> list[Row]:
        return [Row(record.items()) for record in await self._fetch(statement, values)]

    async def tuples(self, statement, values: dict[str, Any]) -> list:
        return await self._fetch(statement, values)


class Orm:
    """The same two methods through the ORM session (every other route)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def entities(self, statement, values: dict[str, Any]) -> list:
        return list((await self.session.scalars(statement, values)).all())

    async def tuples(self, statement, values: dict[str, Any]) -> list:
        return list((await self.session.execute(statement, values)).all())
