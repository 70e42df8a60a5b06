"""/api/v1/notifications: follows, mentions (and replies), reposts, likes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import delete, select

from podium_app import ids, serializers
from podium_app.api.deps import AppSettings, Auth, Session, require, user_of
from podium_app.errors import not_found
from podium_app.models import NOTIFICATION_TYPES, Account, Notification, Status
from podium_app.pagination import Page, link_header, page_params
from podium_app.services import statuses as status_service

router = APIRouter(tags=["notifications"])


async def _render(session, settings, rows: list[Notification], viewer) -> list[dict]:
    senders = {a.id: a for a in (await session.scalars(select(Account).where(
        Account.id.in_({n.from_account_id for n in rows})))).all()}
    status_rows = (await session.scalars(select(Status).where(
        Status.id.in_({n.status_id for n in rows if n.status_id})))).all()
    rendered = await status_service.render(session, settings, list(status_rows), viewer)
    by_id = {r["id"]: r for r in rendered}
    out = []
    for n in rows:
        sender = senders.get(n.from_account_id)
        if sender is None or sender.suspended_at is not None:
            continue
        status = by_id.get(ids.to_str(n.status_id)) if n.status_id else None
        if n.status_id and status is None:
            continue
        out.append({"id": ids.to_str(n.id), "type": n.type,
                    "created_at": serializers.iso(n.created_at),
                    "account": serializers.account(sender, settings.domain), "status": status})
    return out


@router.get("/api/v1/notifications")
async def notifications(
    request: Request, response: Response, session: Session, settings: AppSettings,
    page: Annotated[Page, Depends(page_params)], auth: Auth = require("read:notifications"),
    types: Annotated[list[str] | None, Query(alias="types[]")] = None,
    exclude_types: Annotated[list[str] | None, Query(alias="exclude_types[]")] = None,
) -> list[dict]:
    viewer = user_of(auth)
    query = select(Notification).where(Notification.account_id == viewer.id)
    if types:
        query = query.where(Notification.type.in_([t for t in types if t in NOTIFICATION_TYPES]))
    if exclude_types:
        query = query.where(Notification.type.not_in(exclude_types))
    rows = page.finish(list((await session.scalars(page.apply(query, Notification.id))).all()))
    if rows:
        link_header(request, response, ids.to_str(rows[0].id), ids.to_str(rows[-1].id))
    return await _render(session, settings, rows, viewer)


@router.get("/api/v1/notifications/{notification_id}")
async def notification(session: Session, settings: AppSettings, notification_id: str,
                       auth: Auth = require("read:notifications")) -> dict:
    row = await session.get(Notification, ids.parse(notification_id)) if ids.parse(
        notification_id) else None
    if row is None or row.account_id != user_of(auth).id:
        raise not_found()
    rendered = await _render(session, settings, [row], user_of(auth))
    if not rendered:
        raise not_found()
    return rendered[0]


@router.post("/api/v1/notifications/clear")
async def clear(session: Session, auth: Auth = require("write:notifications")) -> dict:
    await session.execute(delete(Notification).where(
        Notification.account_id == user_of(auth).id))
    await session.commit()
    return {}


@router.post("/api/v1/notifications/{notification_id}/dismiss")
async def dismiss(session: Session, notification_id: str,
                  auth: Auth = require("write:notifications")) -> dict:
    target = ids.parse(notification_id)
    if target is not None:
        await session.execute(delete(Notification).where(
            Notification.id == target, Notification.account_id == user_of(auth).id))
        await session.commit()
    return {}
