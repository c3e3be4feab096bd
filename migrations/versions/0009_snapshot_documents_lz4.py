"""Snapshot contents compressed with lz4 on PostgreSQL.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

PostgreSQL compresses a large text value (TOAST) with pglz unless told
otherwise; a posted snapshot's new content (about 100 KiB) took the database
0.6 ms of CPU to compress, a third of its work per post. lz4 (PostgreSQL 14
and later, when built with it, as Debian's is) takes a quarter of that, for
about a quarter more WAL. Only new values are written with it; what is stored
stays as it is and reads back the same. A server without lz4, and SQLite,
are left as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if _lz4(op.get_bind()):
        op.execute("ALTER TABLE snapshot_documents ALTER COLUMN document SET COMPRESSION lz4")


def downgrade() -> None:
    if _lz4(op.get_bind()):
        op.execute("ALTER TABLE snapshot_documents ALTER COLUMN document SET COMPRESSION default")


def _lz4(bind: sa.Connection) -> bool:
    """PostgreSQL that can compress with lz4 (``default_toast_compression`` offers it)."""
    if bind.dialect.name != "postgresql":
        return False
    row = bind.execute(
        sa.text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
    ).first()
    return row is not None and "lz4" in (row[0] or [])
