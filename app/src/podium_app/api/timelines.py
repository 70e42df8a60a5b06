"""/api/v1/timelines: home (hybrid fan-out), public, tag."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from sqlalchemy import select

from podium_app import ids, instance_settings, rawsql
from podium_app.api.deps import (
    AppSettings,
    Auth,
    OptionalAuth,
    RawSession,
    Session,
    require_raw,
    user_of,
)
from podium_app.models import Account, Status, StatusTag, Tag
from podium_app.pagination import Page, json_body_page, json_page, page_params
from podium_app.serializers import StatusContext
from podium_app.services import feeds
from podium_app.services import statuses as status_service
from podium_app.settings import Settings
from podium_app.statuscache import page_body

router = APIRouter(tags=["timelines"])
PageDep = Annotated[Page, Depends(page_params)]


async def _answer(request, session, settings, rows, viewer) -> Response:
    return _page(request, await status_service.render(session, settings, rows, viewer), rows)


def _page(request: Request, rendered: list[dict], rows: list) -> Response:
    if not rows:
        return json_page(request, rendered, None, None)
    return json_page(request, rendered, ids.to_str(rows[0].id), ids.to_str(rows[-1].id))


@router.get("/api/v1/timelines/home", response_model=list[dict])
async def home(request: Request, run: RawSession, page: PageDep,
               auth: Auth = require_raw("read:statuses")) -> Response:
    # The busiest route: its statements go straight to asyncpg (podium_app/rawsql.py), and
    # its ordinary requests are answered below FastAPI by the same code
    # (podium_app/homefast.py; docs/decisions/0250-home-read-raw-asyncpg.md).
    return await home_page(request, run, instance_settings.of(request), page, auth)


async def home_page(request: Request, run: rawsql.Raw, settings: Settings, page: Page,
                    auth: Auth) -> Response:
    viewer = user_of(auth)
    statement, values = await feeds.home_query(request.app.state.redis, settings, viewer,
                                                page, run)
    # The page's statuses with their details and authors in the same statement
    # (docs/decisions/0286-home-read-two-statements.md).
    known = StatusContext(settings.domain)
    rows = page.finish(await status_service.detailed(run, statement, values, known))
    cache = request.app.state.status_cache
    if cache is None:
        return _page(request, await status_service.render_with(run, settings, rows, viewer,
                                                               known), rows)
    # Unchanged entities from the rendered-status cache, keyed by the versions read with
    # the rows (docs/decisions/0270-rendered-status-cache.md).
    body = page_body(await status_service.render_cached(run, settings, rows, viewer, cache,
                                                        known))
    if not rows:
        return json_body_page(request, body, None, None)
    return json_body_page(request, body, ids.to_str(rows[0].id), ids.to_str(rows[-1].id))


def _public_query():
    return (select(Status).join(Account, Account.id == Status.account_id)
            .where(Status.visibility == "public", Status.reblog_of_id.is_(None),
                   Account.suspended_at.is_(None)))


@router.get("/api/v1/timelines/public", response_model=list[dict])
async def public(request: Request, session: Session, settings: AppSettings,
                 auth: OptionalAuth, page: PageDep, local: bool = False, remote: bool = False,
                 only_media: bool = False) -> Response:
    if remote or only_media:  # no federation; media with the media issue
        return []
    rows = page.finish(list((await session.scalars(page.apply(_public_query(),
                                                              Status.id))).all()))
    return await _answer(request, session, settings, rows,
                         auth.account if auth else None)


@router.get("/api/v1/timelines/tag/{hashtag}", response_model=list[dict])
async def tag(request: Request, session: Session, settings: AppSettings,
              auth: OptionalAuth, page: PageDep,
              hashtag: Annotated[str, Path(max_length=100)]) -> Response:
    query = _public_query().join(StatusTag, StatusTag.status_id == Status.id).join(
        Tag, Tag.id == StatusTag.tag_id).where(Tag.name == hashtag.lower().lstrip("#"))
    rows = page.finish(list((await session.scalars(page.apply(query, Status.id))).all()))
    return await _answer(request, session, settings, rows,
                         auth.account if auth else None)
