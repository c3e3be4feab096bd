"""Drift reports (chained per project) and the snapshots they compared.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_reports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("hash", sa.String(), nullable=False),
        sa.Column("parent_hash", sa.String(), nullable=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("lockset_hash", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.Column("finding_count", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
    )
    op.create_index("ix_drift_reports_hash", "drift_reports", ["hash"], unique=True)
    op.create_index("ix_drift_reports_project_id", "drift_reports", ["project_id"])
    op.create_index("ix_drift_reports_lockset_hash", "drift_reports", ["lockset_hash"])
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "drift_report_id", sa.Integer(), sa.ForeignKey("drift_reports.id"), nullable=False
        ),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("taken_at", sa.DateTime(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
    )
    op.create_index("ix_snapshots_drift_report_id", "snapshots", ["drift_report_id"])


def downgrade() -> None:
    op.drop_table("snapshots")
    op.drop_table("drift_reports")
