"""Account deletion: real deletion, as for posts (issue 3: rows, media and cached copies).

Two steps:
1. `schedule` (web settings with the password, admin API, `podium-app delete-account`):
   at once the account is hidden like a suspended one (its content disappears from every
   page and timeline, its tokens are revoked, it can no longer log in) and a queue job is
   enqueued by the caller after the commit.
2. `purge` (the `delete_account` job, idempotent): the other accounts' counters are
   corrected, the account row is deleted (the database CASCADEs to its posts, reposts, likes,
   follows, mentions, notifications, media rows, tokens, reports filed by it), then its
   files at the media origin, its posts in followers' Redis feeds and its own feed go.
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from podium_app.db import Database
from podium_app.media import service as media_service
from podium_app.media import storage
from podium_app.models import Account, Favourite, Follow, MediaAttachment, Status
from podium_app.services import accounts as account_service
from podium_app.services import feeds


async def schedule(session: AsyncSession, account: Account) -> None:
    """Hide the account now (not committed); enqueue `delete_account` after the commit."""
    account.suspended_at = account.suspended_at or account_service.now()
    await account_service.revoke_tokens(session, account.id)


async def _fix_counters(session: AsyncSession, account_id: uuid.UUID) -> None:
    """Counters the CASCADE would leave wrong on other accounts and posts."""
    followed = select(Follow.target_account_id).where(Follow.account_id == account_id)
    followers = select(Follow.account_id).where(Follow.target_account_id == account_id)
    await session.execute(update(Account).where(Account.id.in_(followed))
                          .values(followers_count=func.greatest(Account.followers_count - 1, 0)))
    await session.execute(update(Account).where(Account.id.in_(followers))
                          .values(following_count=func.greatest(Account.following_count - 1, 0)))
    liked = select(Favourite.status_id).where(Favourite.account_id == account_id)
    await session.execute(update(Status).where(Status.id.in_(liked)).values(
        favourites_count=func.greatest(Status.favourites_count - 1, 0)))
    mine = aliased(Status)
    for column, link in ((Status.replies_count, mine.in_reply_to_id),
                         (Status.reblogs_count, mine.reblog_of_id)):
        per_target = (select(link.label("target"), func.count().label("n"))
                      .where(mine.account_id == account_id, link.is_not(None))
                      .group_by(link).subquery())
        await session.execute(
            update(Status).where(Status.id == per_target.c.target,
                                 Status.account_id != account_id)
            .values({column.key: func.greatest(column - per_target.c.n, 0)}))
    # Other accounts' reposts of this account's posts go with them (CASCADE).
    theirs = aliased(Status)
    reposters = (select(theirs.account_id, func.count().label("n"))
                 .join(Status, Status.id == theirs.reblog_of_id)
                 .where(Status.account_id == account_id, theirs.account_id != account_id)
                 .group_by(theirs.account_id).subquery())
    await session.execute(update(Account).where(Account.id == reposters.c.account_id).values(
        statuses_count=func.greatest(Account.statuses_count - reposters.c.n, 0)))


async def purge(db: Database, redis: Redis, store: storage.Storage, account_id: str) -> dict:
    """The `delete_account` job. Returns what was deleted (counts), {} if already gone."""
    aid = uuid.UUID(account_id)
    async with db.sessions() as session:
        account = await session.get(Account, aid)
        if account is None:
            return {}
        reposts = aliased(Status)
        status_ids = list((await session.scalars(select(Status.id).where(or_(
            Status.account_id == aid,
            Status.reblog_of_id.in_(select(reposts.id).where(reposts.account_id == aid))))
        )).all())
        files = [name for row in (await session.execute(
            select(MediaAttachment.file_name, MediaAttachment.preview_name)
            .where(MediaAttachment.account_id == aid))).all() for name in row if name]
        followers = list((await session.scalars(select(Follow.account_id).where(
            Follow.target_account_id == aid))).all())
        await _fix_counters(session, aid)
        await session.execute(delete(Account).where(Account.id == aid))
        await session.commit()
        # Files no remaining row uses (identical uploads by others share a name).
        await media_service.delete_unreferenced(session, store, files)
    members = [i.hex for i in status_ids]
    async with redis.pipeline(transaction=False) as pipe:
        if members:
            for follower in followers:
                pipe.zrem(feeds.feed_key(follower), *members)
        pipe.delete(feeds.feed_key(aid), feeds.built_key(aid))
        await pipe.execute()
    # The names go on to the purge_media job (origin again with retries, then the edges).
    return {"statuses": len(status_ids), "files": len(set(files)), "followers": len(followers),
            "names": sorted(set(files))}
