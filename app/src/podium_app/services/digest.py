"""Email digests: a summary of the posts of the accounts someone follows, daily or weekly.

The setting is per account (Account.digest: off, daily, weekly; the web settings page). The
worker's cron job (tasks.send_digests, hourly) finds the accounts whose period has passed
since their last digest, and mails each one the posts made since then through the mail queue
(send_templated_mail, with its retries), in the account's language, with a one-click
unsubscribe link (RFC 8058). Nothing new, no mail: the period starts again.

A digest is marked made before its mail is queued, in the same transaction that reads the
posts: a second run (arq runs a cron job once per slot, but a worker may restart) finds
nothing due, so nobody gets the same digest twice; a queue that is down loses that digest
(logged), never sends it twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from podium_app import ids
from podium_app.models import Account, Follow, Status
from podium_app.settings import Settings

PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
MAX_POSTS = 20  # listed in one digest; the count says how many there were in all
BATCH = 200
SALT = "podium.digest.unsubscribe"


@dataclass
class Digest:
    account_id: uuid.UUID
    to: str
    locale: str
    params: dict
    unsubscribe_url: str


def unsubscribe_token(settings: Settings, account: Account) -> str:
    """A signed token naming the account; the link in every digest turns its digest off."""
    return URLSafeSerializer(settings.require_secret(), salt=SALT).dumps(str(account.id))


def account_of_token(settings: Settings, token: str) -> uuid.UUID | None:
    try:
        value = URLSafeSerializer(settings.require_secret(), salt=SALT).loads(token)
        return uuid.UUID(value)
    except (BadSignature, ValueError, TypeError):
        return None


def _plain(text: str, limit: int = 280) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


async def _posts(session: AsyncSession, account: Account, since: datetime,
                 until: datetime) -> tuple[int, list[tuple[Status, Account]]]:
    """(how many, the first MAX_POSTS) original posts of followed accounts in the period,
    among those the follower may see (public, unlisted and followers-only)."""
    where = (Status.account_id.in_(select(Follow.target_account_id).where(
        Follow.account_id == account.id)),
        Status.created_at > since, Status.created_at <= until,
        Status.reblog_of_id.is_(None),
        Status.visibility.in_(("public", "unlisted", "private")))
    count = await session.scalar(select(func.count()).select_from(Status).join(
        Account, Account.id == Status.account_id).where(*where,
                                                        Account.suspended_at.is_(None)))
    rows = (await session.execute(
        select(Status, Account).join(Account, Account.id == Status.account_id)
        .where(*where, Account.suspended_at.is_(None))
        .order_by(Status.created_at.desc()).limit(MAX_POSTS))).all()
    return int(count or 0), [(row[0], row[1]) for row in rows]


async def due(session: AsyncSession, settings: Settings, now: datetime,
              after: uuid.UUID | None = None) -> tuple[list[Digest], uuid.UUID | None]:
    """The digests due at `now` for the next BATCH accounts (by id, after `after`), each
    marked made (not committed). Returns the digests and the last account id looked at
    (None when there are no more)."""
    query = select(Account).where(
        Account.digest.in_(tuple(PERIODS)), Account.confirmed_at.is_not(None),
        Account.approved.is_(True), Account.suspended_at.is_(None),
        or_(*[(Account.digest == name) & (
            Account.digest_sent_at.is_(None) | (Account.digest_sent_at <= now - period))
            for name, period in PERIODS.items()]),
    ).order_by(Account.id).limit(BATCH).with_for_update(skip_locked=True)
    if after is not None:
        query = query.where(Account.id > after)
    accounts = list((await session.scalars(query)).all())
    digests = []
    for account in accounts:
        since = account.digest_sent_at or now - PERIODS[account.digest]
        count, posts = await _posts(session, account, since, now)
        account.digest_sent_at = now
        if count == 0:
            continue
        base = f"https://{settings.domain}"
        token = unsubscribe_token(settings, account)
        digests.append(Digest(
            account_id=account.id, to=account.email, locale=account.locale,
            unsubscribe_url=f"{base}/digest/unsubscribe/{token}",
            params={
                "name": account.display_name or account.username, "count": count,
                "link": f"{base}/home", "settings_url": f"{base}/settings",
                "unsubscribe_url": f"{base}/digest/unsubscribe/{token}",
                "posts": [{"author": author.display_name or author.username,
                           "text": _plain(st.text), "created_at": st.created_at.isoformat(),
                           "url": f"{base}/@{author.username}/{ids.to_str(st.id)}"}
                          for st, author in posts],
            }))
    last = accounts[-1].id if len(accounts) == BATCH else None
    return digests, last
