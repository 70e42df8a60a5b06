"""/oauth/authorize, /oauth/token, /oauth/revoke (Mastodon's OAuth 2 endpoints).

/oauth/authorize shows a minimal sign-in and consent form (the web UI replaces it with its
own pages); signing in there issues a code and redirects to the app.
"""

from __future__ import annotations

import html
from typing import Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import delete

from podium_app import ratelimit, security
from podium_app.api.deps import AppSettings, Session, body, body_doc
from podium_app.errors import ApiError
from podium_app.models import OAuthToken
from podium_app.services import oauth

router = APIRouter(tags=["oauth"])
OOB = "urn:ietf:wg:oauth:2.0:oob"


class TokenIn(BaseModel):
    grant_type: Literal["password", "authorization_code", "client_credentials"]
    client_id: str = Field(max_length=100)
    client_secret: str = Field(max_length=100)
    scope: str | None = Field(None, max_length=1000)
    username: str | None = Field(None, max_length=320)
    password: str | None = Field(None, max_length=1000)
    code: str | None = Field(None, max_length=200)
    redirect_uri: str | None = Field(None, max_length=2000)
    code_verifier: str | None = Field(None, max_length=200)


class RevokeIn(BaseModel):
    client_id: str = Field(max_length=100)
    client_secret: str = Field(max_length=100)
    token: str = Field(max_length=200)


class AuthorizeIn(BaseModel):
    client_id: str = Field(max_length=100)
    redirect_uri: str = Field(OOB, max_length=2000)
    response_type: Literal["code"] = "code"
    scope: str | None = Field(None, max_length=1000)
    state: str | None = Field(None, max_length=1000)
    code_challenge: str | None = Field(None, max_length=128)
    code_challenge_method: Literal["S256"] | None = None
    username: str | None = Field(None, max_length=320)
    password: str | None = Field(None, max_length=1000)


def _oauth_json(err: ApiError) -> JSONResponse:
    return JSONResponse({"error": err.message,
                         "error_description": getattr(err, "description", err.message)},
                        status_code=err.status, headers=err.headers)


def _token_json(raw: str, token: OAuthToken) -> dict:
    return {"access_token": raw, "token_type": "Bearer", "scope": token.scopes,
            "created_at": int(token.created_at.timestamp()) if token.created_at else 0}


@router.post("/oauth/token", openapi_extra=body_doc(TokenIn))
async def token(request: Request, session: Session, settings: AppSettings,
                params: TokenIn = body(TokenIn)):
    try:
        app = await oauth.client(session, params.client_id, params.client_secret)
        account = None
        if params.grant_type == "client_credentials":
            scopes = oauth.granted_scopes(app, params.scope)
        elif params.grant_type == "password":
            await ratelimit.hit(request.app.state.redis, "login", _ip(request),
                                settings.rate_login_ip)
            if not params.username or not params.password:
                raise oauth.oauth_error(400, "invalid_request",
                                        "username and password are required")
            scopes = oauth.granted_scopes(app, params.scope)
            account = await oauth.authenticate(session, params.username, params.password)
        else:
            if not params.code:
                raise oauth.oauth_error(400, "invalid_request", "code is required")
            account, scopes = await oauth.redeem_code(session, app, params.code,
                                                      params.redirect_uri, params.code_verifier)
        raw, row = await oauth.issue(session, app, account, scopes)
        await session.commit()
        await session.refresh(row)
        return _token_json(raw, row)
    except ApiError as err:
        if err.status == 429:
            raise
        await session.rollback()
        return _oauth_json(err)


@router.post("/oauth/revoke", openapi_extra=body_doc(RevokeIn))
async def revoke(session: Session, params: RevokeIn = body(RevokeIn)):
    try:
        app = await oauth.client(session, params.client_id, params.client_secret)
    except ApiError as err:
        return _oauth_json(err)
    await session.execute(delete(OAuthToken).where(
        OAuthToken.token_hash == security.token_hash(params.token), OAuthToken.app_id == app.id))
    await session.commit()
    return {}


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _form(params: AuthorizeIn, app_name: str, message: str = "") -> HTMLResponse:
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{html.escape(str(v), quote=True)}">'
        for k, v in params.model_dump(exclude={"username", "password"}).items() if v is not None)
    note = f'<p role="alert">{html.escape(message)}</p>' if message else ""
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Authorize {html.escape(app_name)}</title></head><body><main>
<h1>Authorize {html.escape(app_name)}</h1>{note}
<p>{html.escape(app_name)} asks for: {html.escape(params.scope or "read")}</p>
<form method="post" action="/oauth/authorize">{hidden}
<label>Username or email <input name="username" autocomplete="username" required></label>
<label>Password <input type="password" name="password" autocomplete="current-password"
required></label><button type="submit">Authorize</button></form></main></body></html>"""
    headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
               "Content-Security-Policy": "default-src 'none'; form-action 'self'"}
    return HTMLResponse(page, status_code=422 if message else 200, headers=headers)


async def _check_client(session, params: AuthorizeIn):
    try:
        app = await oauth.client(session, params.client_id, check_secret=False)
    except ApiError as err:
        raise ApiError(400, "Unknown client_id") from err
    if params.redirect_uri not in app.redirect_uris:
        raise ApiError(400, "redirect_uri is not one registered by the app")
    try:
        scopes = oauth.granted_scopes(app, params.scope)
    except ApiError as err:
        raise ApiError(400, "The requested scope is not granted to the app") from err
    return app, scopes


@router.get("/oauth/authorize", response_class=HTMLResponse)
async def authorize_form(session: Session, request: Request):
    params = await _authorize_params(request)
    app, _ = await _check_client(session, params)
    return _form(params, app.name)


@router.post("/oauth/authorize", response_class=HTMLResponse,
             openapi_extra=body_doc(AuthorizeIn))
async def authorize(request: Request, session: Session, settings: AppSettings):
    params = await _authorize_params(request)
    app, scopes = await _check_client(session, params)
    await ratelimit.hit(request.app.state.redis, "login", _ip(request), settings.rate_login_ip)
    try:
        account = await oauth.authenticate(session, params.username or "",
                                           params.password or "")
    except ApiError:
        return _form(params, app.name, "The username or password is not correct.")
    code = await oauth.new_code(session, app, account, params.redirect_uri, scopes,
                                params.code_challenge)
    await session.commit()
    if params.redirect_uri == OOB:
        return HTMLResponse(f"<!doctype html><title>Code</title><p>Your authorization code: "
                            f"<code>{html.escape(code)}</code></p>",
                            headers={"Cache-Control": "no-store"})
    query = {"code": code, **({"state": params.state} if params.state else {})}
    sep = "&" if "?" in params.redirect_uri else "?"
    return RedirectResponse(f"{params.redirect_uri}{sep}{urlencode(query)}", status_code=302)


async def _authorize_params(request: Request) -> AuthorizeIn:
    from podium_app.api.deps import parse_params

    return await parse_params(request, AuthorizeIn)
