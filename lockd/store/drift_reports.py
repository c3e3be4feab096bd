"""Drift reports in the database: appended to their project's chain with their snapshots."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from ..drift import DriftReport
from ..lockset import canonical_json
from .chain import Chain, Head, append
from .locksets import parse_time
from .tables import DriftReportRow, ProjectRow, SnapshotRow


def record_drift(engine: Engine, report: DriftReport) -> DriftReport:
    """Append a report after the project's newest one; return it as stored (parent set)."""
    return append(
        engine,
        report.project,
        Chain.DRIFT_REPORTS,
        lambda session, head: insert(session, head, report),
        what=f"the drift report of project {report.project}",
    )


def insert(session: Session, head: Head, report: DriftReport) -> DriftReport:
    """Add ``report`` chained to ``head`` (the chain's lock held: see ``append``)."""
    stored = replace(report, parent=head.hash)
    row = DriftReportRow(
        hash=stored.hash,
        parent_hash=head.hash,
        project_id=head.project_id,
        lockset_hash=stored.lockset,
        status=stored.status,
        checked_at=parse_time(stored.checked_at),
        finding_count=len(stored.findings),
        document=canonical_json(stored.body()),
    )
    session.add(row)
    session.flush()
    for target, snapshot in sorted(stored.snapshots.items()):
        session.add(
            SnapshotRow(
                drift_report_id=row.id,  # type: ignore[arg-type]
                target=target,
                taken_at=parse_time(str(snapshot.get("taken_at", stored.checked_at))),
                document=canonical_json(snapshot),
            )
        )
    return stored


def drift_reports(
    session: Session,
    project: str | None = None,
    limit: int | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[DriftReport]:
    """Drift reports, newest first; ``since``/``until`` bound their check time (UTC)."""
    return [
        DriftReport.from_dict(data) for data in _documents(session, project, limit, since, until)
    ]


def _documents(
    session: Session,
    project: str | None,
    limit: int | None,
    since: datetime | None,
    until: datetime | None,
) -> Iterator[dict[str, Any]]:
    query = select(DriftReportRow.document).join(ProjectRow).order_by(col(DriftReportRow.id).desc())
    if project:
        query = query.where(ProjectRow.name == project)
    if since is not None:
        query = query.where(DriftReportRow.checked_at >= _utc(since))
    if until is not None:
        query = query.where(DriftReportRow.checked_at < _utc(until))
    if limit:
        query = query.limit(limit)
    for document in session.exec(query):
        yield json.loads(document)


def reports_of(session: Session, lockset_hash: str) -> list[tuple[str, DriftReport]]:
    """(hash, report) of every drift report on one lockset, newest first."""
    rows = session.exec(
        select(DriftReportRow.hash, DriftReportRow.document)
        .where(DriftReportRow.lockset_hash == lockset_hash)
        .order_by(col(DriftReportRow.id).desc())
    ).all()
    return [(digest, DriftReport.from_dict(json.loads(document))) for digest, document in rows]


def baseline_snapshot(session: Session, project: str, target: str) -> dict[str, Any] | None:
    """The snapshot of ``target`` taken at the project's last clean check."""
    row = session.exec(
        select(SnapshotRow)
        .join(DriftReportRow)
        .join(ProjectRow)
        .where(ProjectRow.name == project, SnapshotRow.target == target)
        .where(DriftReportRow.status == "clean")
        .order_by(col(SnapshotRow.id).desc())
    ).first()
    return json.loads(row.document) if row else None


def _utc(moment: datetime) -> datetime:
    """A moment with its zone, as the columns take it (a naive one is UTC)."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
