"""Loading the chain records from the database (one query per table)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import SQLModel

from ...lockset import sha256_text
from .. import tables as _tables  # noqa: F401 - registers the tables in SQLModel.metadata
from .chains import parse_document, utc
from .records import (
    ARTIFACT_FIELDS,
    DEPENDENCY_FIELDS,
    FIELD_SEP,
    IMAGE_FIELDS,
    ROW_SEP,
    DriftRecord,
    ImageRecord,
    LockRecord,
    LocksetRecord,
    Records,
)

_LOCKSET_COLUMNS = (
    "input_key",
    "resolver",
    "resolver_version",
    "cutoff",
    "created_at",
    "user",
    "host",
    "git_commit",
    "status",
    "targets",
    "inputs",
    "indexes",
    "failures",
)
_DRIFT_COLUMNS = ("lockset_hash", "status", "checked_at", "finding_count")


def load_records(engine: Engine, project: str | None = None) -> Records:
    """Read every row the chains consist of, one query per table.

    Rows whose parent row is gone (orphans) are looked for only across all
    projects: with ``project`` they cannot be attributed to it.
    """
    tables = SQLModel.metadata.tables
    locksets_t, projects_t, drifts_t = (
        tables["locksets"],
        tables["projects"],
        tables["drift_reports"],
    )
    locksets, projects, drifts = locksets_t.c, projects_t.c, drifts_t.c
    locks, artifacts, images = tables["locks"].c, tables["artifacts"].c, tables["images"].c
    lockset_query = (
        sa.select(
            locksets.id,
            projects.name,
            locksets.hash,
            locksets.parent_hash,
            locksets.document,
            *(locksets[name] for name in _LOCKSET_COLUMNS),
        )
        .join_from(locksets_t, projects_t)
        .order_by(locksets.id)
    )
    lock_query = sa.select(
        locks.id, locks.lockset_id, locks.target, locks.flavour, locks.files
    ).order_by(locks.id)
    # One text per lock instead of one row per artifact: the row count, not the
    # bytes, is what makes reading 100,000 artifacts slow.
    line: sa.ColumnElement[str] = sa.cast(artifacts.id, sa.String)
    for name in ARTIFACT_FIELDS:
        line = line.concat(FIELD_SEP).concat(artifacts[name])
    artifact_query = sa.select(
        artifacts.lock_id, sa.func.aggregate_strings(line, ROW_SEP)
    ).group_by(artifacts.lock_id)
    dependencies = tables["dependencies"].c
    edge: sa.ColumnElement[str] = sa.cast(dependencies.id, sa.String)
    for name in DEPENDENCY_FIELDS:
        edge = edge.concat(FIELD_SEP).concat(sa.func.coalesce(dependencies[name], ""))
    dependency_query = sa.select(
        dependencies.lock_id, sa.func.aggregate_strings(edge, ROW_SEP)
    ).group_by(dependencies.lock_id)
    image_query = sa.select(
        images.id, images.lockset_id, *(images[name] for name in IMAGE_FIELDS)
    ).order_by(images.id)
    drift_query = (
        sa.select(
            drifts.id,
            projects.name,
            drifts.hash,
            drifts.parent_hash,
            drifts.document,
            *(drifts[name] for name in _DRIFT_COLUMNS),
        )
        .join_from(drifts_t, projects_t)
        .order_by(drifts.id)
    )
    if project is not None:
        own = sa.select(locksets.id).join_from(locksets_t, projects_t)
        own = own.where(projects.name == project)
        own_locks = sa.select(locks.id).where(locks.lockset_id.in_(own))
        lockset_query = lockset_query.where(projects.name == project)
        drift_query = drift_query.where(projects.name == project)
        lock_query = lock_query.where(locks.lockset_id.in_(own))
        artifact_query = artifact_query.where(artifacts.lock_id.in_(own_locks))
        dependency_query = dependency_query.where(dependencies.lock_id.in_(own_locks))
        image_query = image_query.where(images.lockset_id.in_(own))
    with engine.connect() as conn:
        lockset_rows = conn.execute(lockset_query).all()
        lock_rows = conn.execute(lock_query).all()
        artifact_rows = conn.execute(artifact_query).all()
        drift_rows = conn.execute(drift_query).all()
        image_rows = conn.execute(image_query).all()
        dependency_rows = conn.execute(dependency_query).all()
        altered = altered_snapshots(conn, project)
    records = assemble(
        lockset_rows,
        lock_rows,
        artifact_rows,
        drift_rows,
        image_rows,
        dependency_rows=dependency_rows,
        all_projects=project is None,
    )
    return replace(records, altered_snapshots=altered)


def altered_snapshots(conn: sa.Connection, project: str | None) -> tuple[tuple[str, str, str], ...]:
    """(project, drift report hash, content key) of every stored snapshot content whose
    sha256 is not its key, each content read once however many snapshots name it."""
    tables = SQLModel.metadata.tables
    documents, snapshots = tables["snapshot_documents"].c, tables["snapshots"].c
    drifts, projects = tables["drift_reports"].c, tables["projects"].c
    referrers = (
        sa.select(projects.name, drifts.hash, snapshots.document_hash)
        .join_from(tables["snapshots"], tables["drift_reports"])
        .join(tables["projects"])
    )
    if project is not None:
        referrers = referrers.where(projects.name == project)
    query = sa.select(documents.hash, documents.document)
    if project is not None:
        named = referrers.with_only_columns(snapshots.document_hash)
        query = query.where(documents.hash.in_(named))
    wrong = [
        key
        for key, document in conn.execution_options(yield_per=100).execute(query)
        if sha256_text(document) != key
    ]
    if not wrong:
        return ()
    rows = conn.execute(
        referrers.where(snapshots.document_hash.in_(wrong)).order_by(snapshots.id)
    ).all()
    return tuple((name, report, key) for name, report, key in rows)


def assemble(
    lockset_rows: Iterable[Sequence[Any]],
    lock_rows: Iterable[Sequence[Any]],
    artifact_rows: Iterable[Sequence[Any]],
    drift_rows: Iterable[Sequence[Any]],
    image_rows: Iterable[Sequence[Any]] = (),
    *,
    dependency_rows: Iterable[Sequence[Any]] = (),
    all_projects: bool = True,
) -> Records:
    """Group plain row tuples (in the column order :func:`load_records` selects) into records.

    ``artifact_rows`` and ``dependency_rows`` are ``(lock id, lines joined by ROW_SEP)``.
    """
    artifacts: dict[int, tuple[str, ...]] = {
        lock_id: tuple(text.split(ROW_SEP)) if text else () for lock_id, text in artifact_rows
    }
    dependencies: dict[int, tuple[str, ...]] = {
        lock_id: tuple(text.split(ROW_SEP)) if text else () for lock_id, text in dependency_rows
    }
    images: dict[int, list[ImageRecord]] = defaultdict(list)
    for image_id, owner, *values in image_rows:
        columns = dict(zip(IMAGE_FIELDS, values, strict=True))
        columns["resolved_at"] = utc(columns["resolved_at"])
        images[owner].append(ImageRecord(image_id, columns))
    locks: dict[int, list[LockRecord]] = defaultdict(list)
    for lock_id, lockset_id, target, flavour, files in lock_rows:
        locks[lockset_id].append(
            LockRecord(
                lock_id,
                target,
                flavour,
                files or {},
                artifacts.pop(lock_id, ()),
                dependencies.pop(lock_id, ()),
            )
        )
    locksets = []
    for lockset_id, project, digest, parent, document, *values in lockset_rows:
        columns = dict(zip(_LOCKSET_COLUMNS, values, strict=True))
        columns["created_at"] = utc(columns["created_at"])
        own = tuple(locks.pop(lockset_id, ()))
        locksets.append(
            LocksetRecord(
                lockset_id,
                project,
                digest,
                parent,
                document,
                columns,
                own,
                tuple(images.pop(lockset_id, ())),
                parse_document(document),
            )
        )
    drifts = []
    for drift_id, project, digest, parent, document, *values in drift_rows:
        columns = dict(zip(_DRIFT_COLUMNS, values, strict=True))
        columns["checked_at"] = utc(columns["checked_at"])
        drifts.append(
            DriftRecord(
                drift_id, project, digest, parent, document, columns, parse_document(document)
            )
        )
    orphan_locks: list[tuple[int, int]] = []
    orphan_artifacts: list[tuple[int, int]] = []
    orphan_images: list[tuple[int, int]] = []
    orphan_dependencies: list[tuple[int, int]] = []
    if all_projects:
        orphan_locks = sorted(
            (lock.id, parent_id) for parent_id, rows in locks.items() for lock in rows
        )
        orphan_artifacts = sorted(
            (int(lines[0].partition(FIELD_SEP)[0]), lock_id)
            for lock_id, lines in artifacts.items()
            if lines
        )
        orphan_images = sorted((i.id, owner) for owner, rows in images.items() for i in rows)
        orphan_dependencies = sorted(
            (int(lines[0].partition(FIELD_SEP)[0]), lock_id)
            for lock_id, lines in dependencies.items()
            if lines
        )
    return Records(
        tuple(locksets),
        tuple(drifts),
        tuple(orphan_locks),
        tuple(orphan_artifacts),
        tuple(orphan_images),
        tuple(orphan_dependencies),
    )
