"""Home feeds: hybrid fan-out (docs/decisions/0012-hybrid-timelines.md).

- An account with fewer followers than PODIUM_FANOUT_THRESHOLD: each new post is pushed by a
  queue job into every follower's Redis feed (a sorted set, newest entries kept).
- An account at or above it: nothing is pushed; its posts are merged into the reader's home
  timeline at read time from PostgreSQL (one indexed query per page).
- Redis holds copies only. A feed whose marker key is missing (new reader, Redis restarted
  or flushed) is rebuilt from PostgreSQL on the next read.

Feed entries: member = status id as 32 hex digits (equal length, so members of equal score
sort by id), score = the id's millisecond timestamp.
"""

from __future__ import annotations

import functools
import hashlib
import time
import uuid

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError
from sqlalchemy import ARRAY, Integer, Select, bindparam, func, select, true, union_all
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from podium_app import ids, rawsql
from podium_app.db import Database
from podium_app.models import Account, Follow, Status
from podium_app.pagination import Page
from podium_app.settings import Settings

BATCH = 1000


def feed_key(account_id: uuid.UUID | str) -> str:
    return f"podium:feed:{account_id}"


def built_key(account_id: uuid.UUID | str) -> str:
    return f"podium:feed:{account_id}:built"


def _member(status_id: uuid.UUID) -> str:
    return status_id.hex


def _score(status_id: uuid.UUID) -> int:
    return ids.created_ms(status_id)


async def push(redis: Redis, settings: Settings, account_ids: list, status_id: uuid.UUID,
               ) -> None:
    """Add one status to several feeds that exist (a feed not built yet is left alone: it
    will be rebuilt from PostgreSQL with this post in it)."""
    async with redis.pipeline(transaction=False) as pipe:
        for account_id in account_ids:
            pipe.exists(built_key(account_id))
        present = await pipe.execute()
    async with redis.pipeline(transaction=False) as pipe:
        for account_id, built in zip(account_ids, present, strict=True):
            if built:
                key = feed_key(account_id)
                pipe.zadd(key, {_member(status_id): _score(status_id)})
                pipe.zremrangebyrank(key, 0, -settings.home_feed_length - 1)
        await pipe.execute()


async def fan_out(db: Database, redis: Redis, settings: Settings, status_id: str) -> int:
    """Queue job: push a new status to its author's followers (below the threshold only).
    Idempotent (ZADD of the same member). Returns the number of feeds written."""
    sid = uuid.UUID(status_id)
    async with db.read_sessions() as session:
        st = await session.get(Status, sid)
        if st is None or st.visibility == "direct":
            return 0
        author = await session.get(Account, st.account_id)
        if author is None or author.followers_count >= settings.fanout_threshold:
            return 0
        written = 0
        last = None
        while True:
            query = select(Follow.account_id).where(Follow.target_account_id == author.id)
            if last is not None:
                query = query.where(Follow.account_id > last)
            batch = (await session.scalars(query.order_by(Follow.account_id).limit(BATCH))).all()
            if not batch:
                break
            await push(redis, settings, list(batch), sid)
            written += len(batch)
            last = batch[-1]
    lag = time.time() - ids.created_ms(sid) / 1000
    await redis.set("podium:fanout:lag", f"{lag:.3f}")
    return written


async def remove_everywhere(db: Database, redis: Redis, status_ids: list[str],
                            author_id: str) -> None:
    """Queue job after a deletion: drop the statuses from the author's followers' feeds.
    (Reads skip entries whose row is gone anyway; this frees the space.)"""
    members = [uuid.UUID(s).hex for s in status_ids]
    async with db.read_sessions() as session:
        followers = (await session.scalars(select(Follow.account_id).where(
            Follow.target_account_id == uuid.UUID(author_id)))).all()
    async with redis.pipeline(transaction=False) as pipe:
        for account_id in [*followers, uuid.UUID(author_id)]:
            pipe.zrem(feed_key(account_id), *members)
        await pipe.execute()


# The home read builds its statements once per shape (which page bounds are given, whether
# the Redis part and a fallback are present) and binds the values on every call: building a
# LATERAL/UNION statement object cost more CPU per read than PostgreSQL spent running it
# (docs/perf.md, session 4).
UUIDS = ARRAY(UUID(as_uuid=True))


def _bounded(query, column, ascending: bool, has_max: bool, has_lower: bool, prefix: str):
    """Page.apply with bound parameters: {prefix}max, {prefix}lower, {prefix}limit."""
    if has_max:
        query = query.where(column < bindparam(f"{prefix}max", type_=UUID(as_uuid=True)))
    if has_lower:
        query = query.where(column > bindparam(f"{prefix}lower", type_=UUID(as_uuid=True)))
    order = column.asc() if ascending else column.desc()
    return query.order_by(order).limit(bindparam(f"{prefix}limit", type_=Integer))


def _sources(big: bool):
    """Account ids whose posts make up the viewer's home: followed accounts below the
    threshold plus the viewer (the fanned-out part), or followed accounts at or above it.
    Parameters: viewer_id, threshold."""
    viewer_id = bindparam("viewer_id", type_=UUID(as_uuid=True))
    threshold = bindparam("threshold", type_=Integer)
    followed = (select(Follow.target_account_id.label("account_id"))
                .join(Account, Account.id == Follow.target_account_id)
                .where(Follow.account_id == viewer_id))
    if big:
        return followed.where(Account.followers_count >= threshold)
    followed = followed.where(Account.followers_count < threshold)
    return followed.union_all(select(viewer_id))


@functools.cache
def _latest(big: bool, ascending: bool, has_max: bool, has_lower: bool, prefix: str = ""):
    """Ids of the page's statuses by the home sources, in one query that walks each source's
    (account_id, id) index for at most `limit` rows (a LATERAL join): cost grows with the
    number of followed accounts, not with the size of the statuses table."""
    sources = _sources(big).subquery()
    inner = select(Status.id).where(Status.account_id == sources.c.account_id,
                                    Status.visibility != "direct")
    per_source = _bounded(inner, Status.id, ascending, has_max, has_lower, prefix).lateral()
    column = per_source.c.id
    query = select(column).select_from(sources.join(per_source, true()))
    order = column.asc() if ascending else column.desc()
    return query.order_by(order).limit(bindparam(f"{prefix}limit", type_=Integer))


def _page_values(page: Page, prefix: str = "") -> dict:
    values = {f"{prefix}limit": page.limit}
    if page.max_id is not None:
        values[f"{prefix}max"] = page.max_id
    if page.lower() is not None:
        values[f"{prefix}lower"] = page.lower()
    return values


def _latest_for(page: Page, big: bool, prefix: str = ""):
    return _latest(big, page.ascending, page.max_id is not None, page.lower() is not None,
                   prefix)


async def rebuild(session: AsyncSession, redis: Redis, settings: Settings,
                  viewer: Account) -> None:
    page = Page(None, None, None, settings.home_feed_length)
    found = (await session.scalars(_latest_for(page, False), {
        **_page_values(page), "viewer_id": viewer.id,
        "threshold": settings.fanout_threshold})).all()
    key = feed_key(viewer.id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        if found:
            pipe.zadd(key, {_member(i): _score(i) for i in found})
        pipe.set(built_key(viewer.id), "1")
        await pipe.execute()


# The feed part of a home read, run by Redis in one call: nil when the feed is not built,
# else {ZCARD, members in the page bounds}. KEYS: feed, built marker. ARGV: "asc" or "desc",
# lowest score, highest score (ZRANGEBYSCORE's forms: "-inf", "(123"), how many.
FEED_PAGE_LUA = """
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
local members
if ARGV[1] == 'asc' then
  members = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[3], 'LIMIT', 0, ARGV[4])
else
  members = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[3], ARGV[2], 'LIMIT', 0, ARGV[4])
end
return {redis.call('ZCARD', KEYS[1]), members}
"""


FEED_PAGE_SHA = hashlib.sha1(FEED_PAGE_LUA.encode()).hexdigest()


async def _feed_page(redis: Redis, keys: list[str], args: list) -> list | None:
    """FEED_PAGE_LUA's answer. EVALSHA; after a Redis restart or SCRIPT FLUSH (NOSCRIPT), one
    EVAL, which caches the script in Redis again."""
    try:
        return await redis.evalsha(FEED_PAGE_SHA, len(keys), *keys, *args)
    except NoScriptError:
        return await redis.eval(FEED_PAGE_LUA, len(keys), *keys, *args)


async def _from_feed(redis: Redis, settings: Settings, viewer: Account, page: Page, want: int,
                     ) -> tuple[list[uuid.UUID] | None, bool]:
    """Ids from the Redis feed within the page bounds (None when the feed is not built);
    second value: whether the feed may be missing older entries (it was trimmed, so fall
    back to PostgreSQL). One round trip: a server-side script (FEED_PAGE_LUA), which costs
    the app less CPU than a pipeline of the three commands."""
    top = f"({_score(page.max_id) + 1}" if page.max_id else "+inf"
    lower = page.lower()
    bottom = _score(lower) if lower else "-inf"
    # Fetch a margin: ids sharing the bounds' millisecond are filtered exactly below.
    answer = await _feed_page(redis, [feed_key(viewer.id), built_key(viewer.id)],
                              ["asc" if page.ascending else "desc", bottom, top, want + 50])
    if answer is None:
        return None, False
    size, raw = answer
    found = []
    for member in raw:  # parse only as many as the page takes (most reads: `want`)
        status_id = uuid.UUID(int=int(member, 16))
        if page.keep(status_id):
            found.append(status_id)
            if len(found) == want:
                break
    return found, len(found) < want and size >= settings.home_feed_length


def _ids(query) -> Select:
    sub = query.subquery()
    return select(sub.c[0])


@functools.cache
def _home_query(shape: tuple, fallback: tuple | None, feed: bool, everything: bool) -> Select:
    """The page's statuses: id IN (big accounts' latest, the feed's ids, the fallback or,
    without Redis, every followed account's latest). Built once per shape."""
    ascending = shape[0]
    sources = [_ids(_latest(True, *shape))]
    if feed:
        sources.append(select(func.unnest(bindparam("feed_ids", type_=UUIDS))))
    if fallback is not None:
        sources.append(_ids(_latest(False, False, *fallback, prefix="fb_")))
    if everything:
        sources.append(_ids(_latest(False, *shape)))
    candidates = union_all(*sources) if len(sources) > 1 else sources[0]
    order = Status.id.asc() if ascending else Status.id.desc()
    return (select(Status).where(Status.id.in_(candidates)).order_by(order)
            .limit(bindparam("limit", type_=Integer)))


async def home(session: AsyncSession | None, redis: Redis, settings: Settings, viewer: Account,
               page: Page, run: rawsql.Orm | rawsql.Raw | None = None) -> list[Status]:
    """The viewer's home timeline page, newest first: the Redis feed merged with the posts
    of big accounts read from PostgreSQL; PostgreSQL alone when Redis is down.

    The statuses are loaded in one query (home_query). `run` executes it
    (podium_app/rawsql.py; the session's ORM by default)."""
    run = run or rawsql.Orm(session)
    statement, values = await home_query(redis, settings, viewer, page, run)
    return page.finish(await run.entities(statement, values))


class NotBuilt(Exception):
    """home_query(may_rebuild=False) met a feed that is not built."""


async def home_query(redis: Redis, settings: Settings, viewer: Account, page: Page,
                     run: rawsql.Orm | rawsql.Raw, may_rebuild: bool = True,
                     ) -> tuple[Select, dict]:
    """The statement that loads the page's statuses (select(Status), built once per shape)
    and its values: its candidates are the feed's ids plus the big accounts' latest (plus
    the followed accounts' latest when Redis cannot answer or the feed was trimmed). Asks
    Redis for the feed (rebuilding it on `run.session` when it is not built; with
    may_rebuild=False, raises NotBuilt instead: the reader's token is not checked yet, see
    docs/decisions/0297-home-read-token-cache.md). Rows come in the statement's order;
    page.finish puts them in the page's."""
    want = page.limit
    shape = (page.ascending, page.max_id is not None, page.lower() is not None)
    values = {**_page_values(page), "viewer_id": viewer.id,
              "threshold": settings.fanout_threshold}
    feed = everything = False
    fallback = None
    try:
        feed_ids, maybe_more = await _from_feed(redis, settings, viewer, page, want)
        if feed_ids is None:
            if not may_rebuild:
                raise NotBuilt
            await rebuild(run.session, redis, settings, viewer)
            feed_ids, maybe_more = await _from_feed(redis, settings, viewer, page, want)
        if feed_ids:
            feed = True
            values["feed_ids"] = feed_ids
        if maybe_more and not page.ascending:
            older = min(feed_ids) if feed_ids else page.max_id
            more = Page(older, page.since_id, None, want)
            fallback = (more.max_id is not None, more.lower() is not None)
            values.update(_page_values(more, "fb_"))
    except RedisError:
        everything = True
    return _home_query(shape, fallback, feed, everything), values
