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


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision())


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(config(settings), revision)
