"""Accounts: creation under the registration mode, confirmation, password reset, roles."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from podium_app import security
from podium_app.errors import ApiError, unprocessable
from podium_app.models import ROLES, Account, EmailToken, Invite, OAuthToken

USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{1,30}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}$")
MIN_PASSWORD = 8
TOKEN_LIFETIME = {"confirm": timedelta(days=2), "reset": timedelta(hours=2)}


def now() -> datetime:
    return datetime.now(UTC)


async def find_by_username(session: AsyncSession, username: str) -> Account | None:
    return await session.scalar(
        select(Account).where(func.lower(Account.username) == username.lower()))


async def find_by_email(session: AsyncSession, email: str) -> Account | None:
    return await session.scalar(select(Account).where(func.lower(Account.email) == email.lower()))


async def create_account(
    session: AsyncSession, *, username: str, email: str, password: str,
    role: str = "member", approved: bool = True, confirmed: bool = False,
    publisher: bool = False, locale: str = "en", invite: Invite | None = None,
) -> Account:
    """Validate and insert an account (not committed). Raises ApiError 422 naming the field."""
    if not USERNAME_RE.match(username):
        raise unprocessable("username must be 1-30 letters, digits or underscores")
    if not EMAIL_RE.match(email) or len(email) > 320:
        raise unprocessable("email is not a valid address")
    if not MIN_PASSWORD <= len(password) <= 1000:
        raise unprocessable(f"password must be {MIN_PASSWORD} to 1000 characters")
    if role not in ROLES:
        raise unprocessable(f"role must be one of {', '.join(ROLES)}")
    if await find_by_username(session, username):
        raise unprocessable("username is already taken")
    if await find_by_email(session, email):
        raise unprocessable("email is already registered")
    account = Account(
        username=username, email=email, password_hash=security.hash_password(password),
        role=role, approved=approved, publisher=publisher, locale=locale,
        confirmed_at=now() if confirmed else None,
        invite_id=invite.id if invite else None,
    )
    session.add(account)
    await session.flush()
    return account


async def use_invite(session: AsyncSession, code: str | None) -> Invite:
    if not code:
        raise ApiError(403, "Registration on this server requires an invite code")
    invite = await session.scalar(select(Invite).where(Invite.code == code).with_for_update())
    if invite is None or (invite.expires_at and invite.expires_at < now()) or (
            invite.max_uses is not None and invite.uses >= invite.max_uses):
        raise ApiError(403, "This invite code is not valid or has expired")
    invite.uses += 1
    return invite


async def waitlist_position(session: AsyncSession, account: Account) -> int | None:
    """1-based place of a waitlisted account (None once admitted)."""
    if account.approved:
        return None
    ahead = await session.scalar(select(func.count()).select_from(Account).where(
        Account.approved.is_(False), Account.created_at < account.created_at))
    return int(ahead or 0) + 1


async def admit(session: AsyncSession, count: int) -> list[Account]:
    """Admit the `count` longest-waiting accounts (oldest first)."""
    rows = (await session.scalars(
        select(Account).where(Account.approved.is_(False)).order_by(Account.created_at)
        .limit(count).with_for_update(skip_locked=True))).all()
    for account in rows:
        account.approved = True
    return list(rows)


async def issue_email_token(session: AsyncSession, account: Account, purpose: str) -> str:
    token = security.new_token()
    session.add(EmailToken(token_hash=security.token_hash(token), account_id=account.id,
                           purpose=purpose, expires_at=now() + TOKEN_LIFETIME[purpose]))
    return token


async def consume_email_token(session: AsyncSession, token: str, purpose: str) -> Account:
    row = await session.get(EmailToken, security.token_hash(token))
    if row is None or row.purpose != purpose or row.expires_at < now():
        raise ApiError(404, "This link is not valid or has expired")
    await session.delete(row)
    account = await session.get(Account, row.account_id)
    if account is None:
        raise ApiError(404, "This link is not valid or has expired")
    return account


async def set_password(session: AsyncSession, account: Account, password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= 1000:
        raise unprocessable(f"password must be {MIN_PASSWORD} to 1000 characters")
    account.password_hash = security.hash_password(password)
    await revoke_tokens(session, account.id)


async def revoke_tokens(session: AsyncSession, account_id: uuid.UUID) -> None:
    await session.execute(
        OAuthToken.__table__.delete().where(OAuthToken.account_id == account_id))


async def set_role(session: AsyncSession, account: Account, role: str) -> None:
    if role not in ROLES:
        raise unprocessable(f"role must be one of {', '.join(ROLES)}")
    account.role = role


async def bump(session: AsyncSession, account_id: uuid.UUID, **deltas: int) -> None:
    """Add to denormalized counters atomically (followers_count=+1, ...)."""
    values = {name: getattr(Account, name) + delta for name, delta in deltas.items()}
    await session.execute(update(Account).where(Account.id == account_id).values(**values))
