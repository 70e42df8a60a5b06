"""Follow edges with their counters and notifications."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from podium_app.errors import unprocessable
from podium_app.models import Account, Follow
from podium_app.services import accounts as account_service
from podium_app.services.statuses import notify


async def follow(session: AsyncSession, follower: Account, target: Account) -> bool:
    """True when a new edge was made (False: it existed)."""
    if follower.id == target.id:
        raise unprocessable("you cannot follow yourself")
    done = await session.execute(insert(Follow).values(
        account_id=follower.id, target_account_id=target.id)
        .on_conflict_do_nothing().returning(Follow.id))
    if done.first() is None:
        return False
    await account_service.bump(session, follower.id, following_count=1)
    await account_service.bump(session, target.id, followers_count=1)
    await notify(session, target.id, follower.id, "follow")
    return True


async def unfollow(session: AsyncSession, follower: Account, target: Account) -> bool:
    done = await session.execute(delete(Follow).where(
        Follow.account_id == follower.id, Follow.target_account_id == target.id)
        .returning(Follow.id))
    if done.first() is None:
        return False
    await account_service.bump(session, follower.id, following_count=-1)
    await account_service.bump(session, target.id, followers_count=-1)
    return True


async def relationships(session: AsyncSession, viewer: Account,
                        targets: list[uuid.UUID]) -> tuple[set, set]:
    following = set((await session.scalars(select(Follow.target_account_id).where(
        Follow.account_id == viewer.id, Follow.target_account_id.in_(targets)))).all())
    followed_by = set((await session.scalars(select(Follow.account_id).where(
        Follow.target_account_id == viewer.id, Follow.account_id.in_(targets)))).all())
    return following, followed_by
