"""Posts: create, edit (with history), delete for real, reblog, favourite, visibility, render.

Permissions are decided here, not in the routers: desk mode, visibility, ownership.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import (
    ARRAY,
    and_,
    any_,
    bindparam,
    delete,
    exists,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from podium_app import rawsql
from podium_app.errors import ApiError, forbidden, not_found, unprocessable
from podium_app.ids import new_id
from podium_app.media import service as media_service
from podium_app.models import (
    Account,
    Favourite,
    Follow,
    MediaAttachment,
    Mention,
    Notification,
    Status,
    StatusEdit,
    StatusTag,
    Tag,
)
from podium_app.serializers import StatusContext
from podium_app.serializers import status as render_status
from podium_app.services import accounts as account_service
from podium_app.services import text as text_service
from podium_app.settings import Settings
from podium_app.statuscache import StatusCache, Template

DESK_REFUSAL = ("This server is in desk mode: only publishers post, reply, repost and like; "
                "followers follow, read and share")


def now() -> datetime:
    return datetime.now(UTC)


def may_publish(account: Account) -> bool:
    return account.publisher or account.role in ("owner", "admin")


def check_mode(settings: Settings, account: Account) -> None:
    if settings.mode == "desk" and not may_publish(account):
        raise forbidden(DESK_REFUSAL)


async def is_follower(session: AsyncSession, follower: uuid.UUID, target: uuid.UUID) -> bool:
    return bool(await session.scalar(select(exists().where(
        Follow.account_id == follower, Follow.target_account_id == target))))


def visible_clause(viewer: Account | None):
    """SQL condition: statuses the viewer may see (used for lists)."""
    public = Status.visibility.in_(("public", "unlisted"))
    if viewer is None:
        return public
    followed = select(Follow.target_account_id).where(Follow.account_id == viewer.id)
    mentioned = select(Mention.status_id).where(Mention.account_id == viewer.id)
    return or_(public, Status.account_id == viewer.id,
               and_(Status.visibility == "private", Status.account_id.in_(followed)),
               Status.id.in_(mentioned))


async def can_see(session: AsyncSession, st: Status, viewer: Account | None) -> bool:
    if st.visibility in ("public", "unlisted"):
        return True
    if viewer is None:
        return False
    if st.account_id == viewer.id:
        return True
    if await session.get(Mention, (st.id, viewer.id)) is not None:
        return True
    return st.visibility == "private" and await is_follower(session, viewer.id, st.account_id)


async def get_visible(session: AsyncSession, status_id: uuid.UUID | None,
                      viewer: Account | None) -> Status:
    """The status if it exists, its author is not suspended, and the viewer may see it;
    404 otherwise (a private post is not acknowledged to exist)."""
    st = await session.get(Status, status_id) if status_id is not None else None
    if st is None:
        raise not_found()
    author = await session.get(Account, st.account_id)
    if author is None or author.suspended_at is not None or not await can_see(session, st, viewer):
        raise not_found()
    return st


async def _known_usernames(session: AsyncSession, names: Iterable[str]) -> dict[str, Account]:
    names = [n.lower() for n in names]
    if not names:
        return {}
    rows = (await session.scalars(select(Account).where(
        func.lower(Account.username).in_(names), Account.suspended_at.is_(None)))).all()
    return {a.username.lower(): a for a in rows}


def _validate_text(settings: Settings, text: str, spoiler: str) -> None:
    if not text.strip():
        raise unprocessable("text can't be blank")
    if len(text) + len(spoiler) > settings.max_post_chars:
        raise unprocessable(f"text is longer than {settings.max_post_chars} characters")


async def _link_tags(session: AsyncSession, status_id: uuid.UUID, tags: list[str]) -> None:
    if not tags:
        return
    await session.execute(insert(Tag).values([{"name": t} for t in tags])
                          .on_conflict_do_nothing(index_elements=["name"]))
    tag_ids = (await session.scalars(select(Tag.id).where(Tag.name.in_(tags)))).all()
    await session.execute(insert(StatusTag).values(
        [{"status_id": status_id, "tag_id": t} for t in tag_ids]).on_conflict_do_nothing())


async def notify(session: AsyncSession, recipient: uuid.UUID, sender: uuid.UUID, kind: str,
                 status_id: uuid.UUID | None = None) -> None:
    if recipient != sender:
        session.add(Notification(account_id=recipient, from_account_id=sender, type=kind,
                                 status_id=status_id))


async def create(session: AsyncSession, settings: Settings, author: Account, *, text: str,
                 in_reply_to_id: uuid.UUID | None = None, visibility: str = "public",
                 sensitive: bool = False, spoiler_text: str = "",
                 language: str | None = None) -> Status:
    """Insert a post (not committed). Raises 403 in desk mode for non-publishers, 404 for a
    reply to an unknown or invisible post, 422 for bad text."""
    check_mode(settings, author)
    _validate_text(settings, text, spoiler_text)
    parent = None
    if in_reply_to_id is not None:
        parent = await get_visible(session, in_reply_to_id, author)
    parsed = text_service.parse(text, settings.domain)
    mentioned = await _known_usernames(session, parsed.mentions)
    if parent is not None and visibility == "public" and parent.visibility != "public":
        visibility = parent.visibility  # a reply never widens its thread's audience
    st = Status(
        id=new_id(), account_id=author.id, text=text,
        content=text_service.render(text, settings.domain, set(mentioned)),
        spoiler_text=spoiler_text, sensitive=sensitive or bool(spoiler_text),
        visibility=visibility, language=language,
        in_reply_to_id=parent.id if parent else None,
        in_reply_to_account_id=parent.account_id if parent else None,
    )
    session.add(st)
    await session.flush()
    for acc in mentioned.values():
        session.add(Mention(status_id=st.id, account_id=acc.id))
        await notify(session, acc.id, author.id, "mention", st.id)
    if parent is not None:
        await session.execute(update(Status).where(Status.id == parent.id)
                              .values(replies_count=Status.replies_count + 1))
        if parent.account_id not in {a.id for a in mentioned.values()}:
            await notify(session, parent.account_id, author.id, "mention", st.id)
    await _link_tags(session, st.id, parsed.tags)
    await account_service.bump(session, author.id, statuses_count=1)
    await session.execute(update(Account).where(Account.id == author.id)
                          .values(last_status_at=now()))
    return st


async def edit(session: AsyncSession, settings: Settings, editor: Account, st: Status, *,
               text: str, spoiler_text: str = "", sensitive: bool = False,
               language: str | None = None) -> Status:
    if st.account_id != editor.id:
        raise forbidden("You can only edit your own posts")
    if st.reblog_of_id is not None:
        raise unprocessable("a repost cannot be edited")
    check_mode(settings, editor)
    _validate_text(settings, text, spoiler_text)
    session.add(StatusEdit(status_id=st.id, text=st.text, content=st.content,
                           spoiler_text=st.spoiler_text, sensitive=st.sensitive,
                           created_at=st.edited_at or st.created_at))
    parsed = text_service.parse(text, settings.domain)
    mentioned = await _known_usernames(session, parsed.mentions)
    st.text = text
    st.content = text_service.render(text, settings.domain, set(mentioned))
    st.spoiler_text = spoiler_text
    st.sensitive = sensitive or bool(spoiler_text)
    st.language = language or st.language
    st.edited_at = now()
    await session.execute(delete(StatusTag).where(StatusTag.status_id == st.id))
    await _link_tags(session, st.id, parsed.tags)
    await session.execute(delete(Mention).where(Mention.status_id == st.id))
    for acc in mentioned.values():
        session.add(Mention(status_id=st.id, account_id=acc.id))
    return st


async def history(session: AsyncSession, st: Status) -> list[StatusEdit]:
    rows = (await session.scalars(select(StatusEdit).where(StatusEdit.status_id == st.id)
                                  .order_by(StatusEdit.created_at))).all()
    return list(rows)


async def remove(session: AsyncSession, st: Status) -> list[uuid.UUID]:
    """Delete a post and everything hanging off it (reblogs, likes, edits, mentions,
    notifications) for real. Returns the ids of deleted statuses (the post and its reblogs)
    so their copies in home feeds can be removed. Not committed."""
    reblogs = (await session.execute(select(Status.id, Status.account_id)
                                     .where(Status.reblog_of_id == st.id))).all()
    for _, account_id in reblogs:
        await account_service.bump(session, account_id, statuses_count=-1)
    if st.in_reply_to_id is not None:
        await session.execute(update(Status).where(Status.id == st.in_reply_to_id)
                              .values(replies_count=Status.replies_count - 1))
    if st.reblog_of_id is not None:
        await session.execute(update(Status).where(Status.id == st.reblog_of_id)
                              .values(reblogs_count=Status.reblogs_count - 1))
    await account_service.bump(session, st.account_id, statuses_count=-1)
    await session.execute(delete(Status).where(Status.id == st.id))
    return [st.id, *(row[0] for row in reblogs)]


async def reblog(session: AsyncSession, settings: Settings, actor: Account,
                 st: Status) -> Status:
    check_mode(settings, actor)
    if st.reblog_of_id is not None:
        st = await get_visible(session, st.reblog_of_id, actor)
    if st.visibility not in ("public", "unlisted"):
        raise forbidden("This post cannot be reposted")
    existing = await session.scalar(select(Status).where(
        Status.account_id == actor.id, Status.reblog_of_id == st.id))
    if existing is not None:
        return existing
    rb = Status(id=new_id(), account_id=actor.id, reblog_of_id=st.id, visibility="public",
                text="", content="")
    session.add(rb)
    await session.flush()
    await session.execute(update(Status).where(Status.id == st.id)
                          .values(reblogs_count=Status.reblogs_count + 1))
    await account_service.bump(session, actor.id, statuses_count=1)
    await notify(session, st.account_id, actor.id, "reblog", st.id)
    return rb


async def unreblog(session: AsyncSession, actor: Account, st: Status) -> list[uuid.UUID]:
    target = st.reblog_of_id or st.id
    existing = await session.scalar(select(Status).where(
        Status.account_id == actor.id, Status.reblog_of_id == target))
    if existing is None:
        return []
    return await remove(session, existing)


async def favourite(session: AsyncSession, settings: Settings, actor: Account,
                    st: Status) -> None:
    check_mode(settings, actor)
    if st.reblog_of_id is not None:
        raise unprocessable("like the original post, not the repost")
    done = await session.execute(insert(Favourite).values(
        account_id=actor.id, status_id=st.id).on_conflict_do_nothing().returning(Favourite.id))
    if done.first() is not None:
        await session.execute(update(Status).where(Status.id == st.id)
                              .values(favourites_count=Status.favourites_count + 1))
        await notify(session, st.account_id, actor.id, "favourite", st.id)


async def unfavourite(session: AsyncSession, actor: Account, st: Status) -> None:
    done = await session.execute(delete(Favourite).where(
        Favourite.account_id == actor.id, Favourite.status_id == st.id).returning(Favourite.id))
    if done.first() is not None:
        await session.execute(update(Status).where(Status.id == st.id)
                              .values(favourites_count=Status.favourites_count - 1))


def _detail_columns(for_viewer: bool) -> list:
    """Per status (correlated to `Status`): mentioned account ids, tag names, whether media
    hang off it, the viewer's like and repost (parameter viewer_id with for_viewer)."""
    reblogs = aliased(Status)
    mentioned = (select(func.array_agg(Mention.account_id))
                 .where(Mention.status_id == Status.id).scalar_subquery())
    tag_names = (select(func.array_agg(Tag.name)).join(StatusTag, StatusTag.tag_id == Tag.id)
                 .where(StatusTag.status_id == Status.id).scalar_subquery())
    has_media = exists().where(MediaAttachment.status_id == Status.id)
    if for_viewer:
        viewer_id = bindparam("viewer_id", type_=PG_UUID(as_uuid=True))
        liked = exists().where(Favourite.status_id == Status.id,
                               Favourite.account_id == viewer_id)
        shared = exists().where(reblogs.reblog_of_id == Status.id,
                                reblogs.account_id == viewer_id)
    else:
        liked = shared = false()
    return [mentioned, tag_names, has_media, liked, shared]


def _details_query(for_viewer: bool):
    """Per status, in one query: mentioned accounts, tag names, whether media hang off it,
    and the viewer's like and repost. Parameters: ids (and viewer_id)."""
    return (select(Status.id, *_detail_columns(for_viewer))
            .where(Status.id == any_(bindparam("ids", type_=UUIDS))))


# Built once (the statement objects, aliased() above all, cost more CPU to construct
# per request than the queries cost PostgreSQL); `= ANY($1)` keeps one SQL text, hence one
# prepared statement, whatever the number of ids.
UUIDS = ARRAY(PG_UUID(as_uuid=True))
DETAILS = _details_query(False)
DETAILS_FOR_VIEWER = _details_query(True)
STATUSES_BY_ID = select(Status).where(Status.id == any_(bindparam("ids", type_=UUIDS)))
ACCOUNTS_BY_ID = select(Account).where(Account.id == any_(bindparam("ids", type_=UUIDS)))
_ACCOUNT_COLUMNS = [column.key for column in Account.__table__.columns]
_DETAILS = len(_detail_columns(False))


@functools.cache
def with_details(query):
    """`query` (a select(Status) statement built once) with, on each row, what _context
    would otherwise read in two more statements: the status's details (DETAILS_FOR_VIEWER's
    columns; parameter viewer_id) and its author's account row (NULLs when the account is
    gone). Built once per statement object (docs/decisions/0286-home-read-two-statements.md).
    """
    return (query.outerjoin(Account, Account.id == Status.account_id)
            .add_columns(*_detail_columns(True), *Account.__table__.columns))


async def detailed(run: rawsql.Raw, query, values: dict, ctx: StatusContext) -> list:
    """Runs with_details(query): returns the statuses as rows and puts their details and
    authors into `ctx` (for render_cached/render_with's `known`)."""
    return _split(await run.tuples(with_details(query), values), ctx, 0)


async def detailed_gated(run: rawsql.Raw, gated, values: dict, ctx: StatusContext,
                         ) -> list | None:
    """detailed() for with_details(query) behind a check in the same statement, whose
    answer is the first column (`deps.token_gated`: the home read of a reader known only by
    the token cache's account id). None when the check failed (nothing is put in `ctx`)."""
    records = await run.tuples(gated, values)
    if not records or not records[0][0]:
        return None
    if records[0][1] is None:  # the LEFT JOIN's one row of NULLs: authorized, empty page
        return []
    return _split(records, ctx, 1)


def _split(records: list, ctx: StatusContext, skip: int) -> list:
    """with_details' rows (after `skip` leading columns) as status rows, their details and
    authors put into `ctx`."""
    if not records:
        return []
    statuses = len(records[0]) - skip - _DETAILS - len(_ACCOUNT_COLUMNS)
    names = list(records[0].keys())[skip:skip + statuses]
    rows = []
    for record in records:
        cells = list(record.values())[skip:]
        status = rawsql.Row(zip(names, cells[:statuses], strict=True))
        rows.append(status)
        ctx.statuses[status.id] = status
        _add_details(ctx, status.id, *cells[statuses:statuses + _DETAILS])
        author = cells[statuses + _DETAILS:]
        if author[0] is not None and author[0] not in ctx.accounts:
            ctx.accounts[author[0]] = rawsql.Row(zip(_ACCOUNT_COLUMNS, author, strict=True))
    return rows


def _add_details(ctx: StatusContext, sid, mention_ids, tags, media, fav, rb) -> None:
    if mention_ids:
        ctx.mentions[sid] = list(mention_ids)
    if tags:
        ctx.tags[sid] = list(tags)
    if media:
        ctx.with_media.add(sid)
    if fav:
        ctx.favourited.add(sid)
    if rb:
        ctx.reblogged.add(sid)


async def render(session: AsyncSession, settings: Settings, statuses: list[Status],
                 viewer: Account | None) -> list[dict]:
    """Mastodon Status entities for `statuses`, in order, in a fixed number of queries."""
    return await render_with(rawsql.Orm(session), settings, statuses, viewer)


async def render_with(run: rawsql.Orm | rawsql.Raw, settings: Settings, statuses: list,
                      viewer, known: StatusContext | None = None) -> list[dict]:
    """render() on either executor (podium_app/rawsql.py): the home timeline passes rows
    read through asyncpg (and `known`, see _context), every other route ORM objects."""
    ctx = await _context(run, settings, statuses, viewer, known)
    shown = _shown(ctx, statuses)
    await _load_media(run, settings, ctx, shown)
    return [render_status(s, ctx) for s in shown]


async def render_cached(run: rawsql.Raw, settings: Settings, statuses: list, viewer,
                        cache: StatusCache, known: StatusContext | None = None) -> list[bytes]:
    """The entities of render_with() as encoded JSON, each taken from `cache` when the rows
    it shows are unchanged (podium_app/statuscache.py): only misses are rendered, and only
    their media loaded. For the home read path only (committed rows, no transaction)."""
    ctx = await _context(run, settings, statuses, viewer, known)
    shown = _shown(ctx, statuses)
    domain, media_base = settings.domain, settings.media_base_url
    keyed = []
    misses = []
    for s in shown:
        key: tuple = (domain, media_base, s.id, s.version, ctx.accounts[s.account_id].version)
        original = ctx.statuses.get(s.reblog_of_id) if s.reblog_of_id is not None else None
        if original is not None:
            key += (original.id, original.version, ctx.accounts[original.account_id].version)
        template = cache.get(key)
        if template is None:
            misses.append(s)
        keyed.append((s, original, key, template))
    if misses:
        await _load_media(run, settings, ctx, misses)
    cache.counted(len(keyed) - len(misses), len(misses))
    out = []
    for s, original, key, template in keyed:
        if template is None:
            template = Template(render_status(s, ctx))
            cache.put(key, template)
        inner = original.id if original is not None else None
        out.append(template.fill((s.id in ctx.favourited, s.id in ctx.reblogged,
                                  inner in ctx.favourited, inner in ctx.reblogged)))
    return out


async def _context(run: rawsql.Orm | rawsql.Raw, settings: Settings, statuses: list,
                   viewer, known: StatusContext | None = None) -> StatusContext:
    """The rows the entities of `statuses` show, except media (_load_media): reposted
    statuses, mentions, tags, the viewer's likes and reposts, the accounts. `known`: a
    context `detailed` filled with `statuses`' details and authors (the home read), which
    leaves only reposted statuses and mentioned accounts to read."""
    if known is not None:
        ctx = known
    else:
        ctx = StatusContext(settings.domain)
        ctx.statuses = {s.id: s for s in statuses}
    originals = list({s.reblog_of_id for s in statuses if s.reblog_of_id} - set(ctx.statuses))
    if originals and known is not None:
        await detailed(run, STATUSES_BY_ID, {"ids": originals, "viewer_id": viewer.id}, ctx)
    elif originals:
        for s in await run.entities(STATUSES_BY_ID, {"ids": originals}):
            ctx.statuses[s.id] = s
    all_ids = list(ctx.statuses)
    if not all_ids:
        return ctx
    if known is None:
        details = (DETAILS_FOR_VIEWER, {"ids": all_ids, "viewer_id": viewer.id}) if viewer \
            else (DETAILS, {"ids": all_ids})
        for row in await run.tuples(*details):
            _add_details(ctx, *row)
    account_ids = {s.account_id for s in ctx.statuses.values()}
    for mentioned in ctx.mentions.values():
        account_ids.update(mentioned)
    account_ids.difference_update(ctx.accounts)
    if account_ids:
        for acc in await run.entities(ACCOUNTS_BY_ID, {"ids": list(account_ids)}):
            ctx.accounts[acc.id] = acc
    return ctx


def _shown(ctx: StatusContext, statuses: list) -> list:
    """`statuses` less those by suspended (or deleted) accounts and reposts of them:
    suspension hides content everywhere, including reposts of it."""
    def shown(s: Status | None) -> bool:
        author = ctx.accounts.get(s.account_id) if s is not None else None
        return author is not None and author.suspended_at is None

    return [s for s in statuses
            if shown(s) and (s.reblog_of_id is None or shown(ctx.statuses.get(s.reblog_of_id)))]


async def _load_media(run: rawsql.Orm | rawsql.Raw, settings: Settings, ctx: StatusContext,
                      statuses: list) -> None:
    """Rendered MediaAttachment entities of `statuses` and the statuses they repost."""
    wanted = {s.id for s in statuses} | {s.reblog_of_id for s in statuses if s.reblog_of_id}
    with_media = [sid for sid in ctx.with_media if sid in wanted]
    if with_media:
        for status_id, attached in (await media_service.for_statuses(run.session,
                                                                     with_media)).items():
            ctx.media[status_id] = [media_service.render(m, settings) for m in attached]


async def render_one(session, settings, st: Status, viewer: Account | None) -> dict:
    rendered = await render(session, settings, [st], viewer)
    if not rendered:
        raise not_found()
    return rendered[0]


def raise_if_not_owner(st: Status, account: Account) -> None:
    if st.account_id != account.id:
        raise ApiError(403, "This action is not allowed")
