"""Moderation: reports, suspension, post removal, waitlist admission; every action audited."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from podium_app.errors import forbidden
from podium_app.models import Account, AuditEntry, Report, Status
from podium_app.services import accounts as account_service
from podium_app.services import statuses as status_service

RANK = {"member": 0, "moderator": 1, "admin": 2, "owner": 3}


def is_staff(account: Account, at_least: str = "moderator") -> bool:
    return RANK.get(account.role, 0) >= RANK[at_least]


def audit(session: AsyncSession, actor: Account, action: str, target_type: str,
          target_id: uuid.UUID | str, **detail: Any) -> None:
    session.add(AuditEntry(actor_id=actor.id, action=action, target_type=target_type,
                           target_id=str(getattr(target_id, "int", target_id)), detail=detail))


def check_outranks(actor: Account, target: Account) -> None:
    if RANK.get(actor.role, 0) <= RANK.get(target.role, 0):
        raise forbidden("You cannot moderate an account of your own rank or above")


async def suspend(session: AsyncSession, actor: Account, target: Account,
                  report: Report | None = None) -> None:
    """Hide the account and its content, revoke its tokens (not committed)."""
    check_outranks(actor, target)
    target.suspended_at = account_service.now()
    await account_service.revoke_tokens(session, target.id)
    if report is not None:
        report.action_taken_at, report.action_taken_by_id = account_service.now(), actor.id
    audit(session, actor, "suspend", "account", target.id, username=target.username,
          report=str(report.id.int) if report else None)


async def unsuspend(session: AsyncSession, actor: Account, target: Account) -> None:
    check_outranks(actor, target)
    target.suspended_at = None
    audit(session, actor, "unsuspend", "account", target.id, username=target.username)


async def remove_status(session: AsyncSession, actor: Account, st: Status) -> list[uuid.UUID]:
    author = await session.get(Account, st.account_id)
    if author is not None and author.id != actor.id:
        check_outranks(actor, author)
    audit(session, actor, "remove_status", "status", st.id,
          author=author.username if author else None, text=st.text[:500])
    return await status_service.remove(session, st)


async def resolve(session: AsyncSession, actor: Account, report: Report) -> None:
    report.action_taken_at, report.action_taken_by_id = account_service.now(), actor.id
    audit(session, actor, "resolve_report", "report", report.id)


async def approve(session: AsyncSession, actor: Account, target: Account) -> None:
    target.approved = True
    audit(session, actor, "approve", "account", target.id, username=target.username)


async def admit(session: AsyncSession, actor: Account, count: int) -> list[Account]:
    admitted = await account_service.admit(session, count)
    audit(session, actor, "admit_waitlist", "instance", "waitlist",
          count=len(admitted), usernames=[a.username for a in admitted])
    return admitted


async def staff(session: AsyncSession) -> list[Account]:
    return list((await session.scalars(select(Account).where(
        Account.role.in_(("owner", "admin", "moderator")), Account.suspended_at.is_(None))
        )).all())
