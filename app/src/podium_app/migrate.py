"""Alembic, driven from code: the migrations ship inside the wheel."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from podium_app.settings import Settings

HERE = Path(__file__).parent


def config(settings: Settings | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    if settings is not None:
        cfg.attributes["settings"] = settings
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(config()).get_current_head()


def schema_state(current: str | None) -> str:
    """'ok' when the database schema suits this release's code, else why not.

    A revision this release does not know is a later release's migration: migrations keep
    the previous release working (add first, remove a release later), so the code still
    serves while a rolling deploy has migrated ahead of it. A known revision other than the
    head is older than the code needs: not ready.
    """
    head = head_revision()
    if current == head:
        return "ok"
    if current is None:
        return f"not migrated, head is {head}"
    try:
        known = ScriptDirectory.from_config(config()).get_revision(current) is not None
    except Exception:  # alembic raises for revisions missing from the scripts
        known = False
    return f"at {current}, head is {head}" if known else "ok"


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision())


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(config(settings), revision)
