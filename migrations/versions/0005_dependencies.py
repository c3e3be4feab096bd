"""The dependency graph of each lock: its direct inputs and package-to-package edges.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Locks recorded before this revision have no graph (their documents hold none):
    # nothing to fill in.
    op.create_table(
        "dependencies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lock_id", sa.Integer(), sa.ForeignKey("locks.id"), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("package", sa.String(), nullable=True),
        sa.Column("dependency", sa.String(), nullable=False),
        sa.Column("requirement", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("extra", sa.String(), nullable=True),
    )
    op.create_index("ix_dependencies_lock_id", "dependencies", ["lock_id"])
    op.create_index("ix_dependencies_dependency", "dependencies", ["dependency"])


def downgrade() -> None:
    op.drop_table("dependencies")
