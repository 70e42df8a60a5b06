"""Reports (/api/v1/reports) and moderation (/api/v1/admin/..., /api/v1/podium/admin/...).

Moderators and above moderate; nobody acts on an account of their own rank or above.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from podium_app import ids, jobs, serializers
from podium_app.api.deps import AppSettings, Auth, Session, body, body_doc, require, user_of
from podium_app.api.media import forget as forget_media
from podium_app.errors import forbidden, not_found, unprocessable
from podium_app.media import service as media_service
from podium_app.models import Account, AuditEntry, Report, Status
from podium_app.pagination import Page, link_header, page_params
from podium_app.services import deletion, moderation
from podium_app.services.statuses import notify

router = APIRouter(tags=["moderation"])
PageDep = Annotated[Page, Depends(page_params)]


class ReportIn(BaseModel):
    account_id: str = Field(max_length=40)
    status_ids: list[str] = Field(default_factory=list, max_length=50)
    comment: str = Field("", max_length=1000)
    category: Literal["spam", "legal", "violation", "other"] = "other"
    forward: bool = False


class ActionIn(BaseModel):
    type: Literal["none", "suspend"] = "none"
    report_id: str | None = Field(None, max_length=40)
    text: str = Field("", max_length=1000)


class AdmitIn(BaseModel):
    count: int = Field(ge=1, le=100_000)


def _report_json(report: Report, accounts: dict, domain: str) -> dict:
    return {
        "id": ids.to_str(report.id), "action_taken": report.action_taken_at is not None,
        "action_taken_at": serializers.iso(report.action_taken_at), "category": report.category,
        "comment": report.comment, "forwarded": False,
        "created_at": serializers.iso(report.created_at),
        "status_ids": [ids.to_str(s) for s in report.status_ids], "rule_ids": [],
        "target_account": (serializers.account(accounts[report.target_account_id], domain)
                           if report.target_account_id in accounts else None),
    }


def _moderator(auth: Auth) -> Account:
    account = user_of(auth)
    if not moderation.is_staff(account):
        raise forbidden("This action needs a moderator")
    return account


async def _target(session, account_id: str) -> Account:
    target = await session.get(Account, ids.parse(account_id)) if ids.parse(account_id) else None
    if target is None:
        raise not_found()
    return target


@router.post("/api/v1/reports", openapi_extra=body_doc(ReportIn))
async def report(session: Session, settings: AppSettings, auth: Auth = require("write:reports"),
                 params: ReportIn = body(ReportIn)) -> dict:
    reporter = user_of(auth)
    target = await session.get(Account, ids.parse(params.account_id)) if ids.parse(
        params.account_id) else None
    if target is None or target.id == reporter.id:
        raise not_found()
    status_ids = [i for i in (ids.parse(s) for s in params.status_ids) if i is not None]
    if status_ids:
        found = set((await session.scalars(select(Status.id).where(
            Status.id.in_(status_ids), Status.account_id == target.id))).all())
        if len(found) != len(set(status_ids)):
            raise unprocessable("status_ids must be posts of the reported account")
    row = Report(account_id=reporter.id, target_account_id=target.id, status_ids=status_ids,
                 comment=params.comment, category=params.category)
    session.add(row)
    await session.flush()
    for member in await moderation.staff(session):
        await notify(session, member.id, reporter.id, "admin.report")
    await session.commit()
    return _report_json(row, {target.id: target}, settings.domain)


@router.get("/api/v1/admin/reports")
async def reports(request: Request, response: Response, session: Session,
                  settings: AppSettings, page: PageDep, resolved: bool = False,
                  auth: Auth = require("admin:read:reports")) -> list[dict]:
    _moderator(auth)
    query = select(Report).where(Report.action_taken_at.is_(None) if not resolved
                                 else Report.action_taken_at.is_not(None))
    rows = page.finish(list((await session.scalars(page.apply(query, Report.id))).all()))
    accounts = {a.id: a for a in (await session.scalars(select(Account).where(
        Account.id.in_({r.target_account_id for r in rows})))).all()}
    if rows:
        link_header(request, response, ids.to_str(rows[0].id), ids.to_str(rows[-1].id))
    return [_report_json(r, accounts, settings.domain) for r in rows]


@router.post("/api/v1/admin/reports/{report_id}/resolve")
async def resolve(session: Session, settings: AppSettings, report_id: str,
                  auth: Auth = require("admin:write:reports")) -> dict:
    actor = _moderator(auth)
    row = await session.get(Report, ids.parse(report_id)) if ids.parse(report_id) else None
    if row is None:
        raise not_found()
    await moderation.resolve(session, actor, row)
    await session.commit()
    target = await session.get(Account, row.target_account_id)
    return _report_json(row, {target.id: target} if target else {}, settings.domain)


@router.post("/api/v1/admin/accounts/{account_id}/action", openapi_extra=body_doc(ActionIn))
async def account_action(session: Session, account_id: str,
                         auth: Auth = require("admin:write:accounts"),
                         params: ActionIn = body(ActionIn)) -> dict:
    actor = _moderator(auth)
    target = await _target(session, account_id)
    row = None
    if params.report_id:
        row = await session.get(Report, ids.parse(params.report_id)) if ids.parse(
            params.report_id) else None
        if row is None or row.target_account_id != target.id:
            raise not_found("Report")
    if params.type == "suspend":
        await moderation.suspend(session, actor, target, row)
    elif row is not None:
        await moderation.resolve(session, actor, row)
    await session.commit()
    return {}


@router.get("/api/v1/admin/accounts/{account_id}")
async def admin_account(session: Session, settings: AppSettings, account_id: str,
                        auth: Auth = require("admin:read:accounts")) -> dict:
    """Mastodon's Admin::Account (the fields Podium has), plus ``email_bounced_at`` and
    ``email_bounce_detail``: set when mail to the address bounced hard and stopped."""
    _moderator(auth)
    target = await _target(session, account_id)
    return serializers.admin_account(target, settings.domain)


@router.delete("/api/v1/admin/accounts/{account_id}")
async def delete_account(request: Request, session: Session, settings: AppSettings,
                         account_id: str, auth: Auth = require("admin:write:accounts")) -> dict:
    """Mastodon's "delete an account's data": the account must be suspended first; its rows,
    posts, media and cached copies are deleted by a queue job (services/deletion.py)."""
    actor = _moderator(auth)
    if not moderation.is_staff(actor, "admin"):
        raise forbidden("Deleting an account needs an admin")
    target = await _target(session, account_id)
    moderation.check_outranks(actor, target)
    if target.suspended_at is None:
        raise forbidden("Suspend the account before deleting its data")
    await deletion.schedule(session, target)
    moderation.audit(session, actor, "delete_account", "account", target.id,
                     username=target.username)
    await session.commit()
    await jobs.enqueue(request, "delete_account", str(target.id))
    return serializers.account(target, settings.domain)


@router.post("/api/v1/admin/accounts/{account_id}/unsuspend")
async def unsuspend(session: Session, settings: AppSettings, account_id: str,
                    auth: Auth = require("admin:write:accounts")) -> dict:
    actor = _moderator(auth)
    target = await _target(session, account_id)
    await moderation.unsuspend(session, actor, target)
    await session.commit()
    return serializers.account(target, settings.domain)


@router.post("/api/v1/admin/accounts/{account_id}/approve")
async def approve(session: Session, settings: AppSettings, account_id: str,
                  auth: Auth = require("admin:write:accounts")) -> dict:
    actor = _moderator(auth)
    target = await _target(session, account_id)
    await moderation.approve(session, actor, target)
    await session.commit()
    return serializers.account(target, settings.domain)


@router.post("/api/v1/podium/admin/waitlist/admit", openapi_extra=body_doc(AdmitIn))
async def admit(session: Session, auth: Auth = require("admin:write:accounts"),
                params: AdmitIn = body(AdmitIn)) -> dict:
    """Admit the `count` longest-waiting accounts now."""
    actor = _moderator(auth)
    admitted = await moderation.admit(session, actor, params.count)
    await session.commit()
    return {"admitted": [a.username for a in admitted]}


@router.delete("/api/v1/podium/admin/statuses/{status_id}")
async def remove_status(request: Request, session: Session, status_id: str,
                        auth: Auth = require("admin:write:reports")) -> dict:
    """Remove a post (really deleted, with its reposts, likes and copies in home feeds)."""
    actor = _moderator(auth)
    st = await session.get(Status, ids.parse(status_id)) if ids.parse(status_id) else None
    if st is None:
        raise not_found()
    author_id = st.account_id
    files = await media_service.names_of(session, st.id)
    removed = await moderation.remove_status(session, actor, st)
    await session.commit()
    await forget_media(request, session, files)
    await jobs.enqueue(request, "unfan_statuses", [str(i) for i in removed], str(author_id))
    return {}


@router.get("/api/v1/podium/admin/audit_log")
async def audit_log(request: Request, response: Response, session: Session, page: PageDep,
                    auth: Auth = require("admin:read")) -> list[dict]:
    _moderator(auth)
    rows = page.finish(list((await session.scalars(page.apply(select(AuditEntry),
                                                              AuditEntry.id))).all()))
    if rows:
        link_header(request, response, ids.to_str(rows[0].id), ids.to_str(rows[-1].id))
    return [{"id": ids.to_str(r.id), "action": r.action, "target_type": r.target_type,
             "target_id": r.target_id, "actor_id": ids.to_str(r.actor_id) if r.actor_id else None,
             "detail": r.detail, "created_at": serializers.iso(r.created_at)} for r in rows]
