"""A posted snapshot's drift report recorded in one statement (PostgreSQL).

What ``drift_reports.insert_recorded`` writes for a deployment's post — the
report, its snapshot row, its per-target index row, the bump of the target's
day and the deployment's upsert — in one ``INSERT`` with data-modifying CTEs:
one round trip and one statement to plan instead of five. The rows are the
ones the statement-by-statement path writes (a test records the same posts
both ways and compares every table); reports of any other shape (several
targets or snapshots, no deployment) and other databases take that path.

PostgreSQL runs every CTE of the statement whether or not the final ``SELECT``
names it, with one snapshot: the foreign keys between the new rows are
checked at the end of the statement, when all of them exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql

from .fleet import DAY_BUMP, DAYS, DEPLOYMENTS, MOVE, MOVE_CLEAN, TARGETS, Upsert
from .snapshots import SNAPSHOTS
from .tables import DriftReportRow

_REPORTS: sa.Table = DriftReportRow.__table__  # type: ignore[attr-defined]


def _param(table: sa.Table, column: str, name: str | None = None) -> sa.BindParameter[Any]:
    return sa.bindparam(name or column, type_=table.c[column].type)


def _upsert(table: sa.Table, values: Mapping[str, Any], how: Upsert) -> Any:
    """``INSERT … SELECT values ON CONFLICT DO UPDATE`` as ``fleet.upsert`` writes it."""
    insert = postgresql.insert(table).from_select(list(values), sa.select(*values.values()))
    changes: dict[str, Any] = {c: insert.excluded[c] for c in how.update}
    changes |= {c: table.c[c] + insert.excluded[c] for c in how.bump}
    return insert.on_conflict_do_update(index_elements=list(how.keys), set_=changes)


def _statement(clean: bool) -> sa.Select[Any]:
    report = (
        sa.insert(_REPORTS)
        .values(
            {
                c: _param(_REPORTS, c)
                for c in (
                    "hash",
                    "parent_hash",
                    "project_id",
                    "lockset_hash",
                    "status",
                    "checked_at",
                    "finding_count",
                    "document",
                )
            }
        )
        .returning(_REPORTS.c.id)
        .cte("report")
    )
    snapshot = (
        sa.insert(SNAPSHOTS)
        .from_select(
            ["drift_report_id", "target", "taken_at", "document_hash", "deployment"],
            sa.select(
                report.c.id,
                _param(SNAPSHOTS, "target"),
                _param(SNAPSHOTS, "taken_at"),
                _param(SNAPSHOTS, "document_hash"),
                _param(SNAPSHOTS, "deployment"),
            ),
        )
        .returning(SNAPSHOTS.c.id)
        .cte("snapshot")
    )
    target = (
        sa.insert(TARGETS)
        .from_select(
            ["drift_report_id", "target", "status"],
            sa.select(
                report.c.id, _param(TARGETS, "target"), _param(TARGETS, "status", "target_status")
            ),
        )
        .cte("target_row")
    )
    day = {
        "project_id": _param(DAYS, "project_id"),
        "target": _param(DAYS, "target"),
        "day": _param(DAYS, "day"),
        **{c: _param(DAYS, c) for c in ("clean", "drift", "error")},
        "last_status": _param(DAYS, "last_status", "target_status"),
        "last_report_id": sa.select(report.c.id).scalar_subquery(),
    }
    deployment: dict[str, Any] = {
        "project_id": _param(DEPLOYMENTS, "project_id"),
        "target": _param(DEPLOYMENTS, "target"),
        "name": _param(DEPLOYMENTS, "name", "deployment"),
        "first_seen": _param(DEPLOYMENTS, "first_seen", "checked_at"),
        "lockset_hash": _param(DEPLOYMENTS, "lockset_hash"),
        "last_seen": _param(DEPLOYMENTS, "last_seen", "checked_at"),
        "last_status": _param(DEPLOYMENTS, "last_status", "status"),
        "finding_kinds": _param(DEPLOYMENTS, "finding_kinds"),
        "finding_count": _param(DEPLOYMENTS, "finding_count"),
        "last_report_hash": _param(DEPLOYMENTS, "last_report_hash", "hash"),
    }
    if clean:  # a clean report makes its snapshot the deployment's baseline
        deployment["baseline_snapshot_id"] = sa.select(snapshot.c.id).scalar_subquery()
    moved = _upsert(DEPLOYMENTS, deployment, MOVE_CLEAN if clean else MOVE)
    return (
        sa.select(report.c.id, snapshot.c.id)
        .select_from(report)
        .join(snapshot, sa.true())
        .add_cte(target, _upsert(DAYS, day, DAY_BUMP).cte("day"), moved.cte("deployment"))
    )


# Built once each (clean or not), their values bound at each call: the server's hot path.
_STATEMENTS = {clean: _statement(clean) for clean in (True, False)}


def insert_posted(conn: Connection, values: Mapping[str, Any]) -> tuple[int, int]:
    """Record one posted snapshot's report: (the report's row id, the snapshot's).

    ``values``: the report's columns, the snapshot's (``target``, ``taken_at``,
    ``document_hash``, ``deployment``), the report's status for that target
    (``target_status``), its ``day`` and the day's ``clean``, ``drift`` and ``error``
    bumps, and the deployment's ``finding_kinds``.
    """
    row = conn.execute(_STATEMENTS[values["status"] == "clean"], dict(values)).one()
    return int(row[0]), int(row[1])
