"""The database schema (SQLAlchemy 2 declarative). Migrations in migrations/versions/.

Deletion is real: every row that hangs off a status or an account goes with it
(ON DELETE CASCADE), so deleting a post leaves no copy in the database.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from podium_app.ids import new_id

ROLES = ("owner", "admin", "moderator", "member")
DIGESTS = ("off", "daily", "weekly")
VISIBILITIES = ("public", "unlisted", "private", "direct")
NOTIFICATION_TYPES = ("follow", "mention", "reblog", "favourite", "status", "update",
                      "admin.report", "admin.sign_up")


class Base(DeclarativeBase):
    pass


def _pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)


def _fk(target: str, nullable: bool = False, index: bool = True) -> Mapped:
    return mapped_column(UUID(as_uuid=True), ForeignKey(target, ondelete="CASCADE"),
                         nullable=nullable, index=index)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(f"role IN {ROLES!r}", name="role_known"),
        CheckConstraint(f"digest IN {DIGESTS!r}", name="digest_known"),
        Index("accounts_digest_due", "digest_sent_at", postgresql_where=text("digest <> 'off'")),
        Index("accounts_username_lower", func.lower(text("username")), unique=True),
        Index("accounts_email_lower", func.lower(text("email")), unique=True),
        Index("accounts_waitlist", "created_at", postgresql_where=text("NOT approved")),
    )

    id: Mapped[uuid.UUID] = _pk()
    username: Mapped[str] = mapped_column(String(30), nullable=False)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    display_name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    note: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="member")
    # Desk mode: only publishers (and owners/admins) post.
    publisher: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    locale: Mapped[str] = mapped_column(String(16), nullable=False, default="en")
    approved: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when mail to `email` bounced hard (a 5.x.x DSN, podium_app.bounces): no more mail
    # goes there until the address changes. The detail is the DSN's status and diagnostic.
    email_bounced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    email_bounce_detail: Mapped[str | None] = mapped_column(String(500))
    # Denormalized counters: a million followers cannot be counted per request.
    followers_count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    following_count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    statuses_count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_status_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    invite_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("invites.id", ondelete="SET NULL"))
    # Email digest of the followed accounts' posts (services/digest.py): off, daily, weekly;
    # and when the last one was made (the next covers the posts since).
    digest: Mapped[str] = mapped_column(String(8), nullable=False, default="off",
                                        server_default="off")
    digest_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    # A new random UUID from the database on every UPDATE of the row (migration 0005): the
    # key of the rendered-status cache (docs/decisions/0270-rendered-status-cache.md).
    # NULL until the first UPDATE. Never set it.
    version: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class Invite(Base):
    __tablename__ = "invites"

    id: Mapped[uuid.UUID] = _pk()
    code: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="SET NULL", use_alter=True))
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()


class EmailToken(Base):
    """One-time tokens mailed for confirmation and password reset (only the hash is kept)."""

    __tablename__ = "email_tokens"
    __table_args__ = (CheckConstraint("purpose IN ('confirm', 'reset')", name="purpose_known"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[uuid.UUID] = _fk("accounts.id")
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class OAuthApp(Base):
    __tablename__ = "oauth_apps"

    id: Mapped[uuid.UUID] = _pk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    website: Mapped[str | None] = mapped_column(String(2000))
    redirect_uris: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    scopes: Mapped[str] = mapped_column(String(1000), nullable=False)
    client_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    client_secret: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = _now()


class OAuthCode(Base):
    __tablename__ = "oauth_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[uuid.UUID] = _fk("oauth_apps.id")
    account_id: Mapped[uuid.UUID] = _fk("accounts.id")
    redirect_uri: Mapped[str] = mapped_column(Text, nullable=False)
    scopes: Mapped[str] = mapped_column(String(1000), nullable=False)
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class OAuthToken(Base):
    """Access tokens; only a SHA-256 of the token is stored."""

    __tablename__ = "oauth_tokens"

    id: Mapped[uuid.UUID] = _pk()
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    app_id: Mapped[uuid.UUID | None] = _fk("oauth_apps.id", nullable=True)
    account_id: Mapped[uuid.UUID | None] = _fk("accounts.id", nullable=True)
    scopes: Mapped[str] = mapped_column(String(1000), nullable=False)
    created_at: Mapped[datetime] = _now()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Status(Base):
    __tablename__ = "statuses"
    __table_args__ = (
        CheckConstraint(f"visibility IN {VISIBILITIES!r}", name="visibility_known"),
        Index("statuses_account_id_id", "account_id", "id"),
        Index("statuses_public", "id", postgresql_where=text(
            "visibility = 'public' AND reblog_of_id IS NULL")),
        UniqueConstraint("account_id", "reblog_of_id", name="statuses_one_reblog"),
    )

    id: Mapped[uuid.UUID] = _pk()
    account_id: Mapped[uuid.UUID] = _fk("accounts.id", index=False)
    text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    content: Mapped[str] = mapped_column(Text, nullable=False, default="")
    spoiler_text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    sensitive: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    visibility: Mapped[str] = mapped_column(String(16), nullable=False, default="public")
    language: Mapped[str | None] = mapped_column(String(16))
    in_reply_to_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("statuses.id", ondelete="SET NULL"), index=True)
    in_reply_to_account_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="SET NULL"))
    reblog_of_id: Mapped[uuid.UUID | None] = _fk("statuses.id", nullable=True)
    replies_count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    reblogs_count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    favourites_count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    created_at: Mapped[datetime] = _now()
    edited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A new random UUID from the database on every UPDATE of the row and every change of
    # its mentions, tags and media (migration 0005): the key of the rendered-status cache
    # (docs/decisions/0270-rendered-status-cache.md). NULL until the first. Never set it.
    version: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class StatusEdit(Base):
    """A previous version of an edited status (Mastodon's status history)."""

    __tablename__ = "status_edits"

    id: Mapped[uuid.UUID] = _pk()
    status_id: Mapped[uuid.UUID] = _fk("statuses.id")
    text: Mapped[str] = mapped_column(Text, nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    spoiler_text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    sensitive: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = _now()


class Mention(Base):
    __tablename__ = "mentions"

    status_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("statuses.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True,
        index=True)


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[uuid.UUID] = _pk()
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)


class StatusTag(Base):
    __tablename__ = "status_tags"
    __table_args__ = (Index("status_tags_tag_status", "tag_id", "status_id"),)

    status_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("statuses.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)


class Favourite(Base):
    __tablename__ = "favourites"
    __table_args__ = (UniqueConstraint("account_id", "status_id", name="favourites_once"),)

    id: Mapped[uuid.UUID] = _pk()
    account_id: Mapped[uuid.UUID] = _fk("accounts.id", index=False)
    status_id: Mapped[uuid.UUID] = _fk("statuses.id")
    created_at: Mapped[datetime] = _now()


class Follow(Base):
    __tablename__ = "follows"
    __table_args__ = (
        UniqueConstraint("account_id", "target_account_id", name="follows_once"),
        Index("follows_target_account_id", "target_account_id", "account_id"),
        CheckConstraint("account_id <> target_account_id", name="follows_not_self"),
    )

    id: Mapped[uuid.UUID] = _pk()
    account_id: Mapped[uuid.UUID] = _fk("accounts.id", index=False)
    target_account_id: Mapped[uuid.UUID] = _fk("accounts.id", index=False)
    created_at: Mapped[datetime] = _now()


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(f"type IN {NOTIFICATION_TYPES!r}", name="type_known"),
        Index("notifications_account_id_id", "account_id", "id"),
    )

    id: Mapped[uuid.UUID] = _pk()
    account_id: Mapped[uuid.UUID] = _fk("accounts.id", index=False)
    from_account_id: Mapped[uuid.UUID] = _fk("accounts.id")
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    status_id: Mapped[uuid.UUID | None] = _fk("statuses.id", nullable=True)
    created_at: Mapped[datetime] = _now()


class Report(Base):
    __tablename__ = "reports"

    id: Mapped[uuid.UUID] = _pk()
    account_id: Mapped[uuid.UUID] = _fk("accounts.id")
    target_account_id: Mapped[uuid.UUID] = _fk("accounts.id")
    status_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), nullable=False, server_default="{}")
    comment: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    category: Mapped[str] = mapped_column(String(32), nullable=False, default="other")
    action_taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    action_taken_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _now()


class AuditEntry(Base):
    """Every moderator and admin action, kept when the target is gone."""

    __tablename__ = "audit_log"

    id: Mapped[uuid.UUID] = _pk()
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target_type: Mapped[str] = mapped_column(String(32), nullable=False)
    target_id: Mapped[str] = mapped_column(String(64), nullable=False)
    detail: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    created_at: Mapped[datetime] = _now()


class InstanceSetting(Base):
    """Settings an admin changes at run time (override the PODIUM_* defaults)."""

    __tablename__ = "instance_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict] = mapped_column(JSONB, nullable=False)


class MediaAttachment(Base):
    """An uploaded file. status_id is NULL until a post takes it; deleting the post deletes
    the row (CASCADE) and the API deletes the files at the origin."""

    __tablename__ = "media_attachments"

    id: Mapped[uuid.UUID] = _pk()
    account_id: Mapped[uuid.UUID] = _fk("accounts.id")
    status_id: Mapped[uuid.UUID | None] = _fk("statuses.id", nullable=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    type: Mapped[str] = mapped_column(String(16), nullable=False, default="image")
    file_name: Mapped[str | None] = mapped_column(String(100), index=True)
    preview_name: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(1500), nullable=False, default="")
    blurhash: Mapped[str | None] = mapped_column(String(100))
    meta: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    created_at: Mapped[datetime] = _now()
