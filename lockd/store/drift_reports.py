"""Drift reports in the database: appended to their project's chain with their snapshots,
their per-target index and daily counts, and the deployment that posted them."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlmodel import Session, col, select

from ..drift import DriftReport, target_statuses
from ..drift.standing import unit_statuses
from ..lockset import canonical_json, sha256_text
from . import fleet
from . import posted as posted_statement
from .chain import Chain, Head, Heads, append_many
from .fleet import Posted
from .locksets import parse_time
from .snapshots import (
    DOCUMENTS,
    SNAPSHOTS,
    SnapshotRecord,
    SnapshotRef,
    report_origin,
    snapshot_document,
    store_content,
)
from .tables import DriftReportRow, DriftReportTargetRow, ProjectRow

_REPORTS: sa.Table = DriftReportRow.__table__  # type: ignore[attr-defined]
_TARGETS: sa.Table = DriftReportTargetRow.__table__  # type: ignore[attr-defined]
_PROJECTS: sa.Table = ProjectRow.__table__  # type: ignore[attr-defined]
# Built once, their values bound at each call: these run for every posted snapshot.
_INSERT_REPORT, _INSERT_SNAPSHOT = sa.insert(_REPORTS), sa.insert(SNAPSHOTS)


@dataclass(frozen=True, slots=True)
class Recorded:
    """A drift report as stored, and the row ids of its snapshots by target."""

    report: DriftReport
    snapshots: Mapping[str, int]


def record_drift(engine: Engine, report: DriftReport) -> DriftReport:
    """Append a report after the project's newest one; return it as stored (parent set)."""
    return record_drifts(engine, [(report, None)])[0].report


def record_drifts(
    engine: Engine, reports: Sequence[tuple[DriftReport, Posted | None]]
) -> list[Recorded]:
    """Several reports in one transaction (one commit: the server's group commit), each
    appended after the one before it in its project's chain. All are recorded, or none;
    ``posted`` names the deployment whose snapshot a report compared (and may carry that
    snapshot, its content already hashed)."""
    snapshots = [_snapshots(report, posted) for report, posted in reports]  # outside the lock

    def write(session: Session, head: Heads) -> list[Recorded]:
        return [
            insert_recorded(session, head(report.project), report, posted, own)
            for (report, posted), own in zip(reports, snapshots, strict=True)
        ]

    projects = sorted({report.project for report, _ in reports})
    what = (
        f"the drift report of project {projects[0]}"
        if len(reports) == 1
        else f"{len(reports)} drift reports of {', '.join(projects)}"
    )
    return append_many(engine, projects, Chain.DRIFT_REPORTS, write, what=what)


def _snapshots(report: DriftReport, posted: Posted | None) -> list[SnapshotRecord]:
    """The snapshots a report records: its own, and the one a deployment posted."""
    own = [
        SnapshotRecord.of(target, snapshot, report.checked_at)
        for target, snapshot in sorted(report.snapshots.items())
    ]
    return [*own, posted.snapshot] if posted is not None and posted.snapshot else own


def insert(session: Session, head: Head, report: DriftReport) -> DriftReport:
    """Add ``report`` chained to ``head`` (the chain's lock held: see ``chain.append``)."""
    return insert_recorded(session, head, report).report


def insert_recorded(
    session: Session,
    head: Head,
    report: DriftReport,
    posted: Posted | None = None,
    snapshots: Sequence[SnapshotRecord] | None = None,
) -> Recorded:
    """Add ``report`` chained to ``head`` (the chain's lock held: see ``chain.append``),
    with its snapshots (default: ``report.snapshots``), its per-target index and daily
    counts, and the deployment that ``posted`` it.

    Core inserts, not ORM objects: this is the server's hot path.
    """
    conn = session.connection()
    records = _snapshots(report, posted) if snapshots is None else snapshots
    compared = {s.target: {"sha256": s.hash, "taken_at": s.taken_at} for s in records}
    stored = replace(report, parent=head.hash, compared=compared)
    document = stored.body()
    text = canonical_json(document)
    body = {**document, "hash": sha256_text(text)}
    checked_at = parse_time(stored.checked_at)
    row = {
        "hash": body["hash"],
        "parent_hash": head.hash,
        "project_id": head.project_id,
        "lockset_hash": stored.lockset,
        "status": stored.status,
        "checked_at": checked_at,
        "finding_count": len(stored.findings),
        "document": text,
    }
    for snapshot in records:
        if snapshot.content is not None:
            store_content(conn, snapshot.hash, snapshot.content)
    statuses = target_statuses(body)
    if posted is not None and one_statement(conn, posted, records, statuses):
        (snapshot,) = records
        status = statuses[posted.target]
        _, snapshot_id = posted_statement.insert_posted(
            conn,
            row
            | {
                "target": posted.target,
                "taken_at": parse_time(snapshot.taken_at),
                "document_hash": snapshot.hash,
                "deployment": posted.name,
                "target_status": status,
                "day": fleet.day_of(checked_at),
                **fleet.bumps(status),
                "finding_kinds": fleet.finding_kinds(body),
            },
        )
        return Recorded(stored, {posted.target: snapshot_id})
    report_id = conn.execute(_INSERT_REPORT, row).inserted_primary_key[0]  # type: ignore[index]
    snapshot_ids: dict[str, int] = {}
    for snapshot in records:
        snapshot_ids[snapshot.target] = conn.execute(
            _INSERT_SNAPSHOT,
            {
                "drift_report_id": report_id,
                "target": snapshot.target,
                "taken_at": parse_time(snapshot.taken_at),
                "document_hash": snapshot.hash,
                "deployment": posted.name if posted else None,
            },
        ).inserted_primary_key[0]  # type: ignore[index]
    fleet.index_report(conn, report_id, head.project_id, statuses, checked_at)
    if posted is not None:
        fleet.move_deployment(
            conn, head.project_id, posted, body, checked_at, snapshot_ids.get(posted.target)
        )
    return Recorded(stored, snapshot_ids)


def one_statement(
    conn: Connection,
    posted: Posted,
    snapshots: Sequence[SnapshotRecord],
    statuses: Mapping[str, str],
) -> bool:
    """Whether a report is recorded in one statement (``store.posted``): a deployment's post
    (its snapshot and status on its own target only), on PostgreSQL."""
    return (
        conn.dialect.name == "postgresql"
        and [s.target for s in snapshots] == [posted.target]
        and list(statuses) == [posted.target]
    )


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


def drift_reports_with_origins(
    session: Session, since: datetime | None = None
) -> list[tuple[DriftReport, str]]:
    """Drift reports checked since ``since``, newest first, each with who made it (its
    origin, see ``drift.standing``)."""
    reports = _REPORTS.c
    query = sa.select(reports.document, report_origin(reports.id)).order_by(reports.id.desc())
    if since is not None:
        query = query.where(reports.checked_at >= _utc(since))
    return [
        (DriftReport.from_dict(json.loads(document)), origin)
        for document, origin in session.connection().execute(query)
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


def lockset_statuses(session: Session, hashes: Sequence[str]) -> dict[str, str]:
    """Each lockset's drift status (those with no report left out): the worst over the newest
    report of each target and origin (``drift.standing``), found in SQL from the per-target
    index and the ``snapshots`` rows, never from the documents."""
    if not hashes:
        return {}
    reports, targets = _REPORTS.c, _TARGETS.c
    joined = _REPORTS.outerjoin(_TARGETS, targets.drift_report_id == reports.id)
    units = (
        sa.select(
            reports.lockset_hash,
            targets.target,
            report_origin(reports.id).label("origin"),
            reports.id,
        )
        .select_from(joined)
        .where(reports.lockset_hash.in_(list(hashes)))
        .subquery()
    )
    newest = (
        sa.select(units.c.lockset_hash, units.c.target, units.c.origin, sa.func.max(units.c.id))
        .group_by(units.c.lockset_hash, units.c.target, units.c.origin)
        .subquery()
    )
    rows = session.connection().execute(
        sa.select(
            newest.c.lockset_hash,
            newest.c.target,
            newest.c.origin,
            sa.func.coalesce(targets.status, reports.status),
        )
        .join_from(newest, _REPORTS, reports.id == newest.c[3])
        .outerjoin(
            _TARGETS,
            sa.and_(targets.drift_report_id == reports.id, targets.target == newest.c.target),
        )
    )
    per_lockset: dict[str, list[tuple[str | None, str, str]]] = {}
    for digest, target, origin, found in rows:
        per_lockset.setdefault(digest, []).append((target, origin, found))
    return {
        digest: status for digest, found in per_lockset.items() if (status := unit_statuses(found))
    }


def reports_of(session: Session, lockset_hash: str) -> list[tuple[str, DriftReport]]:
    """(hash, report) of every drift report on one lockset, newest first."""
    rows = session.exec(
        select(DriftReportRow.hash, DriftReportRow.document)
        .where(DriftReportRow.lockset_hash == lockset_hash)
        .order_by(col(DriftReportRow.id).desc())
    ).all()
    return [(digest, DriftReport.from_dict(json.loads(document))) for digest, document in rows]


def baseline_snapshot(session: Session, project: str, target: str) -> dict[str, Any] | None:
    """The snapshot of ``target`` taken at the project's last clean local check: one lockd
    itself took (no deployment posted it). A deployment's snapshots are its own baseline
    (``deployments.baseline_snapshot_id``), never the local checks'.

    The project's clean reports are walked from the newest (through its (project, id)
    index) to the first with such a snapshot (LIMIT 1), never gathered first: they grow
    with every check.
    """
    found = session.connection().execute(_BASELINE, {"project": project, "target": target}).first()
    return snapshot_document(found[0], found[1]) if found else None


def baseline_snapshot_ref(session: Session, project: str, target: str) -> SnapshotRef | None:
    """``baseline_snapshot``'s row and content hash (``None``: no clean local check)."""
    params = {"project": project, "target": target}
    found = session.connection().execute(_BASELINE_REF, params).first()
    return SnapshotRef(found[0], found[1]) if found else None


def _local_of_target(snapshots: sa.FromClause) -> sa.ColumnElement[bool]:
    return sa.and_(snapshots.c.target == sa.bindparam("target"), snapshots.c.deployment.is_(None))


def _last_clean_local() -> sa.ColumnElement[bool]:
    """Over ``snapshots``: the local snapshots of the target at the newest clean report that
    has one."""
    taken = SNAPSHOTS.alias("taken")
    last_clean = (
        sa.select(_REPORTS.c.id)
        .join(_PROJECTS, _PROJECTS.c.id == _REPORTS.c.project_id)
        .where(
            _PROJECTS.c.name == sa.bindparam("project"),
            _REPORTS.c.status == "clean",
            sa.exists().where(taken.c.drift_report_id == _REPORTS.c.id, _local_of_target(taken)),
        )
        .order_by(_REPORTS.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return sa.and_(SNAPSHOTS.c.drift_report_id == last_clean, _local_of_target(SNAPSHOTS))


_LAST_CLEAN_LOCAL = _last_clean_local()
_BASELINE = (
    sa.select(DOCUMENTS.c.document, SNAPSHOTS.c.taken_at)
    .join_from(SNAPSHOTS, DOCUMENTS)
    .where(_LAST_CLEAN_LOCAL)
    .order_by(SNAPSHOTS.c.id.desc())
    .limit(1)
)
_BASELINE_REF = (
    sa.select(SNAPSHOTS.c.id, SNAPSHOTS.c.document_hash)
    .where(_LAST_CLEAN_LOCAL)
    .order_by(SNAPSHOTS.c.id.desc())
    .limit(1)
)


def _utc(moment: datetime) -> datetime:
    """A moment with its zone, as the columns take it (a naive one is UTC)."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
