"""lockd serve: tokens, deployments, stored lock files, per-target report index and daily summary.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27

Reports recorded before this revision are indexed here (their targets and the
daily summary come from their documents); locksets recorded before it have no
stored lock file contents (the API says so and serves their ``lockd.json``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_locksets_project_newest", "locksets", ["project_id", "id"])
    op.create_index("ix_drift_reports_project_newest", "drift_reports", ["project_id", "id"])
    op.create_index("ix_drift_reports_lockset_newest", "drift_reports", ["lockset_hash", "id"])
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("deployment", sa.String(), nullable=True))
    op.create_table(
        "lock_files",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lockset_id", sa.Integer(), sa.ForeignKey("locksets.id"), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.UniqueConstraint("lockset_id", "name"),
    )
    op.create_index("ix_lock_files_lockset_id", "lock_files", ["lockset_id"])
    op.create_table(
        "drift_report_targets",
        sa.Column(
            "drift_report_id",
            sa.Integer(),
            sa.ForeignKey("drift_reports.id"),
            primary_key=True,
        ),
        sa.Column("target", sa.String(), primary_key=True),
        sa.Column("status", sa.String(), nullable=False),
    )
    op.create_index(
        "ix_drift_report_targets_target", "drift_report_targets", ["target", "drift_report_id"]
    )
    op.create_table(
        "drift_days",
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("target", sa.String(), primary_key=True),
        sa.Column("day", sa.String(), primary_key=True),
        sa.Column("clean", sa.Integer(), nullable=False),
        sa.Column("drift", sa.Integer(), nullable=False),
        sa.Column("error", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.String(), nullable=False),
        sa.Column("last_report_id", sa.Integer(), nullable=False),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("lockset_hash", sa.String(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_status", sa.String(), nullable=False),
        sa.Column("finding_kinds", sa.JSON(), nullable=False),
        sa.Column("finding_count", sa.Integer(), nullable=False),
        sa.Column("last_report_hash", sa.String(), nullable=False),
        sa.Column(
            "baseline_snapshot_id", sa.Integer(), sa.ForeignKey("snapshots.id"), nullable=True
        ),
        sa.UniqueConstraint("project_id", "target", "name"),
    )
    op.create_index("ix_deployments_project_id", "deployments", ["project_id"])
    op.create_index("ix_deployments_last_seen", "deployments", ["last_seen"])
    op.create_index("ix_deployments_last_status", "deployments", ["last_status"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_tokens_name", "tokens", ["name"], unique=True)
    op.create_index("ix_tokens_token_hash", "tokens", ["token_hash"], unique=True)
    _index_recorded_reports()


def _index_recorded_reports() -> None:
    """Targets and daily counts of every report recorded so far, oldest first."""
    from lockd.drift import target_statuses

    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, project_id, checked_at, document FROM drift_reports ORDER BY id")
    ).all()
    days: dict[tuple[int, str, str], dict[str, Any]] = {}
    targets = []
    for report_id, project_id, checked_at, document in rows:
        day = _utc_day(checked_at)
        for target, status in target_statuses(json.loads(document)).items():
            targets.append({"r": report_id, "t": target, "s": status})
            entry = days.setdefault((project_id, target, day), {"clean": 0, "drift": 0, "error": 0})
            entry[status] += 1
            entry["last_status"], entry["last_report_id"] = status, report_id
    if targets:
        bind.execute(
            sa.text(
                "INSERT INTO drift_report_targets (drift_report_id, target, status) "
                "VALUES (:r, :t, :s)"
            ),
            targets,
        )
    if days:
        bind.execute(
            sa.text(
                "INSERT INTO drift_days (project_id, target, day, clean, drift, error, "
                "last_status, last_report_id) VALUES (:p, :t, :d, :clean, :drift, :error, "
                ":last_status, :last_report_id)"
            ),
            [{"p": p, "t": t, "d": d, **entry} for (p, t, d), entry in days.items()],
        )


def _utc_day(checked_at: object) -> str:
    """``YYYY-MM-DD`` in UTC (PostgreSQL hands zoned times back in the session's zone)."""
    if isinstance(checked_at, datetime) and checked_at.tzinfo is not None:
        return checked_at.astimezone(UTC).strftime("%Y-%m-%d")
    return str(checked_at)[:10]


def downgrade() -> None:
    for table in ("tokens", "deployments", "drift_days", "drift_report_targets", "lock_files"):
        op.drop_table(table)
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("deployment")
    op.drop_index("ix_drift_reports_lockset_newest", "drift_reports")
    op.drop_index("ix_drift_reports_project_newest", "drift_reports")
    op.drop_index("ix_locksets_project_newest", "locksets")
