"""Instance settings changed at run time by admins (docs/decisions/0120-runtime-settings.md).

The PODIUM_* environment (or env file) gives the defaults; rows of `instance_settings`
override the keys in RUNTIME_KEYS. Every process reads the table at most once per
CACHE_SECONDS and applies the rows over its own settings, so a change made on one app server,
by the worker or by `podium-app settings set` is in force everywhere within that time (at
once in the process that made it).

Entry points: `load_into_request` (the app-wide dependency that puts the effective settings
on `request.state.settings`), `of(request)`, `effective(db, base)` for the worker, and
`update(session, actor, changes)` for the admin page and the command.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from podium_app.db import Database
from podium_app.errors import ApiError, _describe
from podium_app.models import Account, AuditEntry, InstanceSetting
from podium_app.settings import Mode, RegistrationMode, Settings

log = logging.getLogger("podium_app")

CACHE_SECONDS = 2.0
READ_TIMEOUT = 1.0  # seconds; a slower database leaves the last values in force
Rate = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,8}/[1-9][0-9]{0,8}$")]


class Overrides(BaseModel):
    """The settings an admin may change at run time, with the same bounds as Settings."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode | None = None
    registration_mode: RegistrationMode | None = None
    waitlist_admit_per_hour: int | None = Field(None, ge=0, le=1_000_000)
    max_post_chars: int | None = Field(None, ge=1, le=100_000)
    rate_signup_ip: Rate | None = None
    rate_login_ip: Rate | None = None
    rate_post_account: Rate | None = None
    rate_post_ip: Rate | None = None


RUNTIME_KEYS = tuple(Overrides.model_fields)


def validate(changes: dict[str, Any]) -> dict[str, Any]:
    """Checked and converted values ('500' -> 500); ApiError 422 naming the key otherwise.
    Rates are 'COUNT/SECONDS'."""
    try:
        return Overrides.model_validate(changes).model_dump(exclude_unset=True)
    except ValidationError as err:
        raise ApiError(422, f"Validation failed: {_describe(err.errors())}") from err


async def stored(session: AsyncSession) -> dict[str, Any]:
    rows = (await session.execute(select(InstanceSetting.key, InstanceSetting.value))).all()
    # A key dropped from RUNTIME_KEYS by an upgrade is ignored, not fatal.
    return {key: value["v"] for key, value in rows if key in RUNTIME_KEYS}


class _Cache:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.read_at = float("-inf")
        self.merged: tuple[int, Settings, Settings] | None = None  # (id(base), base, result)

    def clear(self) -> None:
        self.read_at = float("-inf")
        self.merged = None

    async def overrides(self, db: Database) -> dict[str, Any]:
        if time.monotonic() - self.read_at < CACHE_SECONDS:
            return self.values
        try:
            async with asyncio.timeout(READ_TIMEOUT), db.sessions() as session:
                values = await stored(session)
        except (SQLAlchemyError, OSError, TimeoutError) as err:
            # The last values stay in force and the next try waits CACHE_SECONDS: /healthz
            # and Redis-only routes keep answering while the database is away.
            log.warning("instance settings not refreshed: %r", err)
            self.read_at = time.monotonic()
            return self.values
        if values != self.values:
            self.merged = None
        self.values, self.read_at = values, time.monotonic()
        return values

    async def effective(self, db: Database, base: Settings) -> Settings:
        values = await self.overrides(db)
        if not values:
            return base
        if self.merged is None or self.merged[0] != id(base) or self.merged[1] is not base:
            self.merged = (id(base), base, base.model_copy(update=values))
        return self.merged[2]


_cache = _Cache()


def forget() -> None:
    """Drop this process's cached copy (after a change, and in tests)."""
    _cache.clear()


async def effective(db: Database, base: Settings) -> Settings:
    """`base` with the stored overrides applied (cached for CACHE_SECONDS)."""
    return await _cache.effective(db, base)


async def load_into_request(request: Request) -> None:
    """App-wide dependency: the effective settings on request.state.settings."""
    request.state.settings = await effective(request.app.state.db, request.app.state.settings)


def of(request: Request) -> Settings:
    """The settings in force for this request."""
    return getattr(request.state, "settings", None) or request.app.state.settings


async def update(session: AsyncSession, actor: Account | None, changes: dict[str, Any],
                 *, via: str) -> dict[str, Any]:
    """Store validated changes (None resets a key to its default) with one audit-log entry
    naming each old and new value (not committed: commit, then `forget()`).
    Returns {key: [old, new]} of what changed; ApiError 422 for unknown keys or bad values."""
    unknown = set(changes) - set(RUNTIME_KEYS)
    if unknown:
        raise ApiError(422, f"Validation failed: unknown setting {', '.join(sorted(unknown))} "
                            f"(known: {', '.join(RUNTIME_KEYS)})")
    resets = [key for key, value in changes.items() if value is None]
    values = validate({k: v for k, v in changes.items() if v is not None})
    before = await stored(session)
    changed: dict[str, list] = {}
    for key, value in values.items():
        if before.get(key) != value:
            changed[key] = [before.get(key), value]
            await session.execute(insert(InstanceSetting).values(key=key, value={"v": value})
                                  .on_conflict_do_update(index_elements=["key"],
                                                         set_={"value": {"v": value}}))
    for key in resets:
        if key in before:
            changed[key] = [before[key], None]
            row = await session.get(InstanceSetting, key)
            if row is not None:
                await session.delete(row)
    if changed:
        session.add(AuditEntry(actor_id=actor.id if actor else None,
                               action="instance.settings", target_type="instance",
                               target_id="settings", detail={"changes": changed, "via": via}))
    await session.flush()
    return changed
