"""OAuth 2 grants: password, authorization_code (with optional PKCE), client_credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from podium_app import security
from podium_app.errors import ApiError
from podium_app.models import Account, OAuthApp, OAuthCode, OAuthToken
from podium_app.scopes import covers, normalize
from podium_app.services import accounts as account_service

CODE_LIFETIME = timedelta(minutes=10)


def oauth_error(status: int, error: str, description: str) -> ApiError:
    err = ApiError(status, error)
    err.description = description  # type: ignore[attr-defined]
    return err


async def client(session: AsyncSession, client_id: str | None,
                 client_secret: str | None = None, *, check_secret: bool = True) -> OAuthApp:
    app = await session.scalar(select(OAuthApp).where(OAuthApp.client_id == (client_id or "")))
    if app is None or (check_secret and not hmac.compare_digest(
            app.client_secret.encode(), (client_secret or "").encode())):
        raise oauth_error(401, "invalid_client", "Client authentication failed")
    return app


def granted_scopes(app: OAuthApp, requested: str | None) -> list[str]:
    scopes = normalize(requested) if requested else app.scopes.split()
    if scopes is None or not covers(app.scopes.split(), scopes):
        raise oauth_error(400, "invalid_scope",
                          "The requested scope is invalid, unknown, or not granted to the app")
    return scopes


async def issue(session: AsyncSession, app: OAuthApp | None, account: Account | None,
                scopes: list[str]) -> tuple[str, OAuthToken]:
    raw = security.new_token()
    token = OAuthToken(token_hash=security.token_hash(raw), app_id=app.id if app else None,
                       account_id=account.id if account else None, scopes=" ".join(scopes))
    session.add(token)
    await session.flush()
    return raw, token


async def authenticate(session: AsyncSession, login: str, password: str) -> Account:
    """Username or email plus password; 400 invalid_grant otherwise (no hint which part)."""
    account = (await account_service.find_by_email(session, login) if "@" in login
               else await account_service.find_by_username(session, login))
    if account is None or not security.verify_password(account.password_hash, password):
        if account is None:
            security.hash_password(password)  # same time whether or not the account exists
        raise oauth_error(400, "invalid_grant", "The username or password is not correct")
    if account.suspended_at is not None:
        raise oauth_error(403, "invalid_grant", "Your login is currently disabled")
    return account


async def new_code(session: AsyncSession, app: OAuthApp, account: Account, redirect_uri: str,
                   scopes: list[str], challenge: str | None) -> str:
    raw = security.new_token()
    session.add(OAuthCode(code_hash=security.token_hash(raw), app_id=app.id,
                          account_id=account.id, redirect_uri=redirect_uri,
                          scopes=" ".join(scopes), code_challenge=challenge,
                          expires_at=datetime.now(UTC) + CODE_LIFETIME))
    return raw


async def redeem_code(session: AsyncSession, app: OAuthApp, code: str, redirect_uri: str | None,
                      verifier: str | None) -> tuple[Account, list[str]]:
    row = await session.get(OAuthCode, security.token_hash(code))
    bad = oauth_error(400, "invalid_grant", "The authorization code is invalid or expired")
    if row is None:
        raise bad
    # Consumed on first use, whatever follows: a code tried with a wrong verifier is dead.
    await session.execute(delete(OAuthCode).where(OAuthCode.code_hash == row.code_hash))
    await session.commit()
    if row.app_id != app.id or row.expires_at < datetime.now(UTC):
        raise bad
    if redirect_uri is not None and redirect_uri != row.redirect_uri:
        raise bad
    if row.code_challenge:
        digest = hashlib.sha256((verifier or "").encode()).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if not hmac.compare_digest(expected, row.code_challenge):
            raise bad
    account = await session.get(Account, row.account_id)
    if account is None or account.suspended_at is not None:
        raise bad
    return account, row.scopes.split()
