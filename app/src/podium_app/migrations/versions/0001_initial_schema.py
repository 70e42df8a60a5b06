"""Initial schema: accounts, OAuth, statuses, follows, notifications, moderation.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 14:24:29.763843
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instance_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "invites",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("created_by_id", sa.UUID(), nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "oauth_apps",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("website", sa.String(length=2000), nullable=True),
        sa.Column("redirect_uris", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("scopes", sa.String(length=1000), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("client_secret", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id"),
    )
    op.create_table(
        "tags",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("username", sa.String(length=30), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("publisher", sa.Boolean(), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("followers_count", sa.BigInteger(), nullable=False),
        sa.Column("following_count", sa.BigInteger(), nullable=False),
        sa.Column("statuses_count", sa.BigInteger(), nullable=False),
        sa.Column("last_status_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invite_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("role IN ('owner', 'admin', 'moderator', 'member')", name="role_known"),
        sa.ForeignKeyConstraint(["invite_id"], ["invites.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "accounts_email_lower", "accounts", [sa.literal_column("lower(email)")], unique=True
    )
    op.create_index(
        "accounts_username_lower", "accounts", [sa.literal_column("lower(username)")], unique=True
    )
    op.create_index(
        "accounts_waitlist",
        "accounts",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("NOT approved"),
    )
    # invites and accounts refer to each other: this key is added once both exist.
    op.create_foreign_key(
        "invites_created_by_id_fkey",
        "invites",
        "accounts",
        ["created_by_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("actor_id", sa.UUID(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column(
            "detail", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["actor_id"], ["accounts.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "email_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("purpose IN ('confirm', 'reset')", name="purpose_known"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(
        op.f("ix_email_tokens_account_id"), "email_tokens", ["account_id"], unique=False
    )
    op.create_table(
        "follows",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("target_account_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("account_id <> target_account_id", name="follows_not_self"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["target_account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "target_account_id", name="follows_once"),
    )
    op.create_index(
        "follows_target_account_id", "follows", ["target_account_id", "account_id"], unique=False
    )
    op.create_table(
        "oauth_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scopes", sa.String(length=1000), nullable=False),
        sa.Column("code_challenge", sa.String(length=128), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["app_id"], ["oauth_apps.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    op.create_index(op.f("ix_oauth_codes_account_id"), "oauth_codes", ["account_id"], unique=False)
    op.create_index(op.f("ix_oauth_codes_app_id"), "oauth_codes", ["app_id"], unique=False)
    op.create_table(
        "oauth_tokens",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.UUID(), nullable=True),
        sa.Column("account_id", sa.UUID(), nullable=True),
        sa.Column("scopes", sa.String(length=1000), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["app_id"], ["oauth_apps.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(
        op.f("ix_oauth_tokens_account_id"), "oauth_tokens", ["account_id"], unique=False
    )
    op.create_index(op.f("ix_oauth_tokens_app_id"), "oauth_tokens", ["app_id"], unique=False)
    op.create_table(
        "reports",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("target_account_id", sa.UUID(), nullable=False),
        sa.Column("status_ids", postgresql.ARRAY(sa.UUID()), server_default="{}", nullable=False),
        sa.Column("comment", sa.String(length=1000), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("action_taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("action_taken_by_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["action_taken_by_id"], ["accounts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["target_account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_reports_account_id"), "reports", ["account_id"], unique=False)
    op.create_index(
        op.f("ix_reports_target_account_id"), "reports", ["target_account_id"], unique=False
    )
    op.create_table(
        "statuses",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("spoiler_text", sa.Text(), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("in_reply_to_id", sa.UUID(), nullable=True),
        sa.Column("in_reply_to_account_id", sa.UUID(), nullable=True),
        sa.Column("reblog_of_id", sa.UUID(), nullable=True),
        sa.Column("replies_count", sa.BigInteger(), nullable=False),
        sa.Column("reblogs_count", sa.BigInteger(), nullable=False),
        sa.Column("favourites_count", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "visibility IN ('public', 'unlisted', 'private', 'direct')", name="visibility_known"
        ),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["in_reply_to_account_id"], ["accounts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["in_reply_to_id"], ["statuses.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["reblog_of_id"], ["statuses.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "reblog_of_id", name="statuses_one_reblog"),
    )
    op.create_index(
        op.f("ix_statuses_in_reply_to_id"), "statuses", ["in_reply_to_id"], unique=False
    )
    op.create_index(op.f("ix_statuses_reblog_of_id"), "statuses", ["reblog_of_id"], unique=False)
    op.create_index("statuses_account_id_id", "statuses", ["account_id", "id"], unique=False)
    op.create_index(
        "statuses_public",
        "statuses",
        ["id"],
        unique=False,
        postgresql_where=sa.text("visibility = 'public' AND reblog_of_id IS NULL"),
    )
    op.create_table(
        "favourites",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("status_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["status_id"], ["statuses.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "status_id", name="favourites_once"),
    )
    op.create_index(op.f("ix_favourites_status_id"), "favourites", ["status_id"], unique=False)
    op.create_table(
        "mentions",
        sa.Column("status_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["status_id"], ["statuses.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("status_id", "account_id"),
    )
    op.create_index(op.f("ix_mentions_account_id"), "mentions", ["account_id"], unique=False)
    op.create_table(
        "notifications",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("from_account_id", sa.UUID(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("status_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "type IN ('follow', 'mention', 'reblog', 'favourite', 'status', 'update', "
            "'admin.report', 'admin.sign_up')",
            name="type_known",
        ),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["from_account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["status_id"], ["statuses.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_notifications_from_account_id"), "notifications", ["from_account_id"], unique=False
    )
    op.create_index(
        op.f("ix_notifications_status_id"), "notifications", ["status_id"], unique=False
    )
    op.create_index(
        "notifications_account_id_id", "notifications", ["account_id", "id"], unique=False
    )
    op.create_table(
        "status_edits",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("status_id", sa.UUID(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("spoiler_text", sa.Text(), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["status_id"], ["statuses.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_status_edits_status_id"), "status_edits", ["status_id"], unique=False)
    op.create_table(
        "status_tags",
        sa.Column("status_id", sa.UUID(), nullable=False),
        sa.Column("tag_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(["status_id"], ["statuses.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tag_id"], ["tags.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("status_id", "tag_id"),
    )
    op.create_index("status_tags_tag_status", "status_tags", ["tag_id", "status_id"], unique=False)


def downgrade() -> None:
    op.drop_index("status_tags_tag_status", table_name="status_tags")
    op.drop_table("status_tags")
    op.drop_index(op.f("ix_status_edits_status_id"), table_name="status_edits")
    op.drop_table("status_edits")
    op.drop_index("notifications_account_id_id", table_name="notifications")
    op.drop_index(op.f("ix_notifications_status_id"), table_name="notifications")
    op.drop_index(op.f("ix_notifications_from_account_id"), table_name="notifications")
    op.drop_table("notifications")
    op.drop_index(op.f("ix_mentions_account_id"), table_name="mentions")
    op.drop_table("mentions")
    op.drop_index(op.f("ix_favourites_status_id"), table_name="favourites")
    op.drop_table("favourites")
    op.drop_index(
        "statuses_public",
        table_name="statuses",
        postgresql_where=sa.text("visibility = 'public' AND reblog_of_id IS NULL"),
    )
    op.drop_index("statuses_account_id_id", table_name="statuses")
    op.drop_index(op.f("ix_statuses_reblog_of_id"), table_name="statuses")
    op.drop_index(op.f("ix_statuses_in_reply_to_id"), table_name="statuses")
    op.drop_table("statuses")
    op.drop_index(op.f("ix_reports_target_account_id"), table_name="reports")
    op.drop_index(op.f("ix_reports_account_id"), table_name="reports")
    op.drop_table("reports")
    op.drop_index(op.f("ix_oauth_tokens_app_id"), table_name="oauth_tokens")
    op.drop_index(op.f("ix_oauth_tokens_account_id"), table_name="oauth_tokens")
    op.drop_table("oauth_tokens")
    op.drop_index(op.f("ix_oauth_codes_app_id"), table_name="oauth_codes")
    op.drop_index(op.f("ix_oauth_codes_account_id"), table_name="oauth_codes")
    op.drop_table("oauth_codes")
    op.drop_index("follows_target_account_id", table_name="follows")
    op.drop_table("follows")
    op.drop_index(op.f("ix_email_tokens_account_id"), table_name="email_tokens")
    op.drop_table("email_tokens")
    op.drop_table("audit_log")
    op.drop_constraint("invites_created_by_id_fkey", "invites", type_="foreignkey")
    op.drop_index(
        "accounts_waitlist", table_name="accounts", postgresql_where=sa.text("NOT approved")
    )
    op.drop_index("accounts_username_lower", table_name="accounts")
    op.drop_index("accounts_email_lower", table_name="accounts")
    op.drop_table("accounts")
    op.drop_table("tags")
    op.drop_table("oauth_apps")
    op.drop_table("invites")
    op.drop_table("instance_settings")
