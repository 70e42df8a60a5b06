"""Database engines and sessions: one for writes (via PgBouncer), an optional one for reads."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from podium_app.settings import Settings


def make_engine(url: str, settings: Settings) -> AsyncEngine:
    connect_args: dict = {}
    if settings.database_pgbouncer:
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
class Database:
    writer: AsyncEngine
    reader: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    read_sessions: async_sessionmaker[AsyncSession]

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        writer = make_engine(settings.database_url, settings)
        reader = (make_engine(settings.database_read_url, settings)
                  if settings.database_read_url else writer)
        return cls(
            writer=writer,
            reader=reader,
            sessions=async_sessionmaker(writer, expire_on_commit=False),
            read_sessions=async_sessionmaker(reader, expire_on_commit=False),
        )

    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
