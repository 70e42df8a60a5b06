"""/api/v1/statuses: post, read, edit (with history), delete, context, reblog, favourite."""

from __future__ import annotations

import contextlib
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from sqlalchemy import select

from podium_app import ids, instance_settings, jobs, ratelimit, serializers
from podium_app.api.deps import (
    AppSettings,
    Auth,
    OptionalAuth,
    Session,
    body,
    body_doc,
    require,
    user_of,
)
from podium_app.api.media import forget as forget_media
from podium_app.errors import forbidden, not_found, unprocessable
from podium_app.media import service as media_service
from podium_app.models import Account, Favourite, Status
from podium_app.pagination import Page, link_header, page_params
from podium_app.services import feeds
from podium_app.services import statuses as service

router = APIRouter(tags=["statuses"])


class StatusIn(BaseModel):
    status: str = Field("", max_length=100_000)
    in_reply_to_id: str | None = Field(None, max_length=40)
    sensitive: bool = False
    spoiler_text: str = Field("", max_length=10_000)
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    language: str | None = Field(None, max_length=16)
    media_ids: list[str] = Field(default_factory=list, max_length=4)
    scheduled_at: str | None = Field(None, max_length=40)


class StatusEditIn(BaseModel):
    status: str = Field("", max_length=100_000)
    sensitive: bool = False
    spoiler_text: str = Field("", max_length=10_000)
    language: str | None = Field(None, max_length=16)
    media_ids: list[str] = Field(default_factory=list, max_length=4)


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _visible(session, status_id: str, auth: Auth | None) -> Status:
    return await service.get_visible(session, ids.parse(status_id),
                                     auth.account if auth else None)


@router.post("/api/v1/statuses", openapi_extra=body_doc(StatusIn))
async def post_status(
    request: Request, session: Session, settings: AppSettings,
    auth: Auth = require("write:statuses"), params: StatusIn = body(StatusIn),
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict:
    author = user_of(auth)
    service.check_mode(settings, author)
    redis = request.app.state.redis
    await ratelimit.hit(redis, "post", str(author.id), settings.rate_post_account)
    await ratelimit.hit(redis, "post-ip", _ip(request), settings.rate_post_ip)
    if params.scheduled_at:
        raise unprocessable("scheduled posts are not supported")
    idem_key = f"podium:idem:{author.id}:{idempotency_key}" if idempotency_key else None
    if idem_key:
        earlier = None
        with contextlib.suppress(RedisError):
            earlier = ids.parse((await redis.get(idem_key) or b"").decode() or None)
        if earlier is not None and (st := await session.get(Status, earlier)) is not None:
            return await service.render_one(session, settings, st, author)
    reply_to = None
    if params.in_reply_to_id is not None:
        reply_to = ids.parse(params.in_reply_to_id)
        if reply_to is None:
            raise not_found()
    st = await service.create(session, settings, author, text=params.status,
                              in_reply_to_id=reply_to, visibility=params.visibility,
                              sensitive=params.sensitive, spoiler_text=params.spoiler_text,
                              language=params.language)
    if params.media_ids:
        await media_service.attach(session, author, st.id,
                                   [ids.parse(i) for i in params.media_ids])
    await session.commit()
    if idem_key:
        with contextlib.suppress(RedisError):
            await redis.set(idem_key, ids.to_str(st.id), ex=3600)
    await _after_post(request, st)
    return await service.render_one(session, settings, st, author)


async def _after_post(request: Request, st: Status) -> None:
    # The author sees their own post at once; followers get it from the queue. Redis being
    # down loses nothing: the feed is rebuilt from PostgreSQL.
    with contextlib.suppress(RedisError):
        await feeds.push(request.app.state.redis, instance_settings.of(request), [st.account_id],
                         st.id)
    await jobs.enqueue(request, "fanout_status", str(st.id))


@router.get("/api/v1/statuses/{status_id}")
async def get_status(session: Session, settings: AppSettings, auth: OptionalAuth,
                     status_id: str) -> dict:
    st = await _visible(session, status_id, auth)
    return await service.render_one(session, settings, st, auth.account if auth else None)


@router.put("/api/v1/statuses/{status_id}", openapi_extra=body_doc(StatusEditIn))
async def edit_status(session: Session, settings: AppSettings, status_id: str,
                      auth: Auth = require("write:statuses"),
                      params: StatusEditIn = body(StatusEditIn)) -> dict:
    st = await _visible(session, status_id, auth)
    if params.media_ids and params.media_ids != [
            m["id"] for m in (await service.render_one(session, settings, st,
                                                       user_of(auth)))["media_attachments"]]:
        raise unprocessable("changing the attachments of a post is not supported yet")
    await service.edit(session, settings, user_of(auth), st, text=params.status,
                       spoiler_text=params.spoiler_text, sensitive=params.sensitive,
                       language=params.language)
    await session.commit()
    return await service.render_one(session, settings, st, user_of(auth))


@router.delete("/api/v1/statuses/{status_id}")
async def delete_status(request: Request, session: Session, settings: AppSettings,
                        status_id: str, auth: Auth = require("write:statuses")) -> dict:
    st = await _visible(session, status_id, auth)
    if st.account_id != user_of(auth).id:
        raise forbidden("You can only delete your own posts")
    rendered = await service.render_one(session, settings, st, user_of(auth))
    rendered["text"] = st.text
    files = await media_service.names_of(session, st.id)
    removed = await service.remove(session, st)
    await session.commit()
    # Rows went with the post (CASCADE); now its files at the origin and the edges.
    await forget_media(request, session, files)
    await jobs.enqueue(request, "unfan_statuses", [str(i) for i in removed], str(st.account_id))
    return rendered


@router.get("/api/v1/statuses/{status_id}/history")
async def status_history(session: Session, settings: AppSettings, auth: OptionalAuth,
                         status_id: str) -> list[dict]:
    st = await _visible(session, status_id, auth)
    author = await session.get(Account, st.account_id)
    versions = [*await service.history(session, st), st]
    return [{"content": v.content, "spoiler_text": v.spoiler_text, "sensitive": v.sensitive,
             "created_at": serializers.iso(getattr(v, "edited_at", None) or v.created_at),
             "account": serializers.account(author, settings.domain),
             "media_attachments": [], "emojis": []} for v in versions]


@router.get("/api/v1/statuses/{status_id}/source")
async def status_source(session: Session, status_id: str,
                        auth: Auth = require("read:statuses")) -> dict:
    st = await _visible(session, status_id, auth)
    if st.account_id != user_of(auth).id:
        raise not_found()
    return {"id": ids.to_str(st.id), "text": st.text, "spoiler_text": st.spoiler_text}


@router.get("/api/v1/statuses/{status_id}/context")
async def status_context(session: Session, settings: AppSettings, auth: OptionalAuth,
                         status_id: str) -> dict:
    """Ancestors (up to 40, oldest first) and descendants (up to 200, in thread order)."""
    viewer = auth.account if auth else None
    st = await _visible(session, status_id, auth)
    ancestors: list[Status] = []
    parent_id = st.in_reply_to_id
    while parent_id is not None and len(ancestors) < 40:
        parent = await session.get(Status, parent_id)
        if parent is None:
            break
        if await service.can_see(session, parent, viewer):
            ancestors.append(parent)
        parent_id = parent.in_reply_to_id
    ancestors.reverse()
    descendants: list[Status] = []
    frontier = [st.id]
    while frontier and len(descendants) < 200:
        children = (await session.scalars(select(Status).where(
            Status.in_reply_to_id.in_(frontier), service.visible_clause(viewer))
            .order_by(Status.id).limit(200))).all()
        descendants.extend(children)
        frontier = [c.id for c in children]
    descendants.sort(key=lambda s: s.id)
    return {"ancestors": await service.render(session, settings, ancestors, viewer),
            "descendants": await service.render(session, settings, descendants[:200], viewer)}


@router.post("/api/v1/statuses/{status_id}/reblog")
async def reblog(request: Request, session: Session, settings: AppSettings, status_id: str,
                 auth: Auth = require("write:statuses")) -> dict:
    st = await _visible(session, status_id, auth)
    rb = await service.reblog(session, settings, user_of(auth), st)
    await session.commit()
    await _after_post(request, rb)
    return await service.render_one(session, settings, rb, user_of(auth))


@router.post("/api/v1/statuses/{status_id}/unreblog")
async def unreblog(request: Request, session: Session, settings: AppSettings, status_id: str,
                   auth: Auth = require("write:statuses")) -> dict:
    st = await _visible(session, status_id, auth)
    removed = await service.unreblog(session, user_of(auth), st)
    await session.commit()
    if removed:
        await jobs.enqueue(request, "unfan_statuses", [str(i) for i in removed],
                           str(user_of(auth).id))
    original = await session.get(Status, st.reblog_of_id or st.id)
    return await service.render_one(session, settings, original, user_of(auth))


@router.post("/api/v1/statuses/{status_id}/favourite")
async def favourite(session: Session, settings: AppSettings, status_id: str,
                    auth: Auth = require("write:favourites")) -> dict:
    st = await _visible(session, status_id, auth)
    await service.favourite(session, settings, user_of(auth), st)
    await session.commit()
    await session.refresh(st)
    return await service.render_one(session, settings, st, user_of(auth))


@router.post("/api/v1/statuses/{status_id}/unfavourite")
async def unfavourite(session: Session, settings: AppSettings, status_id: str,
                      auth: Auth = require("write:favourites")) -> dict:
    st = await _visible(session, status_id, auth)
    await service.unfavourite(session, user_of(auth), st)
    await session.commit()
    await session.refresh(st)
    return await service.render_one(session, settings, st, user_of(auth))


@router.get("/api/v1/statuses/{status_id}/favourited_by")
async def favourited_by(request: Request, response: Response, session: Session,
                        settings: AppSettings, auth: OptionalAuth, status_id: str,
                        page: Annotated[Page, Depends(page_params)]) -> list[dict]:
    st = await _visible(session, status_id, auth)
    query = select(Favourite.id, Account).join(Account, Account.id == Favourite.account_id).where(
        Favourite.status_id == st.id, Account.suspended_at.is_(None))
    rows = page.finish(list((await session.execute(page.apply(query, Favourite.id))).all()))
    if rows:
        link_header(request, response, ids.to_str(rows[0][0]), ids.to_str(rows[-1][0]))
    return [serializers.account(acc, settings.domain) for _, acc in rows]


@router.get("/api/v1/statuses/{status_id}/reblogged_by")
async def reblogged_by(request: Request, response: Response, session: Session,
                       settings: AppSettings, auth: OptionalAuth, status_id: str,
                       page: Annotated[Page, Depends(page_params)]) -> list[dict]:
    st = await _visible(session, status_id, auth)
    query = select(Status.id, Account).join(Account, Account.id == Status.account_id).where(
        Status.reblog_of_id == st.id, Account.suspended_at.is_(None))
    rows = page.finish(list((await session.execute(page.apply(query, Status.id))).all()))
    if rows:
        link_header(request, response, ids.to_str(rows[0][0]), ids.to_str(rows[-1][0]))
    return [serializers.account(acc, settings.domain) for _, acc in rows]
