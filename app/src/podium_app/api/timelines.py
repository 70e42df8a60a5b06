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
    token_gated,
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
HOME_SCOPE = "read:statuses"


async def _answer(request, session, settings, rows, viewer) -> Response:
    return _page(request, await status_service.render(session, settings, rows, viewer), rows)


def _page(request: Request, rendered: list[dict], rows: list) -> Response:
    if not rows:
        return json_page(request, rendered, None, None)
    return json_page(request, rendered, ids.to_str(rows[0].id), ids.to_str(rows[-1].id))


@router.get("/api/v1/timelines/home", response_model=list[dict])
async def home(request: Request, run: RawSession, page: PageDep,
               auth: Auth = require_raw(HOME_SCOPE)) -> Response:
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
    return await _home_answer(request, run, settings, viewer, rows, known)


async def home_page_by_cached_token(request: Request, run: rawsql.Raw, settings: Settings,
                                    page: Page, token_hash: str, account_id,
                                    ) -> Response | None:
    """home_page for a token the token cache knows (podium_app/tokencache.py): the Redis feed
    is read first, for `account_id`, and the token is checked inside the page statement
    (deps.token_gated: exists, belongs to `account_id`, HOME_SCOPE, account confirmed,
    approved, not suspended). None, having answered nothing, when that check fails; raises
    feeds.NotBuilt when the reader's feed is not built (a rebuild waits for a checked
    token). The caller then takes home_page's path, which answers as it always has
    (docs/decisions/0297-home-read-token-cache.md)."""
    viewer = rawsql.Row({"id": account_id})  # the page path reads only the viewer's id
    statement, values = await feeds.home_query(request.app.state.redis, settings, viewer,
                                                page, run, may_rebuild=False)
    known = StatusContext(settings.domain)
    gated = token_gated(status_service.with_details(statement), page.ascending, HOME_SCOPE)
    found = await status_service.detailed_gated(
        run, gated, {**values, "token_hash": token_hash}, known)
    if found is None:
        return None
    return await _home_answer(request, run, settings, viewer, page.finish(found), known)


async def _home_answer(request: Request, run: rawsql.Raw, settings: Settings, viewer,
                       rows: list, known: StatusContext) -> Response:
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
