"""A version on each status and account, changed by the database on every change of what
their rendered entities show (docs/decisions/0270-rendered-status-cache.md).

- statuses, accounts: a BEFORE UPDATE trigger sets version to a new random UUID on every
  UPDATE of the row, whatever the statement (ORM flush, counter UPDATE, suspension, a
  hand-written SQL fix): no application code path can forget it. NULL until the first
  UPDATE (the row as inserted; ids are never reused).
- mentions, status_tags, media_attachments (what a Status entity lists besides its own
  columns): an AFTER INSERT/UPDATE/DELETE trigger updates the status the row belongs to
  (before and after the change), which gives it a new version through the trigger above.

Random rather than counted: a counter can hand out the same number twice with different
content (a rolled-back transaction, a failover to a replica that had not received the last
transactions, a restore to an earlier time), and the app's cache would then serve the lost
content under the reused number. A new random UUID per change is never reused.

The home timeline's rendered-status cache keys each entity by these versions read with
the page's rows, so an entry can only ever be served for the exact rows it was rendered
from. Deleted rows are not read at all, so they are never looked up.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONED = ("statuses", "accounts")
STATUS_PARTS = ("mentions", "status_tags", "media_attachments")


def upgrade() -> None:
    for table in VERSIONED:
        # Nullable without a default: adding it rewrites nothing on a large table.
        op.add_column(table, sa.Column("version", postgresql.UUID(as_uuid=True)))
    op.execute("""
        CREATE FUNCTION podium_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.version := gen_random_uuid();
            RETURN NEW;
        END $$""")
    op.execute("""
        CREATE FUNCTION podium_bump_status_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' AND OLD.status_id IS NOT NULL THEN
                UPDATE statuses SET version = gen_random_uuid() WHERE id = OLD.status_id;
            END IF;
            IF TG_OP <> 'DELETE' AND NEW.status_id IS NOT NULL
                    AND (TG_OP = 'INSERT' OR NEW.status_id IS DISTINCT FROM OLD.status_id) THEN
                UPDATE statuses SET version = gen_random_uuid() WHERE id = NEW.status_id;
            END IF;
            RETURN NULL;
        END $$""")
    for table in VERSIONED:
        op.execute(f"CREATE TRIGGER {table}_version BEFORE UPDATE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION podium_bump_version()")
    for table in STATUS_PARTS:
        op.execute(f"CREATE TRIGGER {table}_status_version "
                   f"AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION podium_bump_status_version()")


def downgrade() -> None:
    for table in STATUS_PARTS:
        op.execute(f"DROP TRIGGER {table}_status_version ON {table}")
    for table in VERSIONED:
        op.execute(f"DROP TRIGGER {table}_version ON {table}")
    op.execute("DROP FUNCTION podium_bump_status_version()")
    op.execute("DROP FUNCTION podium_bump_version()")
    for table in VERSIONED:
        op.drop_column(table, "version")
