"""Times with their zone on PostgreSQL: every timestamp column becomes TIMESTAMP WITH TIME ZONE.

lockd's tables declare zone-aware times (SQLModel stores UTC); revisions
0001-0005 created them as TIMESTAMP WITHOUT TIME ZONE, which PostgreSQL
interprets in the session's time zone. The values lockd wrote are UTC, so they
are converted as UTC. SQLite has no column types: nothing changes there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = (
    ("projects", "created_at"),
    ("locksets", "created_at"),
    ("drift_reports", "checked_at"),
    ("snapshots", "taken_at"),
    ("images", "resolved_at"),
    ("tracked_images", "created_at"),
)


def upgrade() -> None:
    _retype(sa.DateTime(timezone=True))


def downgrade() -> None:
    _retype(sa.DateTime())


def _retype(type_: sa.DateTime) -> None:
    """Both directions read and write the values as UTC."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.alter_column(
            table,
            column,
            type_=type_,
            existing_nullable=False,
            postgresql_using=f"{column} AT TIME ZONE 'UTC'",
        )
