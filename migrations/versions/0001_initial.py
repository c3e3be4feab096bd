"""Initial schema: projects, locksets, locks, artifacts.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_projects_name", "projects", ["name"], unique=True)
    op.create_table(
        "locksets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("hash", sa.String(), nullable=False),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("parent_hash", sa.String(), nullable=True),
        sa.Column("input_key", sa.String(), nullable=False),
        sa.Column("resolver", sa.String(), nullable=False),
        sa.Column("resolver_version", sa.String(), nullable=False),
        sa.Column("cutoff", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("user", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("git_commit", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("indexes", sa.JSON(), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
    )
    op.create_index("ix_locksets_hash", "locksets", ["hash"], unique=True)
    op.create_index("ix_locksets_project_id", "locksets", ["project_id"])
    op.create_index("ix_locksets_input_key", "locksets", ["input_key"])
    op.create_table(
        "locks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lockset_id", sa.Integer(), sa.ForeignKey("locksets.id"), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("flavour", sa.String(), nullable=True),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.UniqueConstraint("lockset_id", "target"),
    )
    op.create_index("ix_locks_lockset_id", "locks", ["lockset_id"])
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lock_id", sa.Integer(), sa.ForeignKey("locks.id"), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("index", sa.String(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
    )
    op.create_index("ix_artifacts_lock_id", "artifacts", ["lock_id"])
    op.create_index("ix_artifacts_name", "artifacts", ["name"])


def downgrade() -> None:
    op.drop_table("artifacts")
    op.drop_table("locks")
    op.drop_table("locksets")
    op.drop_table("projects")
