"""Email digest setting per account.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("digest", sa.String(8), nullable=False,
                                        server_default="off"))
    op.add_column("accounts", sa.Column("digest_sent_at", sa.DateTime(timezone=True)))
    op.create_check_constraint("digest_known", "accounts",
                               "digest IN ('off', 'daily', 'weekly')")
    # The digest job looks only at accounts that asked for one.
    op.create_index("accounts_digest_due", "accounts", ["digest_sent_at"],
                    postgresql_where=sa.text("digest <> 'off'"))


def downgrade() -> None:
    op.drop_index("accounts_digest_due", table_name="accounts")
    op.drop_constraint("digest_known", "accounts", type_="check")
    op.drop_column("accounts", "digest_sent_at")
    op.drop_column("accounts", "digest")
