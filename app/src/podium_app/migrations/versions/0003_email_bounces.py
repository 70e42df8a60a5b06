"""Hard bounces recorded on the account (podium_app.bounces).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("email_bounced_at", sa.DateTime(timezone=True)))
    op.add_column("accounts", sa.Column("email_bounce_detail", sa.String(500)))


def downgrade() -> None:
    op.drop_column("accounts", "email_bounce_detail")
    op.drop_column("accounts", "email_bounced_at")
