"""The fleet in the database: deployments, per-target report index, the daily summary.

Every drift report is indexed when it is recorded, in the same transaction:
one ``drift_report_targets`` row per target it concerns (with its status
there) and a bump of that target's ``drift_days`` counter. A snapshot posted
by a deployment also moves that deployment's row. The dashboard and the API
read these small tables and never scan the reports; what they return are
domain values, never rows.

What this module cannot do: tell a deployment that stopped from one that
never reports often — "stale" is only "not seen for longer than the server's
``stale_after``", computed at read time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, case, func
from sqlmodel import Session, col, select

from ..drift.standing import worst
from .locksets import iso
from .snapshots import SNAPSHOTS, SnapshotRecord, SnapshotRef, stored_snapshot
from .tables import (
    DeploymentRow,
    DriftDayRow,
    DriftReportRow,
    DriftReportTargetRow,
    LocksetRow,
    ProjectRow,
    SnapshotRow,
)

STATUSES = ("clean", "drift", "error", "stale")
TARGETS: sa.Table = DriftReportTargetRow.__table__  # type: ignore[attr-defined]
DAYS: sa.Table = DriftDayRow.__table__  # type: ignore[attr-defined]
DEPLOYMENTS: sa.Table = DeploymentRow.__table__  # type: ignore[attr-defined]
_LOCKSETS: sa.Table = LocksetRow.__table__  # type: ignore[attr-defined]
_PROJECTS: sa.Table = ProjectRow.__table__  # type: ignore[attr-defined]
_INSERT_TARGETS = sa.insert(TARGETS)


@dataclass(frozen=True, slots=True)
class Posted:
    """Which deployment posted the snapshot a report compared (fleet ingestion), and the
    snapshot (when the report does not carry it: the server hashes it, or knows it)."""

    name: str
    target: str
    snapshot: SnapshotRecord | None = None


@dataclass(frozen=True, slots=True)
class Deployment:
    project: str
    target: str
    name: str
    lockset: str
    first_seen: str
    last_seen: str
    status: str  # clean | drift | error | stale
    reported_status: str  # what its last report said (a stale deployment keeps it)
    finding_kinds: tuple[str, ...]
    finding_count: int
    last_report: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "target": self.target,
            "deployment": self.name,
            "lockset": self.lockset,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "status": self.status,
            "reported_status": self.reported_status,
            "finding_kinds": list(self.finding_kinds),
            "finding_count": self.finding_count,
            "last_report": self.last_report,
        }


@dataclass(frozen=True, slots=True)
class DeploymentQuery:
    project: str | None = None
    target: str | None = None
    status: str | None = None  # one of STATUSES
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class ReportQuery:
    project: str | None = None
    target: str | None = None
    status: str | None = None  # clean | drift | error (for ``target``, when given)
    since: datetime | None = None
    limit: int = 50
    offset: int = 0
    lockset: str | None = None  # full hash


@dataclass(frozen=True, slots=True)
class ReportSummary:
    hash: str
    project: str
    lockset: str
    status: str
    checked_at: str
    finding_count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "project": self.project,
            "lockset": self.lockset,
            "status": self.status,
            "checked_at": self.checked_at,
            "finding_count": self.finding_count,
        }


@dataclass(frozen=True, slots=True)
class ProjectOverview:
    """One project on the dashboard: its newest lockset and each target's recent nights."""

    name: str
    latest: str | None
    latest_at: str | None
    lockset_count: int
    targets: tuple[str, ...]
    # target -> day (YYYY-MM-DD) -> (the worst status of the day, clean, drift, error)
    days: Mapping[str, Mapping[str, tuple[str, int, int, int]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.name,
            "latest_lockset": self.latest,
            "latest_at": self.latest_at,
            "locksets": self.lockset_count,
            "targets": {
                target: {
                    day: {"status": s, "clean": c, "drift": d, "error": e}
                    for day, (s, c, d, e) in self.days.get(target, {}).items()
                }
                for target in self.targets
            },
        }


# -- writing (inside the transaction that records the report) ---------------------------
#
# Core statements, not ORM objects: these run for every posted snapshot, where
# the unit of work's bookkeeping cost more than the database did. Counters and
# deployments are upserts (one statement each) on SQLite and PostgreSQL.


@dataclass(frozen=True, slots=True)
class Upsert:
    """How a row is written when it may exist: by which ``keys`` it is found, which columns
    an existing row takes from the new values (``update``) and which it adds them to
    (``bump``); the others are written only by the insert."""

    keys: tuple[str, ...]
    update: tuple[str, ...] = ()
    bump: tuple[str, ...] = ()


DAY_BUMP = Upsert(
    ("project_id", "target", "day"), ("last_status", "last_report_id"), ("clean", "drift", "error")
)
_STATE = (
    "lockset_hash",
    "last_seen",
    "last_status",
    "finding_kinds",
    "finding_count",
    "last_report_hash",
)
MOVE = Upsert(("project_id", "target", "name"), _STATE)
MOVE_CLEAN = Upsert(MOVE.keys, (*_STATE, "baseline_snapshot_id"))
# (dialect, table, columns, upsert) -> the INSERT … ON CONFLICT statement, built once
_UPSERTS: dict[tuple[str, str, tuple[str, ...], Upsert], Any] = {}


def upsert(conn: Connection, table: sa.Table, values: Mapping[str, Any], how: Upsert) -> None:
    """Insert ``values``, or, when the row with the same ``how.keys`` exists, update it."""
    dialect = conn.dialect.name
    if dialect not in {"sqlite", "postgresql"}:
        update_or_insert(conn, table, values, how)
        return
    key = (dialect, table.name, tuple(values), how)
    statement = _UPSERTS.get(key)
    if statement is None:
        from sqlalchemy.dialects import postgresql, sqlite

        module: Any = sqlite if dialect == "sqlite" else postgresql
        insert = module.insert(table)
        changes = {c: insert.excluded[c] for c in how.update}
        changes |= {c: table.c[c] + insert.excluded[c] for c in how.bump}
        statement = _UPSERTS[key] = insert.on_conflict_do_update(
            index_elements=list(how.keys), set_=changes
        )
    conn.execute(statement, dict(values))


def update_or_insert(
    conn: Connection, table: sa.Table, values: Mapping[str, Any], how: Upsert
) -> None:
    """``upsert`` for databases without ``ON CONFLICT`` (safe under the chain's lock)."""
    match = sa.and_(*(table.c[k] == values[k] for k in how.keys))
    changes = {c: values[c] for c in how.update} | {c: table.c[c] + values[c] for c in how.bump}
    if conn.execute(sa.update(table).where(match).values(changes)).rowcount == 0:
        conn.execute(sa.insert(table).values(dict(values)))


def index_report(
    conn: Connection,
    report_id: int,
    project_id: int,
    statuses: Mapping[str, str],
    checked_at: datetime,
) -> None:
    """The report's per-target rows (``statuses``: ``target_statuses`` of its body) and
    its bump of each target's day."""
    if not statuses:
        return
    day = day_of(checked_at)
    conn.execute(
        _INSERT_TARGETS,
        [{"drift_report_id": report_id, "target": t, "status": s} for t, s in statuses.items()],
    )
    for target, status in statuses.items():
        row = {"project_id": project_id, "target": target, "day": day, **bumps(status)}
        upsert(conn, DAYS, row | {"last_status": status, "last_report_id": report_id}, DAY_BUMP)


def day_of(checked_at: datetime) -> str:
    """The UTC day a report counts in (``drift_days.day``)."""
    return checked_at.astimezone(UTC).strftime("%Y-%m-%d")


def bumps(status: str) -> dict[str, int]:
    """What one report with ``status`` adds to its day's clean, drift and error counts."""
    return {"clean": 0, "drift": 0, "error": 0, status: 1}


def finding_kinds(body: Mapping[str, Any]) -> list[str]:
    """A deployment's finding kinds, from its last report's body."""
    return sorted({f["kind"] for f in body["findings"]})


def move_deployment(  # noqa: PLR0917 - one call site, in the recording transaction
    conn: Connection,
    project_id: int,
    posted: Posted,
    body: Mapping[str, Any],
    seen: datetime,
    snapshot_id: int | None,
) -> None:
    """Create or update the deployment that posted; a clean report makes its snapshot the
    deployment's baseline."""
    findings = body["findings"]
    row: dict[str, Any] = {
        "project_id": project_id,
        "target": posted.target,
        "name": posted.name,
        "first_seen": seen,
        "lockset_hash": body["lockset"],
        "last_seen": seen,
        "last_status": body["status"],
        "finding_kinds": finding_kinds(body),
        "finding_count": len(findings),
        "last_report_hash": body["hash"],
    }
    if body["status"] == "clean" and snapshot_id is not None:
        upsert(conn, DEPLOYMENTS, row | {"baseline_snapshot_id": snapshot_id}, MOVE_CLEAN)
    else:
        upsert(conn, DEPLOYMENTS, row, MOVE)


# -- reading ------------------------------------------------------------------------------


def _ingestion_state() -> sa.Select[Any]:
    newest = (
        sa.select(_LOCKSETS.c.hash)
        .where(_LOCKSETS.c.project_id == _PROJECTS.c.id)
        .order_by(_LOCKSETS.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    deployment = (
        DEPLOYMENTS.c.project_id == _PROJECTS.c.id,  # correlated: the outer row's project
        DEPLOYMENTS.c.target == sa.bindparam("target"),
        DEPLOYMENTS.c.name == sa.bindparam("name"),
    )
    baseline = sa.select(DEPLOYMENTS.c.baseline_snapshot_id).where(*deployment)
    # Each subquery names the outer `projects` row directly: one nested inside another
    # would not be correlated with it (and would read every project's deployment).
    content = (
        sa.select(SNAPSHOTS.c.document_hash)
        .join_from(DEPLOYMENTS, SNAPSHOTS, SNAPSHOTS.c.id == DEPLOYMENTS.c.baseline_snapshot_id)
        .where(*deployment)
    )
    return sa.select(newest, baseline.scalar_subquery(), content.scalar_subquery()).where(
        _PROJECTS.c.name == sa.bindparam("project")
    )


# Built once (with its parameters bound at each call): it runs for every posted snapshot.
_INGESTION_STATE = _ingestion_state()


def ingestion_state(
    conn: Connection, project: str, posted: Posted
) -> tuple[str | None, SnapshotRef | None]:
    """The project's newest lockset hash and the deployment's baseline snapshot, in one
    round trip (no lockset: no such project)."""
    found = conn.execute(
        _INGESTION_STATE, {"project": project, "target": posted.target, "name": posted.name}
    ).first()
    if found is None:
        return None, None
    newest, baseline, content = found
    return newest, SnapshotRef(baseline, content) if baseline is not None else None


def snapshot(session: Session, snapshot_id: int) -> tuple[dict[str, Any], str] | None:
    """A recorded snapshot (as recorded) and its content's hash, by row id."""
    return stored_snapshot(session.connection(), SNAPSHOTS.c.id == snapshot_id)


def _status_expression(stale_before: datetime) -> Any:
    return case(
        (col(DeploymentRow.last_seen) < stale_before, "stale"),
        else_=col(DeploymentRow.last_status),
    )


def deployments(
    session: Session, query: DeploymentQuery, stale_before: datetime
) -> list[Deployment]:
    """Deployments, the most recently seen first."""
    status = _status_expression(stale_before)
    statement = select(DeploymentRow, ProjectRow.name, status).join(ProjectRow)
    if query.project:
        statement = statement.where(ProjectRow.name == query.project)
    if query.target:
        statement = statement.where(DeploymentRow.target == query.target)
    if query.status == "stale":
        statement = statement.where(col(DeploymentRow.last_seen) < stale_before)
    elif query.status:
        statement = statement.where(
            DeploymentRow.last_status == query.status,
            col(DeploymentRow.last_seen) >= stale_before,
        )
    statement = (
        statement.order_by(col(DeploymentRow.last_seen).desc(), col(DeploymentRow.id).desc())
        .limit(query.limit)
        .offset(query.offset)
    )
    return [
        Deployment(
            project=project,
            target=row.target,
            name=row.name,
            lockset=row.lockset_hash,
            first_seen=iso(row.first_seen),
            last_seen=iso(row.last_seen),
            status=shown,
            reported_status=row.last_status,
            finding_kinds=tuple(row.finding_kinds),
            finding_count=row.finding_count,
            last_report=row.last_report_hash,
        )
        for row, project, shown in session.exec(statement).all()
    ]


def deployment_counts(session: Session, stale_before: datetime) -> dict[str, int]:
    """How many deployments are clean, drifted, failing and stale (one grouped query)."""
    status = _status_expression(stale_before)
    counts = dict.fromkeys(STATUSES, 0)
    for shown, count in session.exec(
        select(status, func.count()).select_from(DeploymentRow).group_by(status)
    ).all():
        counts[str(shown)] = int(count)
    return counts


def project_overviews(session: Session, first_day: str) -> list[ProjectOverview]:
    """Every project with its newest lockset and its targets' days from ``first_day`` on."""
    newest = (
        select(LocksetRow.project_id, func.max(LocksetRow.id).label("newest"), func.count())
        .group_by(col(LocksetRow.project_id))
        .subquery()
    )
    rows = session.execute(
        sa.select(
            col(ProjectRow.id),
            col(ProjectRow.name),
            col(LocksetRow.hash),
            col(LocksetRow.created_at),
            col(LocksetRow.targets),
            newest.c[2],
        )
        .join(newest, newest.c.project_id == ProjectRow.id, isouter=True)
        .join(LocksetRow, col(LocksetRow.id) == newest.c.newest, isouter=True)
        .order_by(ProjectRow.name)
    ).all()
    days: dict[int, dict[str, dict[str, tuple[str, int, int, int]]]] = {}
    for day in session.exec(select(DriftDayRow).where(DriftDayRow.day >= first_day)).all():
        # The day's worst, not its last: one deployment's clean report after another's drift
        # does not paint the night clean (as ``drift.standing`` judges a lockset).
        counts = {"clean": day.clean, "drift": day.drift, "error": day.error}
        status = worst(s for s, n in counts.items() if n) or day.last_status
        days.setdefault(day.project_id, {}).setdefault(day.target, {})[day.day] = (
            status,
            day.clean,
            day.drift,
            day.error,
        )
    out = []
    for project_id, name, latest, created_at, latest_targets, count in rows:
        recent = days.get(project_id or 0, {})
        targets = tuple(latest_targets or ())
        out.append(
            ProjectOverview(
                name=name,
                latest=latest,
                latest_at=iso(created_at) if created_at else None,
                lockset_count=int(count or 0),
                targets=targets + tuple(sorted(set(recent) - set(targets))),
                days=recent,
            )
        )
    return out


def drift_report_summaries(session: Session, query: ReportQuery) -> list[ReportSummary]:
    """Reports newest first, filtered through the per-target index when a target is given."""
    statement = select(DriftReportRow, ProjectRow.name).join(ProjectRow)
    if query.project:
        statement = statement.where(ProjectRow.name == query.project)
    if query.target:
        statement = statement.join(
            DriftReportTargetRow,
            col(DriftReportTargetRow.drift_report_id) == col(DriftReportRow.id),
        ).where(DriftReportTargetRow.target == query.target)
        if query.status:
            statement = statement.where(DriftReportTargetRow.status == query.status)
    elif query.status:
        statement = statement.where(DriftReportRow.status == query.status)
    if query.since is not None:
        statement = statement.where(col(DriftReportRow.checked_at) >= query.since)
    if query.lockset:
        statement = statement.where(DriftReportRow.lockset_hash == query.lockset)
    statement = (
        statement.order_by(col(DriftReportRow.id).desc()).limit(query.limit).offset(query.offset)
    )
    return [
        ReportSummary(
            row.hash, project, row.lockset_hash, row.status, iso(row.checked_at), row.finding_count
        )
        for row, project in session.exec(statement).all()
    ]


def report_document(session: Session, ref: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A report's document and its snapshots' (target, deployment, taken_at) by full hash."""
    row = session.exec(select(DriftReportRow).where(DriftReportRow.hash == ref)).first()
    if row is None:
        return {}, []
    snapshots = session.exec(
        select(SnapshotRow.id, SnapshotRow.target, SnapshotRow.deployment, SnapshotRow.taken_at)
        .where(SnapshotRow.drift_report_id == row.id)
        .order_by(col(SnapshotRow.id))
    ).all()
    return {**json.loads(row.document), "hash": row.hash}, [
        {"id": sid, "target": target, "deployment": deployment, "taken_at": iso(taken)}
        for sid, target, deployment, taken in snapshots
    ]


def days_back(now: datetime, count: int) -> list[str]:
    """The ``count`` UTC days up to and including ``now``'s, oldest first."""
    today = now.astimezone(UTC).date()
    return [(today - timedelta(days=back)).isoformat() for back in range(count - 1, -1, -1)]
