"""Media attachments.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "media_attachments",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("account_id", postgresql.UUID(as_uuid=True),
                  sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status_id", postgresql.UUID(as_uuid=True),
                  sa.ForeignKey("statuses.id", ondelete="CASCADE"), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("file_name", sa.String(100)),
        sa.Column("preview_name", sa.String(100)),
        sa.Column("description", sa.String(1500), nullable=False),
        sa.Column("blurhash", sa.String(100)),
        sa.Column("meta", postgresql.JSONB(), nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    )
    op.create_index("ix_media_attachments_account_id", "media_attachments", ["account_id"])
    op.create_index("ix_media_attachments_status_id", "media_attachments", ["status_id"])
    op.create_index("ix_media_attachments_file_name", "media_attachments", ["file_name"])


def downgrade() -> None:
    op.drop_table("media_attachments")
