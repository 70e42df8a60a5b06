"""The pool's pre-ping (podium_app/db.py, ``ping``): one ``SELECT 1`` per checkout, and a
pooled connection whose server side is gone is replaced, not handed to a request."""

import asyncio

from podium_app.db import Database
from sqlalchemy import text


def test_a_pooled_connection_is_checked_out_after_one_select_1(base_settings):
    async def run() -> list[str]:
        db = Database.from_settings(base_settings)
        sent: list[str] = []
        try:
            async with db.writer.connect() as conn:
                raw = await conn.get_raw_connection()
                raw.driver_connection.add_query_logger(lambda record: sent.append(record.query))
            await asyncio.sleep(0.05)  # asyncpg calls its query loggers soon, not at once
            sent.clear()
            async with db.writer.connect() as conn:
                await asyncio.sleep(0.05)
                at_checkout = list(sent)
                await conn.execute(text("SELECT 2"))
            await asyncio.sleep(0.05)
            # The logger sees what is sent afterwards too (the statement's transaction).
            assert sent[len(at_checkout):] == ["BEGIN;", "ROLLBACK;"], sent
            return at_checkout
        finally:
            await db.dispose()

    # SQLAlchemy's own pool_pre_ping sends "BEGIN;", ";", "ROLLBACK;" here.
    assert asyncio.run(run()) == ["SELECT 1"]


def test_a_pooled_connection_whose_backend_was_terminated_is_replaced(base_settings):
    async def run() -> tuple[int, int]:
        db, admin = Database.from_settings(base_settings), Database.from_settings(base_settings)
        try:
            async with db.writer.connect() as conn:
                first = await conn.scalar(text("SELECT pg_backend_pid()"))
            async with admin.writer.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            await asyncio.sleep(0.2)
            async with db.writer.connect() as conn:
                return first, await conn.scalar(text("SELECT pg_backend_pid()"))
        finally:
            await db.dispose()
            await admin.dispose()

    first, second = asyncio.run(run())
    assert second != first
