"""Alembic environment: runs migrations over the app's async engine (PODIUM_DATABASE_URL)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from podium_app.db import host_list_args
from podium_app.models import Base
from podium_app.settings import get_settings

target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _online() -> None:
    settings = context.config.attributes.get("settings") or get_settings()
    # Migrations take locks and run DDL: no PgBouncer-specific options needed, but they work
    # through it in transaction mode as each migration is one transaction.
    engine = create_async_engine(settings.database_url, connect_args={
        "statement_cache_size": 0, **host_list_args(settings.database_url, settings)})
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


asyncio.run(_online())
