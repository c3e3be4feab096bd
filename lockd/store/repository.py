"""Repository functions over the tables; the only code that touches SQLModel rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import DatabaseError, NoSuchModuleError, SQLAlchemyError
from sqlmodel import Session, col, create_engine, select

from ..drift import CheckError, DriftReport, Finding
from ..errors import ConfigError, NotFoundError, StoreError, UsageError
from ..graph import Graph
from ..lockset import Lockset, canonical_json
from ..urls import strip_credentials
from .tables import (
    ArtifactRow,
    DependencyRow,
    DriftReportRow,
    ImageRow,
    LockRow,
    LocksetRow,
    ProjectRow,
    SnapshotRow,
    TrackedImageRow,
)
from .verify import ChainReport, Records, check_chains, load_records


@dataclass(frozen=True, slots=True)
class TrackedImage:
    """An image checked by ``drift --all``, against ``target`` of its project's latest lockset."""

    project: str
    reference: str
    target: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "reference": self.reference,
            "target": self.target,
            "created_at": self.created_at,
        }


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


def make_engine(url: str) -> Engine:
    """An engine; SQLite gets WAL and a busy timeout so cron and users can share it."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        path = Path(url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the database directory {path.parent}: {exc.strerror}."
            ) from None
    try:
        engine = create_engine(
            url, connect_args={"timeout": 30} if url.startswith("sqlite") else {}
        )
    except ImportError as exc:  # the URL's driver is not installed
        raise _missing_driver(url, exc.name or str(exc)) from None
    except NoSuchModuleError:
        scheme = url.partition(":")[0][:60]
        raise UsageError(
            f"Unknown database driver {scheme!r} in {strip_credentials(url)[:200]}.",
            hint="Use sqlite:////path/lockd.db or postgresql+psycopg://host/db.",
        ) from None
    except (SQLAlchemyError, ValueError) as exc:
        raise UsageError(
            f"Invalid database URL {strip_credentials(url)[:200]!r}: {_reason(exc)}.",
            hint="Use an SQLAlchemy URL such as sqlite:////path/lockd.db or "
            "postgresql+psycopg://host/db.",
        ) from None
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            # pysqlite would BEGIN lazily, at the first write, after our reads of the
            # chain head: two writers could then both chain to the same parent.
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Any) -> None:
            # Take the write lock up front: a transaction that reads the chain head
            # and appends to it is atomic against a concurrent compile or drift run.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Store:
    """The lockd database."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        if migrate:
            self.upgrade()

    def upgrade(self) -> bool:
        from .migrate import upgrade

        try:
            return upgrade(self.engine)
        except SQLAlchemyError as exc:
            raise self._failure("open or migrate", exc) from None

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        """A session whose database failures (a damaged file) are ``StoreError``."""
        try:
            with Session(self.engine) as session:
                yield session
        except SQLAlchemyError as exc:
            raise self._failure("read", exc) from None

    def _failure(self, doing: str, exc: SQLAlchemyError) -> StoreError:
        reason = _reason(exc)
        if isinstance(exc, DatabaseError) and any(
            marker in reason for marker in ("not a database", "malformed", "corrupt")
        ):
            return StoreError(
                f"The database {strip_credentials(self.url)} is damaged or not a lockd "
                f"database ({reason}).",
                hint="Restore it from a backup, or point --db / LOCKD_DATABASE_URL at another "
                "file (lockd creates a new database where there is none).",
            )
        return StoreError(
            f"Cannot {doing} the database {strip_credentials(self.url)}: {reason}.",
            hint="Check --db / LOCKD_DATABASE_URL, that the server is up and the file writable.",
        )

    def close(self) -> None:
        self.engine.dispose()

    # -- writing ---------------------------------------------------------------

    def record_lockset(self, lockset: Lockset) -> None:
        """Store a lockset with its locks, artifacts and base images in one transaction."""
        body = lockset.body()
        try:
            with Session(self.engine) as session, session.begin():
                project = self._project(session, lockset.project)
                if session.exec(select(LocksetRow).where(LocksetRow.hash == lockset.hash)).first():
                    return
                head = session.exec(
                    select(LocksetRow.hash)
                    .where(LocksetRow.project_id == project.id)
                    .order_by(col(LocksetRow.id).desc())
                ).first()
                if head != lockset.parent:
                    raise StoreError(
                        f"Another run recorded lockset {str(head)[:12]} for {lockset.project} "
                        f"while this one resolved; lockset {lockset.hash[:12]} was not recorded "
                        "and no lock file was changed.",
                        hint="Run `lockd compile` again.",
                    )
                row = LocksetRow(
                    hash=lockset.hash,
                    project_id=project.id,  # type: ignore[arg-type]
                    parent_hash=lockset.parent,
                    input_key=lockset.input_key,
                    resolver=lockset.resolver,
                    resolver_version=lockset.resolver_version,
                    cutoff=lockset.cutoff,
                    created_at=_parse_time(lockset.provenance.created_at),
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
                        resolved_at=_parse_time(image["resolved_at"]),
                    )
                    for image in body["images"]
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
                        rows = _dependency_rows(lock_row.id, lock.graph)  # type: ignore[arg-type]
                        session.add_all(rows)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"Could not record lockset {lockset.hash[:12]}: {_reason(exc)}. "
                "Nothing was recorded."
            ) from None

    @staticmethod
    def _project(session: Session, name: str) -> ProjectRow:
        project = session.exec(select(ProjectRow).where(ProjectRow.name == name)).first()
        if project is None:
            project = ProjectRow(name=name, created_at=datetime.now(UTC))
            session.add(project)
            session.flush()
        return project

    # -- reading ---------------------------------------------------------------

    def latest(self, project: str) -> Lockset | None:
        with self._reading() as session:
            row = session.exec(
                select(LocksetRow)
                .join(ProjectRow)
                .where(ProjectRow.name == project)
                .order_by(col(LocksetRow.id).desc())
            ).first()
            return _to_lockset(row) if row else None

    def get(self, ref: str, project: str | None = None) -> Lockset:
        """A lockset by full hash or unique prefix (at least 4 characters)."""
        if len(ref) < 4:
            raise UsageError(
                f"Lockset id {ref!r} is too short.", hint="Give at least 4 characters."
            )
        with self._reading() as session:
            query = select(LocksetRow).where(col(LocksetRow.hash).startswith(ref.lower()))
            if project:
                query = query.join(ProjectRow).where(ProjectRow.name == project)
            rows = session.exec(query.limit(2)).all()
        if not rows:
            raise NotFoundError(
                f"No lockset {ref!r} in {strip_credentials(self.url)}.",
                hint="`lockd history` lists the recorded locksets.",
            )
        if len(rows) > 1:
            raise UsageError(f"Lockset id {ref!r} is ambiguous.", hint="Give more characters.")
        return _to_lockset(rows[0])

    def history(self, project: str | None = None, limit: int | None = None) -> list[LocksetSummary]:
        with self._reading() as session:
            query = (
                select(LocksetRow, ProjectRow).join(ProjectRow).order_by(col(LocksetRow.id).desc())
            )
            if project:
                query = query.where(ProjectRow.name == project)
            if limit:
                query = query.limit(limit)
            return [
                LocksetSummary(
                    hash=row.hash,
                    project=proj.name,
                    created_at=row.created_at.replace(tzinfo=None).isoformat(timespec="seconds")
                    + "Z",
                    targets=tuple(row.targets),
                    resolver=f"{row.resolver} {row.resolver_version}",
                    status=row.status,
                    parent=row.parent_hash,
                    user=row.user,
                    git_commit=row.git_commit,
                    drift=self._last_drift_status(session, row.hash),
                )
                for row, proj in session.exec(query).all()
            ]

    @staticmethod
    def _last_drift_status(session: Session, lockset_hash: str) -> str | None:
        return session.exec(
            select(DriftReportRow.status)
            .where(DriftReportRow.lockset_hash == lockset_hash)
            .order_by(col(DriftReportRow.id).desc())
        ).first()

    def projects(self) -> list[str]:
        with self._reading() as session:
            return list(session.exec(select(ProjectRow.name).order_by(ProjectRow.name)).all())

    # -- drift -----------------------------------------------------------------

    def record_drift(self, report: DriftReport) -> DriftReport:
        """Store a drift report chained to the project's previous one; return it as stored."""
        try:
            with Session(self.engine) as session, session.begin():
                project = self._project(session, report.project)
                previous = session.exec(
                    select(DriftReportRow.hash)
                    .where(DriftReportRow.project_id == project.id)
                    .order_by(col(DriftReportRow.id).desc())
                ).first()
                stored = replace(report, parent=previous)
                body = stored.body()
                row = DriftReportRow(
                    hash=stored.hash,
                    parent_hash=previous,
                    project_id=project.id,  # type: ignore[arg-type]
                    lockset_hash=stored.lockset,
                    status=stored.status,
                    checked_at=_parse_time(stored.checked_at),
                    finding_count=len(stored.findings),
                    document=canonical_json(body),
                )
                session.add(row)
                session.flush()
                for target, snapshot in sorted(stored.snapshots.items()):
                    session.add(
                        SnapshotRow(
                            drift_report_id=row.id,  # type: ignore[arg-type]
                            target=target,
                            taken_at=_parse_time(str(snapshot.get("taken_at", stored.checked_at))),
                            document=canonical_json(snapshot),
                        )
                    )
                return stored
        except SQLAlchemyError as exc:
            raise StoreError(
                f"Could not record the drift report: {_reason(exc)}. Nothing was recorded."
            ) from None

    def drift_reports(
        self, project: str | None = None, limit: int | None = None
    ) -> list[DriftReport]:
        """Drift reports, newest first."""
        with self._reading() as session:
            query = select(DriftReportRow).join(ProjectRow).order_by(col(DriftReportRow.id).desc())
            if project:
                query = query.where(ProjectRow.name == project)
            if limit:
                query = query.limit(limit)
            return [_to_drift(row) for row in session.exec(query).all()]

    def baseline_snapshot(self, project: str, target: str) -> dict[str, Any] | None:
        """The snapshot of ``target`` taken at the project's last clean check."""
        with self._reading() as session:
            row = session.exec(
                select(SnapshotRow)
                .join(DriftReportRow)
                .join(ProjectRow)
                .where(ProjectRow.name == project, SnapshotRow.target == target)
                .where(DriftReportRow.status == "clean")
                .order_by(col(SnapshotRow.id).desc())
            ).first()
            return json.loads(row.document) if row else None

    def drift_reports_of(self, lockset_hash: str) -> list[tuple[str, DriftReport]]:
        """(hash, report) of every drift report on one lockset, newest first."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(DriftReportRow)
                .where(DriftReportRow.lockset_hash == lockset_hash)
                .order_by(col(DriftReportRow.id).desc())
            ).all()
            return [(row.hash, _to_drift(row)) for row in rows]

    # -- tracked images ----------------------------------------------------------

    def track_image(self, project: str, reference: str, target: str) -> bool:
        """Track an image for ``project``; ``False`` when it already was."""
        try:
            with Session(self.engine) as session, session.begin():
                row = self._project(session, project)
                if session.exec(
                    select(TrackedImageRow).where(
                        TrackedImageRow.project_id == row.id,
                        TrackedImageRow.reference == reference,
                        TrackedImageRow.target == target,
                    )
                ).first():
                    return False
                session.add(
                    TrackedImageRow(
                        project_id=row.id,  # type: ignore[arg-type]
                        reference=reference,
                        target=target,
                        created_at=datetime.now(UTC),
                    )
                )
                return True
        except SQLAlchemyError as exc:
            raise StoreError(f"Could not record the tracked image: {exc}.") from None

    def tracked_images(self, project: str | None = None) -> list[TrackedImage]:
        """Tracked images, by project and order of tracking."""
        with Session(self.engine) as session:
            query = (
                select(TrackedImageRow, ProjectRow)
                .join(ProjectRow)
                .order_by(ProjectRow.name, col(TrackedImageRow.id))
            )
            if project:
                query = query.where(ProjectRow.name == project)
            return [
                TrackedImage(
                    project=proj.name,
                    reference=row.reference,
                    target=row.target,
                    created_at=row.created_at.replace(tzinfo=None).isoformat(timespec="seconds")
                    + "Z",
                )
                for row, proj in session.exec(query).all()
            ]

    # -- tamper evidence ---------------------------------------------------------

    def has_schema(self) -> bool:
        """Whether the database holds lockd's tables: an empty or truncated file does not.

        A SQLite file that does not exist is not created by asking.
        """
        url = self.engine.url
        file_db = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        if file_db and not Path(str(url.database)).is_file():
            return False
        try:
            return sa_inspect(self.engine).has_table("locksets")
        except SQLAlchemyError as exc:
            raise self._failure("read", exc) from None

    def chain_records(self, project: str | None = None) -> Records:
        """Every lockset and drift report row as plain records (one query per table)."""
        try:
            return load_records(self.engine, project)
        except SQLAlchemyError as exc:
            raise self._failure("read", exc) from None

    def verify_chains(self, project: str | None = None) -> ChainReport:
        """Recompute the hash chains and cross-check the rows against their documents."""
        return check_chains(self.chain_records(project))


# The extra of lockd that installs a dialect's driver (pyproject's optional dependencies).
_DRIVER_EXTRAS = {"postgresql": "postgres"}


def _missing_driver(url: str, module: str) -> ConfigError:
    from sqlalchemy.engine import make_url

    backend = make_url(url).get_backend_name()
    extra = _DRIVER_EXTRAS.get(backend)
    return ConfigError(
        f"The database URL {strip_credentials(url)[:200]} needs the Python module {module!r} "
        f"({backend}'s driver), which is not installed where lockd runs.",
        hint=f"Install lockd with its {extra} extra: pip install 'lockd[{extra}]'."
        if extra
        else f"Install {module} into lockd's environment, or use a sqlite:/// or "
        "postgresql+psycopg:// URL.",
    )


def _reason(exc: BaseException) -> str:
    """The database's own words: the driver's message, first line, bounded."""
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]


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


def _to_drift(row: DriftReportRow) -> DriftReport:
    data = json.loads(row.document)
    return DriftReport(
        project=data["project"],
        lockset=data["lockset"],
        checked_at=data["checked_at"],
        findings=tuple(Finding.from_dict(f) for f in data["findings"]),
        errors=tuple(CheckError(e.get("target"), e["check"], e["message"]) for e in data["errors"]),
        checks=tuple(data.get("checks", [])),
        parent=data.get("parent"),
        image=data.get("image"),
    )


def _to_lockset(row: LocksetRow) -> Lockset:
    data = json.loads(row.document)
    data["hash"] = row.hash
    return Lockset.from_dict(data)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
