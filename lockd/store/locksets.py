"""Locksets in the database: appended to their project's chain, read back as domain values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from ..errors import NotFoundError, StoreError, UsageError, excerpt
from ..graph import Graph
from ..lockset import Lockset, canonical_json
from .chain import Chain, Head, append
from .tables import (
    ArtifactRow,
    DependencyRow,
    ImageRow,
    LockFileRow,
    LockRow,
    LocksetRow,
    ProjectRow,
)


@dataclass(frozen=True, slots=True)
class LocksetSummary:
    hash: str
    project: str
    created_at: str
    targets: tuple[str, ...]
    resolver: str
    status: str
    parent: str | None
    user: str
    git_commit: str | None
    drift: str | None = None  # status of the last drift check of this lockset

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "project": self.project,
            "created_at": self.created_at,
            "targets": list(self.targets),
            "resolver": self.resolver,
            "status": self.status,
            "parent": self.parent,
            "user": self.user,
            "git_commit": self.git_commit,
            "drift": self.drift,
        }


def record_lockset(
    engine: Engine, lockset: Lockset, files: Mapping[str, bytes] | None = None
) -> None:
    """Append a lockset with its locks, artifacts, base images and the contents of its lock
    ``files`` (as compile wrote them next to it), in one transaction.

    The lockset names the parent it was compiled against; if another lockset of
    the project was recorded since, this one is refused (nothing is recorded).
    Recording the same lockset again is a no-op.
    """

    def write(session: Session, head: Head) -> None:
        if session.exec(select(LocksetRow.id).where(LocksetRow.hash == lockset.hash)).first():
            return
        if head.hash != lockset.parent:
            raise _moved_on(session, lockset, head.hash)
        _insert(session, head.project_id, lockset, files or {})

    append(
        engine,
        lockset.project,
        Chain.LOCKSETS,
        write,
        what=f"lockset {lockset.hash[:12]} of project {lockset.project}",
    )


def _moved_on(session: Session, lockset: Lockset, head: str | None) -> StoreError:
    """The one message for a compile that lost the race to another checkout."""
    row = session.exec(select(LocksetRow).where(LocksetRow.hash == head)).first()
    by = (
        f" (by {row.user} on {row.host}"
        + (f" at git commit {row.git_commit[:12]}" if row.git_commit else "")
        + ")"
        if row
        else ""
    )
    started = f"lockset {lockset.parent[:12]}" if lockset.parent else "an empty history"
    return StoreError(
        f"Another compile recorded lockset {str(head)[:12]} for project {lockset.project}{by} "
        f"after this one started from {started}; "
        f"lockset {lockset.hash[:12]} was not recorded and no lock file was changed.",
        hint="Run `lockd compile` again to chain a new lockset after it. Checkouts whose "
        "locks should keep separate histories (two branches) need separate project names "
        "(--project, or project = in lockd.toml).",
    )


def _insert(
    session: Session, project_id: int, lockset: Lockset, files: Mapping[str, bytes]
) -> None:
    body = lockset.body()
    row = LocksetRow(
        hash=lockset.hash,
        project_id=project_id,
        parent_hash=lockset.parent,
        input_key=lockset.input_key,
        resolver=lockset.resolver,
        resolver_version=lockset.resolver_version,
        cutoff=lockset.cutoff,
        created_at=parse_time(lockset.provenance.created_at),
        user=lockset.provenance.user,
        host=lockset.provenance.host,
        git_commit=lockset.provenance.git_commit,
        status="partial" if lockset.failures else "complete",
        targets=list(lockset.targets),
        inputs=body["inputs"],
        indexes=body["indexes"],
        failures=body["failures"],
        document=canonical_json(body),
    )
    session.add(row)
    session.flush()
    session.add_all(
        ImageRow(
            lockset_id=row.id,  # type: ignore[arg-type]
            reference=image["reference"],
            registry_host=image["registry"],
            repository=image["repository"],
            tag=image.get("tag"),
            index_digest=image["index_digest"],
            media_type=image["media_type"],
            platforms=list(image["platforms"]),
            resolved_at=parse_time(image["resolved_at"]),
        )
        for image in body["images"]
    )
    recorded = {name: sha for lock in lockset.locks for name, sha in lock.files.items()}
    session.add_all(
        LockFileRow(
            lockset_id=row.id,  # type: ignore[arg-type]
            name=name,
            sha256=recorded[name],
            content=data.decode(),
        )
        for name, data in sorted(files.items())
        if name in recorded
    )
    for lock in lockset.locks:
        lock_row = LockRow(
            lockset_id=row.id,  # type: ignore[arg-type]
            target=lock.target,
            flavour=lock.flavour,
            files=dict(lock.files),
        )
        session.add(lock_row)
        session.flush()
        session.add_all(
            ArtifactRow(
                lock_id=lock_row.id,  # type: ignore[arg-type]
                name=a.name,
                version=a.version,
                index=a.index,
                url=a.url,
                filename=a.filename,
                sha256=a.sha256,
                kind=a.kind,
            )
            for a in lock.artifacts
        )
        if lock.graph is not None:
            session.add_all(_dependency_rows(lock_row.id, lock.graph))  # type: ignore[arg-type]


def _dependency_rows(lock_id: int, graph: Graph) -> list[DependencyRow]:
    """The rows of one lock's graph: its direct inputs, then its edges."""
    rows = [
        DependencyRow(
            lock_id=lock_id,
            kind="constraint" if root.constraint else "input",
            dependency=root.package,
            requirement=root.requirement,
            source=root.source,
        )
        for root in graph.roots
    ]
    rows += [
        DependencyRow(
            lock_id=lock_id,
            kind="requires",
            package=edge.parent,
            dependency=edge.child,
            requirement=edge.requirement,
            extra=edge.extra,
        )
        for edge in graph.edges
    ]
    return rows


# -- reading ---------------------------------------------------------------------


def latest(session: Session, project: str) -> Lockset | None:
    """The head of the project's lockset chain."""
    row = session.exec(
        select(LocksetRow)
        .join(ProjectRow)
        .where(ProjectRow.name == project)
        .order_by(col(LocksetRow.id).desc())
        .limit(1)  # ORM results are buffered: without it, every document of the project is read
    ).first()
    return to_lockset(row) if row else None


def get(session: Session, ref: str, project: str | None, where: str) -> Lockset:
    """A lockset by full hash or unique prefix (at least 4 characters)."""
    if len(ref) < 4:
        raise UsageError(
            f"Lockset id {excerpt(ref)} is too short.", hint="Give at least 4 characters."
        )
    # A range, not LIKE: hashes are lowercase hex, so every hash with this prefix sorts
    # between it and it + "g", and the unique index answers (SQLite's LIKE scans the table).
    low = ref.lower()
    query = select(LocksetRow).where(col(LocksetRow.hash) >= low, col(LocksetRow.hash) < low + "g")
    if project:
        query = query.join(ProjectRow).where(ProjectRow.name == project)
    rows = session.exec(query.limit(2)).all()
    if not rows:
        raise NotFoundError(
            f"No lockset {excerpt(ref)} in {where}.",
            hint="`lockd history` lists the recorded locksets.",
        )
    if len(rows) > 1:
        raise UsageError(f"Lockset id {excerpt(ref)} is ambiguous.", hint="Give more characters.")
    return to_lockset(rows[0])


def history(
    session: Session, project: str | None, limit: int | None, offset: int = 0
) -> list[LocksetSummary]:
    query = select(LocksetRow, ProjectRow).join(ProjectRow).order_by(col(LocksetRow.id).desc())
    if project:
        query = query.where(ProjectRow.name == project)
    if limit:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    rows = session.exec(query).all()
    from .drift_reports import lockset_statuses  # it reads locksets' helpers: imported late

    drift = lockset_statuses(session, [row.hash for row, _ in rows])
    return [
        LocksetSummary(
            hash=row.hash,
            project=proj.name,
            created_at=row.created_at.replace(tzinfo=None).isoformat(timespec="seconds") + "Z",
            targets=tuple(row.targets),
            resolver=f"{row.resolver} {row.resolver_version}",
            status=row.status,
            parent=row.parent_hash,
            user=row.user,
            git_commit=row.git_commit,
            drift=drift.get(row.hash),
        )
        for row, proj in rows
    ]


def lock_file(session: Session, lockset_hash: str, name: str) -> tuple[str, str] | None:
    """(sha256, content) of a lock file stored with a lockset, if it was stored."""
    found = session.exec(
        select(LockFileRow.sha256, LockFileRow.content)
        .join(LocksetRow)
        .where(LocksetRow.hash == lockset_hash, LockFileRow.name == name)
    ).first()
    return (found[0], found[1]) if found else None


def images(session: Session, project: str | None, limit: int) -> list[dict[str, Any]]:
    """Base images recorded with locksets, newest lockset first."""
    query = (
        select(ImageRow, LocksetRow.hash, ProjectRow.name)
        .join(LocksetRow, col(LocksetRow.id) == ImageRow.lockset_id)
        .join(ProjectRow)
        .order_by(col(ImageRow.id).desc())
        .limit(limit)
    )
    if project:
        query = query.where(ProjectRow.name == project)
    return [
        {
            "project": name,
            "lockset": lockset_hash,
            "reference": image.reference,
            "registry": image.registry_host,
            "repository": image.repository,
            "tag": image.tag,
            "index_digest": image.index_digest,
            "platforms": image.platforms,
            "resolved_at": iso(image.resolved_at),
        }
        for image, lockset_hash, name in session.exec(query).all()
    ]


def projects(session: Session) -> list[str]:
    return list(session.exec(select(ProjectRow.name).order_by(ProjectRow.name)).all())


def to_lockset(row: LocksetRow) -> Lockset:
    data = json.loads(row.document)
    data["hash"] = row.hash
    return Lockset.from_dict(data)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def iso(moment: datetime) -> str:
    """A stored time as ``2026-01-02T03:04:05Z`` (the columns hold UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None, microsecond=0).isoformat() + "Z"
