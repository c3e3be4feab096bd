"""Loading the chain records from the database, a batch of records at a time.

:class:`RecordReader` reads inside one snapshot (a reader never blocks a
writer): the drift reports and the locksets in append order, each batch of
locksets with its lock, artifact, dependency and image rows (aggregated in SQL:
the row count, not the bytes, is what makes reading 100,000 artifacts slow),
and the rows whose parent row is gone.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlmodel import SQLModel

from ...lockset import sha256_text
from .. import tables as _tables  # noqa: F401 - registers the tables in SQLModel.metadata
from ..engine import read_snapshot
from .chains import parse_document, utc
from .records import (
    ARTIFACT_FIELDS,
    DEPENDENCY_FIELDS,
    FIELD_SEP,
    IMAGE_FIELDS,
    ROW_SEP,
    DriftRecord,
    ImageRecord,
    LockFileRecord,
    LockRecord,
    LocksetRecord,
    Records,
)

# Locksets per batch: a few MB of documents and rows at a time, few enough queries.
BATCH = 200
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
    """Every row the chains consist of, held in memory (small databases, tests).

    Rows whose parent row is gone (orphans) are looked for only across all
    projects: with ``project`` they cannot be attributed to it.
    """
    with reading_records(engine, project) as reader:
        orphans = reader.orphans()
        return Records(
            tuple(reader.locksets()),
            tuple(reader.drift_reports()),
            orphans.orphan_locks,
            orphans.orphan_artifacts,
            orphans.orphan_images,
            orphans.orphan_dependencies,
            orphans.altered_snapshots,
        )


@contextmanager
def reading_records(
    engine: Engine, project: str | None = None, batch: int | None = None
) -> Iterator[RecordReader]:
    """A :class:`RecordReader` over one snapshot of the database (``batch``: locksets per
    query, default :data:`BATCH`)."""
    with read_snapshot(engine) as conn:
        yield RecordReader(conn, project, batch or BATCH)


class RecordReader:
    """The chain records of every project (or one), a batch at a time, in append order."""

    def __init__(self, conn: Connection, project: str | None, batch: int) -> None:
        self._conn, self._project, self._batch = conn, project, max(1, batch)
        self._t = SQLModel.metadata.tables

    def lockset_count(self) -> int:
        """How many locksets :meth:`locksets` brings."""
        locksets_t, projects_t = self._t["locksets"], self._t["projects"]
        query = sa.select(sa.func.count()).select_from(locksets_t)
        if self._project is not None:
            query = query.join(projects_t).where(projects_t.c.name == self._project)
        return int(self._conn.execute(query).scalar_one())

    def locksets(self) -> Iterator[LocksetRecord]:
        """Every lockset with its rows, oldest first. The next batch is read while the one
        before is used (in a thread: the database works without holding the GIL)."""
        for batch in _ahead(self._lockset_batches()):
            yield from lockset_records(batch)

    def _lockset_batches(self) -> Iterator[LocksetRows]:
        """The rows of each batch of locksets, as :func:`lockset_records` takes them."""
        t = self._t
        locksets_t, projects_t = t["locksets"], t["projects"]
        locksets, projects = locksets_t.c, projects_t.c
        locks, artifacts, images = t["locks"].c, t["artifacts"].c, t["images"].c
        dependencies = t["dependencies"].c
        query = sa.select(
            locksets.id,
            projects.name,
            locksets.hash,
            locksets.parent_hash,
            locksets.document,
            *(locksets[name] for name in _LOCKSET_COLUMNS),
        ).join_from(locksets_t, projects_t)
        if self._project is not None:
            query = query.where(projects.name == self._project)
        line: sa.ColumnElement[str] = sa.cast(artifacts.id, sa.String)
        for name in ARTIFACT_FIELDS:
            line = line.concat(FIELD_SEP).concat(artifacts[name])
        edge: sa.ColumnElement[str] = sa.cast(dependencies.id, sa.String)
        for name in DEPENDENCY_FIELDS:
            edge = edge.concat(FIELD_SEP).concat(sa.func.coalesce(dependencies[name], ""))
        after = 0
        while True:
            rows = self._conn.execute(
                query.where(locksets.id > after).order_by(locksets.id).limit(self._batch)
            ).all()
            if not rows:
                return
            after = rows[-1][0]
            ids = [row[0] for row in rows]
            own_locks = sa.select(locks.id).where(locks.lockset_id.in_(ids))
            yield LocksetRows(
                rows,
                self._conn.execute(
                    sa.select(locks.id, locks.lockset_id, locks.target, locks.flavour, locks.files)
                    .where(locks.lockset_id.in_(ids))
                    .order_by(locks.id)
                ).all(),
                self._per_lock(artifacts.lock_id, line, own_locks),
                self._conn.execute(
                    sa.select(images.id, images.lockset_id, *(images[n] for n in IMAGE_FIELDS))
                    .where(images.lockset_id.in_(ids))
                    .order_by(images.id)
                ).all(),
                self._per_lock(dependencies.lock_id, edge, own_locks),
                self._lock_files(ids),
            )

    def _lock_files(self, ids: Sequence[int]) -> list[tuple[int, LockFileRecord]]:
        """``(lockset id, record)`` of each stored lock file of ``ids``, hashed as read (in
        the read-ahead thread; the contents are not kept)."""
        files = self._t["lock_files"].c
        rows = self._conn.execution_options(yield_per=100).execute(
            sa.select(files.lockset_id, files.id, files.name, files.sha256, files.content)
            .where(files.lockset_id.in_(ids))
            .order_by(files.id)
        )
        return [
            (owner, LockFileRecord(row_id, name, digest, sha256_text(content)))
            for owner, row_id, name, digest, content in rows
        ]

    def _per_lock(
        self, lock_id: sa.ColumnElement[int], line: sa.ColumnElement[str], locks: sa.Select[Any]
    ) -> Sequence[Any]:
        """``(lock id, the lines of its rows joined by ROW_SEP)`` of each of ``locks``."""
        return self._conn.execute(
            sa.select(lock_id, sa.func.aggregate_strings(line, ROW_SEP))
            .where(lock_id.in_(locks))
            .group_by(lock_id)
        ).all()

    def drift_reports(self) -> Iterator[DriftRecord]:
        """Every drift report, oldest first."""
        drifts_t, projects_t = self._t["drift_reports"], self._t["projects"]
        drifts, projects = drifts_t.c, projects_t.c
        query = sa.select(
            drifts.id,
            projects.name,
            drifts.hash,
            drifts.parent_hash,
            drifts.document,
            *(drifts[name] for name in _DRIFT_COLUMNS),
        ).join_from(drifts_t, projects_t)
        if self._project is not None:
            query = query.where(projects.name == self._project)
        after = 0
        while True:
            rows = self._conn.execute(
                query.where(drifts.id > after).order_by(drifts.id).limit(self._batch * 5)
            ).all()
            if not rows:
                return
            snapshots, posted = self._snapshots_of(rows[0][0], rows[-1][0])
            after = rows[-1][0]
            yield from (
                drift_record(row, snapshots.get(row[0], {}), posted.get(row[0])) for row in rows
            )

    def _snapshots_of(
        self, first: int, last: int
    ) -> tuple[dict[int, dict[str, tuple[str, str]]], dict[int, str]]:
        """The ``snapshots`` rows of the drift reports ``first``..``last``, by report id, and
        the deployment that posted each one a deployment posted."""
        snapshots = self._t["snapshots"].c
        rows = self._conn.execute(
            sa.select(
                snapshots.drift_report_id,
                snapshots.target,
                snapshots.document_hash,
                snapshots.taken_at,
                snapshots.deployment,
            )
            .where(snapshots.drift_report_id.between(first, last))
            .order_by(snapshots.id)
        )
        found: dict[int, dict[str, tuple[str, str]]] = defaultdict(dict)
        posted: dict[int, str] = {}
        for report_id, target, digest, taken_at, deployment in rows:
            found[report_id][target] = (digest, utc(taken_at))
            if deployment is not None:
                posted[report_id] = deployment
        return found, posted

    def orphans(self) -> Records:
        """Rows whose parent row is gone, as ``(row id, missing parent id)`` (only across all
        projects: with a project they cannot be attributed to it)."""
        altered = altered_snapshots(self._conn, self._project)
        if self._project is not None:
            return Records((), (), altered_snapshots=altered)
        t = self._t
        pairs = []
        for table, parent, key, grouped in (
            ("locks", "locksets", "lockset_id", False),
            ("artifacts", "locks", "lock_id", True),
            ("images", "locksets", "lockset_id", False),
            ("dependencies", "locks", "lock_id", True),
        ):
            rows, parents = t[table].c, t[parent].c
            gone = ~sa.exists().where(parents.id == rows[key])
            if grouped:  # one row stands for all the rows of a missing parent
                query = sa.select(sa.func.min(rows.id), rows[key]).where(gone).group_by(rows[key])
            else:
                query = sa.select(rows.id, rows[key]).where(gone)
            pairs.append(tuple(sorted((int(a), int(b)) for a, b in self._conn.execute(query))))
        locks, artifacts, images, dependencies = pairs
        return Records((), (), locks, artifacts, images, dependencies, altered)


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


class LocksetRows(NamedTuple):
    """One batch of locksets as plain rows, in the column order :class:`RecordReader`
    selects. ``artifacts`` and ``dependencies`` are ``(lock id, lines joined by ROW_SEP)``;
    ``lock_files`` are ``(lockset id, record)``."""

    locksets: Sequence[Sequence[Any]]
    locks: Sequence[Sequence[Any]]
    artifacts: Sequence[Sequence[Any]]
    images: Sequence[Sequence[Any]] = ()
    dependencies: Sequence[Sequence[Any]] = ()
    lock_files: Sequence[tuple[int, LockFileRecord]] = ()


def lockset_records(batch: LocksetRows) -> list[LocksetRecord]:
    """Group one batch's plain rows into records."""
    artifacts: dict[int, tuple[str, ...]] = {
        lock_id: tuple(text.split(ROW_SEP)) if text else () for lock_id, text in batch.artifacts
    }
    dependencies: dict[int, tuple[str, ...]] = {
        lock_id: tuple(text.split(ROW_SEP)) if text else () for lock_id, text in batch.dependencies
    }
    images: dict[int, list[ImageRecord]] = defaultdict(list)
    for image_id, owner, *values in batch.images:
        columns = dict(zip(IMAGE_FIELDS, values, strict=True))
        columns["resolved_at"] = utc(columns["resolved_at"])
        images[owner].append(ImageRecord(image_id, columns))
    lock_files: dict[int, list[LockFileRecord]] = defaultdict(list)
    for owner, lock_file in batch.lock_files:
        lock_files[owner].append(lock_file)
    locks: dict[int, list[LockRecord]] = defaultdict(list)
    for lock_id, lockset_id, target, flavour, files in batch.locks:
        locks[lockset_id].append(
            LockRecord(
                lock_id,
                target,
                flavour,
                files or {},
                artifacts.get(lock_id, ()),
                dependencies.get(lock_id, ()),
            )
        )
    locksets = []
    for lockset_id, project, digest, parent, document, *values in batch.locksets:
        columns = dict(zip(_LOCKSET_COLUMNS, values, strict=True))
        columns["created_at"] = utc(columns["created_at"])
        locksets.append(
            LocksetRecord(
                lockset_id,
                project,
                digest,
                parent,
                document,
                columns,
                tuple(locks.get(lockset_id, ())),
                tuple(images.get(lockset_id, ())),
                parse_document(document),
                tuple(lock_files.get(lockset_id, ())),
            )
        )
    return locksets


def drift_record(
    row: Sequence[Any],
    snapshots: Mapping[str, tuple[str, str]] | None = None,
    deployment: str | None = None,
) -> DriftRecord:
    """One drift report row (in the column order :class:`RecordReader` selects) as a record,
    with its ``snapshots`` rows (target -> content hash, taken_at) and the deployment that
    posted it."""
    drift_id, project, digest, parent, document, *values = row
    columns = dict(zip(_DRIFT_COLUMNS, values, strict=True))
    columns["checked_at"] = utc(columns["checked_at"])
    return DriftRecord(
        drift_id,
        project,
        digest,
        parent,
        document,
        columns,
        parse_document(document),
        dict(snapshots or {}),
        deployment,
    )


_T = TypeVar("_T")
_DONE = object()


def _ahead(items: Iterator[_T]) -> Iterator[_T]:
    """``items``, each produced in a thread while the consumer uses the one before.

    The thread stops when the consumer stops early (an error, Ctrl-C): it is joined before
    this generator returns, so the connection it reads through is free again.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                handoff.put(item)
                if stop.is_set():
                    break
        except BaseException as exc:  # raised again in the consumer
            handoff.put(_Failed(exc))
        else:
            handoff.put(_DONE)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="lockd-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := handoff.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting to hand over a batch
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.05)
        thread.join()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
