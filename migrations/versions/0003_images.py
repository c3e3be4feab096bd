"""Base images resolved with each lockset: index digest and per-platform digests.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Locksets recorded before this revision keep their images in their document only
    # (none had any: compile recorded images from this revision on).
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lockset_id", sa.Integer(), sa.ForeignKey("locksets.id"), nullable=False),
        sa.Column("reference", sa.String(), nullable=False),
        sa.Column("registry", sa.String(), nullable=False),
        sa.Column("repository", sa.String(), nullable=False),
        sa.Column("tag", sa.String(), nullable=True),
        sa.Column("index_digest", sa.String(), nullable=False),
        sa.Column("media_type", sa.String(), nullable=False),
        sa.Column("platforms", sa.JSON(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_images_lockset_id", "images", ["lockset_id"])


def downgrade() -> None:
    op.drop_table("images")
