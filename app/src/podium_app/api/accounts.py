"""/api/v1/accounts: registration, credentials, profiles, follows, relationships.

Also Podium's own account endpoints: waitlist position, email confirmation, password reset.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from podium_app import ids, jobs, ratelimit, serializers
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
from podium_app.errors import ApiError, not_found
from podium_app.models import Account, Follow, Status
from podium_app.pagination import Page, link_header, page_params
from podium_app.services import accounts as account_service
from podium_app.services import follows as follow_service
from podium_app.services import oauth as oauth_service
from podium_app.services import statuses as status_service

router = APIRouter(tags=["accounts"])


class RegisterIn(BaseModel):
    username: str = Field(min_length=1, max_length=30)
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1000)
    agreement: bool = False
    locale: str = Field("en", max_length=16)
    reason: str | None = Field(None, max_length=1000)
    invite_code: str | None = Field(None, max_length=64)


class CredentialsIn(BaseModel):
    display_name: str | None = Field(None, max_length=100)
    note: str | None = Field(None, max_length=1000)
    locale: str | None = Field(None, max_length=16)


class EmailIn(BaseModel):
    email: str = Field(min_length=3, max_length=320)


class ResetIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _account(session, account_id: str) -> Account:
    account = await session.get(Account, ids.parse(account_id)) if ids.parse(account_id) else None
    if account is None or account.suspended_at is not None or not account.approved:
        raise not_found()
    return account


async def _send_confirmation(request: Request, session, settings, account: Account) -> None:
    token = await account_service.issue_email_token(session, account, "confirm")
    await session.commit()
    link = f"https://{settings.domain}/auth/confirmation?confirmation_token={token}"
    await jobs.templated_mail(request, account.email, "confirm", account.locale,
                              {"name": account.username, "link": link})


@router.post("/api/v1/accounts", openapi_extra=body_doc(RegisterIn))
async def register(request: Request, session: Session, settings: AppSettings,
                   auth: Auth = require("write:accounts", user=False),
                   params: RegisterIn = body(RegisterIn)) -> dict:
    """Sign up. open: usable after email confirmation; approval: joins the waitlist
    (GET /api/v1/podium/waitlist shows the position); invite: needs invite_code; closed: 403."""
    mode = settings.registration_mode
    if mode == "closed":
        raise ApiError(403, "Registrations are closed on this server")
    await ratelimit.hit(request.app.state.redis, "signup", _ip(request), settings.rate_signup_ip)
    if not params.agreement:
        raise ApiError(422, "Validation failed: agreement must be accepted")
    invite = await account_service.use_invite(session, params.invite_code) if (
        mode == "invite") else None
    account = await account_service.create_account(
        session, username=params.username, email=params.email, password=params.password,
        approved=mode != "approval", locale=params.locale, invite=invite)
    app = None
    if auth.token.app_id is not None:
        from podium_app.models import OAuthApp

        app = await session.get(OAuthApp, auth.token.app_id)
    raw, token = await oauth_service.issue(session, app, account, ["read", "write", "follow"])
    await _send_confirmation(request, session, settings, account)
    await session.refresh(token)
    return {"access_token": raw, "token_type": "Bearer", "scope": token.scopes,
            "created_at": int(token.created_at.timestamp())}


@router.get("/api/v1/podium/waitlist")
async def waitlist(session: Session, auth: OptionalAuth) -> dict:
    """The caller's place on the waitlist (approval mode); position null once admitted."""
    if auth is None or auth.account is None:
        raise ApiError(401, "The access token is invalid")
    position = await account_service.waitlist_position(session, auth.account)
    return {"approved": auth.account.approved, "position": position}


def prefers_html(accept: str) -> bool:
    """Whether an Accept header ranks text/html above JSON (a browser opening a mailed link:
    `text/html,...,*/*;q=0.8`; API clients send `application/json`, `*/*` or nothing)."""
    quality: dict[str, float] = {}
    for part in accept.split(","):
        kind, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[kind.lower()] = max(q, quality.get(kind.lower(), 0.0))
    html = quality.get("text/html", 0.0)
    return html > 0 and html >= quality.get("application/json", 0.0)


@router.get("/auth/confirmation", response_model=None)
async def confirm_email(request: Request, session: Session,
                        confirmation_token: Annotated[str, Query(max_length=200)],
                        ) -> dict | RedirectResponse:
    """The link mailed at sign-up. A browser is sent to the web page /confirm (HTML, in the
    reader's language), which consumes the token; other clients get JSON."""
    if prefers_html(request.headers.get("accept", "")):
        return RedirectResponse(f"/confirm?{urlencode({'token': confirmation_token})}",
                                status_code=303)
    account = await account_service.consume_email_token(session, confirmation_token, "confirm")
    account.confirmed_at = account.confirmed_at or account_service.now()
    await session.commit()
    return {"confirmed": True, "approved": account.approved}


@router.post("/api/v1/emails/confirmations")
async def resend_confirmation(request: Request, session: Session, settings: AppSettings,
                              auth: OptionalAuth) -> dict:
    if auth is None or auth.account is None:
        raise ApiError(401, "The access token is invalid")
    if auth.account.confirmed_at is None:
        await _send_confirmation(request, session, settings, auth.account)
    return {}


@router.post("/api/v1/podium/password/reset", status_code=202,
             openapi_extra=body_doc(EmailIn))
async def request_reset(request: Request, session: Session, settings: AppSettings,
                        params: EmailIn = body(EmailIn)) -> dict:
    """Mail a reset link if the address is known; the answer is the same either way."""
    await ratelimit.hit(request.app.state.redis, "reset", _ip(request), settings.rate_login_ip)
    account = await account_service.find_by_email(session, params.email)
    if account is not None and account.suspended_at is None:
        token = await account_service.issue_email_token(session, account, "reset")
        await session.commit()
        await jobs.templated_mail(
            request, account.email, "reset", account.locale,
            {"name": account.username,
             "link": f"https://{settings.domain}/auth/password/edit?"
                     f"reset_password_token={token}"})
    return {}


@router.post("/api/v1/podium/password", openapi_extra=body_doc(ResetIn))
async def reset_password(session: Session, params: ResetIn = body(ResetIn)) -> dict:
    account = await account_service.consume_email_token(session, params.token, "reset")
    await account_service.set_password(session, account, params.password)
    await session.commit()
    return {}


@router.get("/api/v1/accounts/verify_credentials")
async def verify_credentials(session: Session, settings: AppSettings,
                             auth: Auth = require("read:accounts")) -> dict:
    return serializers.credential_account(user_of(auth), settings.domain)


@router.patch("/api/v1/accounts/update_credentials", openapi_extra=body_doc(CredentialsIn))
async def update_credentials(session: Session, settings: AppSettings,
                             auth: Auth = require("write:accounts"),
                             params: CredentialsIn = body(CredentialsIn)) -> dict:
    account = user_of(auth)
    for name in ("display_name", "note", "locale"):
        value = getattr(params, name)
        if value is not None:
            setattr(account, name, value)
    await session.commit()
    return serializers.credential_account(account, settings.domain)


@router.get("/api/v1/accounts/lookup")
async def lookup(session: Session, settings: AppSettings,
                 acct: Annotated[str, Query(max_length=330)]) -> dict:
    name, _, domain = acct.lstrip("@").partition("@")
    account = None
    if not domain or domain.lower() == settings.domain.lower():
        account = await account_service.find_by_username(session, name)
    if account is None or account.suspended_at is not None or not account.approved:
        raise not_found()
    return serializers.account(account, settings.domain)


@router.get("/api/v1/accounts/relationships")
async def relationships(session: Session, auth: Auth = require("read:follows"),
                        id: Annotated[list[str] | None, Query(alias="id[]", max_length=40)] = None,
                        ) -> list[dict]:
    wanted = [i for i in (ids.parse(x) for x in (id or [])) if i is not None]
    following, followed_by = await follow_service.relationships(session, user_of(auth), wanted)
    return [serializers.relationship(t, t in following, t in followed_by) for t in wanted]


@router.get("/api/v1/accounts/{account_id}")
async def get_account(session: Session, settings: AppSettings, account_id: str) -> dict:
    return serializers.account(await _account(session, account_id), settings.domain)


@router.get("/api/v1/accounts/{account_id}/statuses")
async def account_statuses(
    request: Request, response: Response, session: Session, settings: AppSettings,
    auth: OptionalAuth, account_id: str, page: Annotated[Page, Depends(page_params)],
    exclude_replies: bool = False, exclude_reblogs: bool = False, only_media: bool = False,
) -> list[dict]:
    account = await _account(session, account_id)
    viewer = auth.account if auth else None
    if only_media:
        return []  # media arrive with the media issue
    query = select(Status).where(Status.account_id == account.id,
                                 status_service.visible_clause(viewer))
    if exclude_replies:
        query = query.where(Status.in_reply_to_id.is_(None))
    if exclude_reblogs:
        query = query.where(Status.reblog_of_id.is_(None))
    rows = page.finish(list((await session.scalars(page.apply(query, Status.id))).all()))
    rendered = await status_service.render(session, settings, rows, viewer)
    if rows:
        link_header(request, response, ids.to_str(rows[0].id), ids.to_str(rows[-1].id))
    return rendered


@router.post("/api/v1/accounts/{account_id}/follow")
async def follow(session: Session, account_id: str, auth: Auth = require("write:follows")
                 ) -> dict:
    target = await _account(session, account_id)
    await follow_service.follow(session, user_of(auth), target)
    await session.commit()
    following, followed_by = await follow_service.relationships(session, user_of(auth),
                                                                [target.id])
    return serializers.relationship(target.id, target.id in following, target.id in followed_by)


@router.post("/api/v1/accounts/{account_id}/unfollow")
async def unfollow(session: Session, account_id: str, auth: Auth = require("write:follows")
                   ) -> dict:
    target = await _account(session, account_id)
    await follow_service.unfollow(session, user_of(auth), target)
    await session.commit()
    _, followed_by = await follow_service.relationships(session, user_of(auth), [target.id])
    return serializers.relationship(target.id, False, target.id in followed_by)


async def _follow_list(request: Request, response: Response, session, settings, account_id: str,
                       page: Page, followers: bool) -> list[dict]:
    account = await _account(session, account_id)
    mine, other = ((Follow.target_account_id, Follow.account_id) if followers
                   else (Follow.account_id, Follow.target_account_id))
    query = select(Follow.id, Account).join(Account, Account.id == other).where(
        mine == account.id, Account.suspended_at.is_(None))
    rows = page.finish(list((await session.execute(page.apply(query, Follow.id))).all()))
    if rows:
        link_header(request, response, ids.to_str(rows[0][0]), ids.to_str(rows[-1][0]))
    return [serializers.account(acc, settings.domain) for _, acc in rows]


@router.get("/api/v1/accounts/{account_id}/followers")
async def followers(request: Request, response: Response, session: Session,
                    settings: AppSettings, account_id: str,
                    page: Annotated[Page, Depends(page_params)]) -> list[dict]:
    return await _follow_list(request, response, session, settings, account_id, page, True)


@router.get("/api/v1/accounts/{account_id}/following")
async def following(request: Request, response: Response, session: Session,
                    settings: AppSettings, account_id: str,
                    page: Annotated[Page, Depends(page_params)]) -> list[dict]:
    return await _follow_list(request, response, session, settings, account_id, page, False)
