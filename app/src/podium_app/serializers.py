"""Mastodon entities as JSON dicts (Account, Status, Relationship, Notification, ...)."""

from __future__ import annotations

import html
import uuid
from datetime import datetime

from podium_app.ids import to_str
from podium_app.models import Account, Status

DEFAULT_AVATAR = "/avatars/original/missing.png"


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def account(acc: Account, domain: str) -> dict:
    url = f"https://{domain}/@{acc.username}"
    return {
        "id": to_str(acc.id),
        "username": acc.username,
        "acct": acc.username,
        "display_name": acc.display_name,
        "locked": False,
        "bot": False,
        "discoverable": True,
        "group": False,
        "created_at": iso(acc.created_at.replace(hour=0, minute=0, second=0, microsecond=0)),
        "note": f"<p>{html.escape(acc.note)}</p>" if acc.note else "",
        "url": url,
        "uri": f"https://{domain}/users/{acc.username}",
        "avatar": f"https://{domain}{DEFAULT_AVATAR}",
        "avatar_static": f"https://{domain}{DEFAULT_AVATAR}",
        "header": f"https://{domain}/headers/original/missing.png",
        "header_static": f"https://{domain}/headers/original/missing.png",
        "followers_count": acc.followers_count,
        "following_count": acc.following_count,
        "statuses_count": acc.statuses_count,
        "last_status_at": acc.last_status_at.date().isoformat() if acc.last_status_at else None,
        "emojis": [],
        "fields": [],
        "roles": [],
    }


def credential_account(acc: Account, domain: str) -> dict:
    data = account(acc, domain)
    data["source"] = {"privacy": "public", "sensitive": False, "language": acc.locale,
                      "note": acc.note, "fields": [], "follow_requests_count": 0,
                      # Podium: mail to the account's address bounced hard and stopped.
                      "email_undeliverable": acc.email_bounced_at is not None}
    data["role"] = {"id": acc.role, "name": acc.role, "permissions": "0", "color": "",
                    "highlighted": acc.role != "member"}
    return data


def admin_account(acc: Account, domain: str) -> dict:
    """Mastodon's Admin::Account with the fields Podium keeps, plus the bounce state."""
    return {
        "id": to_str(acc.id), "username": acc.username, "domain": None,
        "created_at": iso(acc.created_at), "email": acc.email, "ip": None, "ips": [],
        "locale": acc.locale, "invite_request": None,
        "role": {"id": acc.role, "name": acc.role, "permissions": "0", "color": "",
                 "highlighted": acc.role != "member"},
        "confirmed": acc.confirmed_at is not None, "approved": acc.approved,
        "suspended": acc.suspended_at is not None, "silenced": False, "disabled": False,
        "account": account(acc, domain),
        "email_bounced_at": iso(acc.email_bounced_at),
        "email_bounce_detail": acc.email_bounce_detail,
    }


def status(st: Status, ctx: StatusContext) -> dict:
    author = ctx.accounts[st.account_id]
    url = f"https://{ctx.domain}/@{author.username}/{to_str(st.id)}"
    reblog = None
    if st.reblog_of_id is not None:
        original = ctx.statuses.get(st.reblog_of_id)
        reblog = status(original, ctx) if original is not None else None
    return {
        "id": to_str(st.id),
        "uri": f"https://{ctx.domain}/users/{author.username}/statuses/{to_str(st.id)}",
        "url": url,
        "created_at": iso(st.created_at),
        "edited_at": iso(st.edited_at),
        "account": ctx.account(author),
        "content": "" if reblog else st.content,
        "visibility": st.visibility,
        "sensitive": st.sensitive,
        "spoiler_text": st.spoiler_text,
        "media_attachments": ctx.media.get(st.id, []),
        "application": None,
        "mentions": [
            {"id": to_str(a.id), "username": a.username, "acct": a.username,
             "url": f"https://{ctx.domain}/@{a.username}"}
            for a in (ctx.accounts[i] for i in ctx.mentions.get(st.id, ()) if i in ctx.accounts)
        ],
        "tags": [{"name": t, "url": f"https://{ctx.domain}/tags/{t}"}
                 for t in ctx.tags.get(st.id, ())],
        "emojis": [],
        "reblogs_count": st.reblogs_count,
        "favourites_count": st.favourites_count,
        "replies_count": st.replies_count,
        "in_reply_to_id": to_str(st.in_reply_to_id) if st.in_reply_to_id else None,
        "in_reply_to_account_id": (to_str(st.in_reply_to_account_id)
                                   if st.in_reply_to_account_id else None),
        "reblog": reblog,
        "poll": None,
        "card": None,
        "language": st.language,
        "text": None,
        "favourited": st.id in ctx.favourited,
        "reblogged": st.id in ctx.reblogged,
        "muted": False,
        "bookmarked": False,
        "pinned": False,
        "filtered": [],
    }


class StatusContext:
    """Everything needed to render a batch of statuses, loaded in a few queries."""

    def __init__(self, domain: str):
        self.domain = domain
        self.accounts: dict[uuid.UUID, Account] = {}
        self.statuses: dict[uuid.UUID, Status] = {}
        self.mentions: dict[uuid.UUID, list[uuid.UUID]] = {}
        self.tags: dict[uuid.UUID, list[str]] = {}
        self.favourited: set[uuid.UUID] = set()
        self.reblogged: set[uuid.UUID] = set()
        # Rendered MediaAttachment entities per status id, in order.
        self.media: dict[uuid.UUID, list[dict]] = {}
        # Ids of the statuses with media attached (loaded into `media` when rendered).
        self.with_media: set[uuid.UUID] = set()
        self._rendered_accounts: dict[uuid.UUID, dict] = {}

    def account(self, acc: Account) -> dict:
        """The Account entity, rendered once per batch (a page often has several posts by
        one author; the entities are only read after rendering)."""
        found = self._rendered_accounts.get(acc.id)
        if found is None:
            found = self._rendered_accounts[acc.id] = account(acc, self.domain)
        return found


def relationship(target_id: uuid.UUID, following: bool, followed_by: bool) -> dict:
    return {
        "id": to_str(target_id), "following": following, "showing_reblogs": following,
        "notifying": False, "languages": None, "followed_by": followed_by,
        "blocking": False, "blocked_by": False, "muting": False,
        "muting_notifications": False, "requested": False, "requested_by": False,
        "domain_blocking": False, "endorsed": False, "note": "",
    }
