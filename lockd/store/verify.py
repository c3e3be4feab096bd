"""Tamper evidence: recompute the hash chains and cross-check the rows against the documents.

Every lockset and drift report row keeps the canonical JSON its ``hash`` was
computed over (``document``) and its predecessor's hash (``parent_hash``),
chained per project. :func:`check_chains` is pure: it takes the rows as plain
records (loaded by :func:`load_records`, one query per table) and reports, per
project, every record that was altered (a hash that does not match its
document, a column or a lock, artifact or image row that contradicts it) or
removed (a parent link or drift report pointing at a lockset that is not
there).

What a chain cannot show: the newest record of a project can be replaced
consistently (document and hash rewritten together) because nothing points
at it yet. The head hashes are therefore reported, so that they can be
anchored elsewhere (``locks/lockd.json`` in version control holds the head
lockset's hash).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import SQLModel

from ..drift import DRIFT_FORMAT, report_status
from ..lockset import LOCKSET_FORMAT
from . import tables as _tables  # noqa: F401 - registers the tables in SQLModel.metadata

ARTIFACT_FIELDS = ("name", "version", "index", "url", "filename", "sha256", "kind")
# Separators of the artifact lines: ASCII unit/record separators never occur in
# names, versions, URLs, file names or hashes (a row that has one shows as altered).
FIELD_SEP, ROW_SEP = "\x1f", "\x1e"
_artifact_fields = itemgetter(*ARTIFACT_FIELDS)
# dependencies columns, NULL read as "" (no recorded graph value is empty)
DEPENDENCY_FIELDS = ("kind", "package", "dependency", "requirement", "source", "extra")
# images columns in document order; the document spells "registry" the same way
IMAGE_FIELDS = (
    "reference",
    "registry",
    "repository",
    "tag",
    "index_digest",
    "media_type",
    "platforms",
    "resolved_at",
)


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """One ``artifacts`` row."""

    id: int
    name: str
    version: str
    index: str
    url: str
    filename: str
    sha256: str
    kind: str


@dataclass(frozen=True, slots=True)
class LockRecord:
    """One ``locks`` row with its artifact rows.

    The artifact rows travel as text, one line per row: the row id and
    ``ARTIFACT_FIELDS`` joined by ``FIELD_SEP`` (aggregated in SQL, so that a
    database of 100,000 artifacts is read as a few thousand rows).
    """

    id: int
    target: str
    flavour: str | None
    files: Mapping[str, str]
    artifact_lines: tuple[str, ...]
    # The dependency rows the same way: id, then DEPENDENCY_FIELDS.
    dependency_lines: tuple[str, ...] = ()

    def artifacts(self) -> tuple[ArtifactRecord, ...]:
        """The artifact rows as records (only needed to explain a difference)."""
        out = []
        for line in self.artifact_lines:
            row_id, *values = line.split(FIELD_SEP)
            if len(values) == len(ARTIFACT_FIELDS):
                out.append(ArtifactRecord(int(row_id), *values))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One ``images`` row (a base image recorded with a lockset)."""

    id: int
    columns: Mapping[str, Any]  # IMAGE_FIELDS, resolved_at as UTC ISO


@dataclass(frozen=True, slots=True)
class LocksetRecord:
    """One ``locksets`` row: the document, the hash and the columns derived from it."""

    id: int
    project: str
    hash: str
    parent_hash: str | None
    document: str
    columns: Mapping[str, Any]  # the normalized columns, JSON-ready (times as UTC ISO)
    locks: tuple[LockRecord, ...]
    images: tuple[ImageRecord, ...] = ()
    data: Mapping[str, Any] | None = None  # the document parsed once (None: not JSON)


@dataclass(frozen=True, slots=True)
class DriftRecord:
    """One ``drift_reports`` row."""

    id: int
    project: str
    hash: str
    parent_hash: str | None
    document: str
    columns: Mapping[str, Any]
    data: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Records:
    """Everything the chains are made of, in insertion order per table."""

    locksets: tuple[LocksetRecord, ...]
    drift_reports: tuple[DriftRecord, ...]
    orphan_locks: tuple[tuple[int, int], ...] = ()  # (lock id, missing lockset id)
    orphan_artifacts: tuple[tuple[int, int], ...] = ()  # (artifact id, missing lock id)
    orphan_images: tuple[tuple[int, int], ...] = ()  # (image id, missing lockset id)
    orphan_dependencies: tuple[tuple[int, int], ...] = ()  # (dependency id, missing lock id)


@dataclass(frozen=True, slots=True)
class Problem:
    """One record that was altered or removed."""

    project: str | None
    record: str  # "lockset" | "drift-report" | "lock" | "artifact"
    ref: str  # the record's hash, or "id N" for rows without one
    change: str  # "altered" | "removed"
    detail: str

    def describe(self) -> str:
        where = f" of project {self.project}" if self.project else ""
        return f"{self.record} {self.ref}{where} was {self.change}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "record": self.record,
            "ref": self.ref,
            "change": self.change,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class ProjectChain:
    """The outcome for one project's two chains."""

    project: str
    locksets: int
    drift_reports: int
    head_lockset: str | None
    head_drift_report: str | None
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "verified": self.ok,
            "locksets": self.locksets,
            "drift_reports": self.drift_reports,
            "head_lockset": self.head_lockset,
            "head_drift_report": self.head_drift_report,
            "problems": [p.to_dict() for p in self.problems],
        }


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Every project's chains, plus rows that belong to no record any more."""

    projects: tuple[ProjectChain, ...]
    orphans: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.orphans and all(p.ok for p in self.projects)

    @property
    def problems(self) -> tuple[Problem, ...]:
        """All problems, each project's in chain order, orphans last."""
        return (*(p for chain in self.projects for p in chain.problems), *self.orphans)

    @property
    def first(self) -> Problem | None:
        """The first altered or removed record (the earliest in its chain)."""
        problems = self.problems
        return problems[0] if problems else None

    def project(self, name: str) -> ProjectChain | None:
        return next((p for p in self.projects if p.project == name), None)

    def to_dict(self) -> dict[str, Any]:
        first = self.first
        return {
            "verified": self.ok,
            "first_problem": first.to_dict() if first else None,
            "projects": [p.to_dict() for p in self.projects],
            "orphans": [p.to_dict() for p in self.orphans],
            "locksets": sum(p.locksets for p in self.projects),
            "drift_reports": sum(p.drift_reports for p in self.projects),
        }


# -- the pure checker ------------------------------------------------------------


def check_chains(records: Records) -> ChainReport:
    """Recompute every chain and cross-check every row (pure)."""
    locksets: dict[str, list[LocksetRecord]] = defaultdict(list)
    drifts: dict[str, list[DriftRecord]] = defaultdict(list)
    for record in records.locksets:
        locksets[record.project].append(record)
    for drift in records.drift_reports:
        drifts[drift.project].append(drift)
    chains = []
    for project in sorted(set(locksets) | set(drifts)):
        own, reports = locksets.get(project, []), drifts.get(project, [])
        found = _lockset_chain(project, own) + _drift_chain(project, reports, {r.hash for r in own})
        # A removed lockset can be named twice (by its child and by a drift report).
        problems = list({(p.record, p.ref, p.change): p for p in reversed(found)}.values())[::-1]
        chains.append(
            ProjectChain(
                project=project,
                locksets=len(own),
                drift_reports=len(reports),
                head_lockset=own[-1].hash if own else None,
                head_drift_report=reports[-1].hash if reports else None,
                problems=tuple(problems),
            )
        )
    # Rows left behind by a deleted parent row name it by its id (one problem per id).
    orphans: dict[tuple[str, int], Problem] = {}
    for table, kind, pairs in (
        ("locks", "lockset", records.orphan_locks),
        ("artifacts", "lock", records.orphan_artifacts),
        ("images", "lockset", records.orphan_images),
        ("dependencies", "lock", records.orphan_dependencies),
    ):
        for row_id, parent_id in pairs:
            orphans.setdefault(
                (kind, parent_id),
                Problem(
                    None,
                    kind,
                    f"id {parent_id}",
                    "removed",
                    f"row {row_id} of the {table} table still refers to it",
                ),
            )
    return ChainReport(tuple(chains), tuple(orphans.values()))


class _Chained(Protocol):
    @property
    def hash(self) -> str: ...

    @property
    def parent_hash(self) -> str | None: ...


_R = TypeVar("_R", bound=_Chained)


def _chain(
    project: str, kind: str, records: Sequence[_R], check: Callable[[_R], list[Problem]]
) -> list[Problem]:
    """Walk one chain in order: each record's parent link, then ``check`` of the record."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, record in enumerate(records):
        # The parent link first: a gap means the parent was removed (or rewritten).
        problem = _link(project, kind, record.hash, record.parent_hash, seen=seen, first=index == 0)
        if problem:
            problems.append(problem)
        seen.add(record.hash)
        problems += check(record)
    return problems


def _lockset_chain(project: str, records: Sequence[LocksetRecord]) -> list[Problem]:
    def check(record: LocksetRecord) -> list[Problem]:
        detail = _lockset_difference(record)
        return [Problem(project, "lockset", record.hash, "altered", detail)] if detail else []

    return _chain(project, "lockset", records, check)


def _drift_chain(project: str, records: Sequence[DriftRecord], locksets: set[str]) -> list[Problem]:
    def check(record: DriftRecord) -> list[Problem]:
        found: list[Problem] = []
        detail = _drift_difference(record)
        if detail:
            found.append(Problem(project, "drift-report", record.hash, "altered", detail))
        checked = record.columns.get("lockset_hash")
        if isinstance(checked, str) and checked not in locksets:
            # A drift check names its lockset: this also catches a removed newest lockset.
            found.append(
                Problem(
                    project,
                    "lockset",
                    checked,
                    "removed",
                    f"drift report {record.hash} checked it, but it is not in the database",
                )
            )
        return found

    return _chain(project, "drift-report", records, check)


def _link(
    project: str, kind: str, ref: str, parent: str | None, *, seen: set[str], first: bool
) -> Problem | None:
    if parent is None:
        if first:
            return None
        return Problem(
            project,
            kind,
            ref,
            "altered",
            "it names no parent although earlier records exist: the chain was cut here",
        )
    if parent in seen:
        return None
    return Problem(
        project,
        kind,
        parent,
        "removed",
        f"{kind} {ref} names it as its parent, but it is not in the database before it "
        "(removed, or altered and re-hashed)",
    )


def parse_document(document: str) -> Mapping[str, Any] | None:
    """A record's document as a mapping, or None when it is not a JSON object."""
    try:
        data = json.loads(document)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _parse(record: LocksetRecord | DriftRecord, fmt: str) -> tuple[Mapping[str, Any] | None, str]:
    """The document as a mapping, or why it cannot be trusted.

    The sha256 of the stored text is the proof: a document rewritten together
    with its hash breaks its child's parent link instead (the head excepted,
    see the module docstring), so the text is not re-serialized here.
    """
    if hashlib.sha256(record.document.encode()).hexdigest() != record.hash:
        return None, "its document no longer matches its hash"
    data = record.data if record.data is not None else parse_document(record.document)
    if data is None:
        return None, "its document is not a JSON object"
    if data.get("format") != fmt:
        return None, f"its document is not a {fmt} document"
    return data, _filing_difference(record, data)


def _filing_difference(record: LocksetRecord | DriftRecord, data: Mapping[str, Any]) -> str:
    """Where the row files the document (project, parent) against what the document says."""
    if data.get("parent") != record.parent_hash:
        return (
            f"parent_hash column {_short(record.parent_hash)} differs from the document's "
            f"parent {_short(data.get('parent'))}"
        )
    if data.get("project") != record.project:
        return (
            f"it is filed under project {record.project!r}, "
            f"its document says {data.get('project')!r}"
        )
    return ""


def _lockset_difference(record: LocksetRecord) -> str:
    """Why the row, its locks or artifacts contradict the document; '' when they agree."""
    data, why = _parse(record, LOCKSET_FORMAT)
    if data is None or why:
        return why
    try:
        expected = _lockset_columns(data)
    except (KeyError, TypeError, AttributeError):
        return "its document lacks fields every lockset has"
    for name, value in expected.items():
        if record.columns.get(name) != value:
            return (
                f"column {name} is {_show(record.columns.get(name))} in the locksets table, "
                f"{_show(value)} in the document"
            )
    return _locks_difference(record.locks, data["locks"]) or _images_difference(
        record.images, data.get("images", [])
    )


def _lockset_columns(data: Mapping[str, Any]) -> dict[str, Any]:
    prov = data["provenance"]
    return {
        "input_key": data["input_key"],
        "resolver": data["resolver"]["name"],
        "resolver_version": data["resolver"]["version"],
        "cutoff": data["cutoff"],
        "created_at": _utc(prov["created_at"]),
        "user": prov["user"],
        "host": prov["host"],
        "git_commit": prov.get("git_commit"),
        "status": "partial" if data["failures"] else "complete",
        "targets": data["targets"],
        "inputs": data["inputs"],
        "indexes": data["indexes"],
        "failures": data["failures"],
    }


def _locks_difference(rows: Sequence[LockRecord], locks: Sequence[Mapping[str, Any]]) -> str:
    by_target = {row.target: row for row in rows}
    documented = {lock["target"] for lock in locks}
    for target in sorted(set(by_target) - documented):
        return f"locks row {by_target[target].id} for target {target} is not in the document"
    for lock in locks:
        row = by_target.get(lock["target"])
        if row is None:
            return f"the lock of target {lock['target']} is missing from the locks table"
        if row.flavour != lock.get("flavour"):
            return (
                f"target {row.target}: flavour {_show(row.flavour)} in the locks table, "
                f"{_show(lock.get('flavour'))} in the document"
            )
        if dict(row.files) != lock.get("files", {}):
            return f"target {row.target}: the lock file hashes differ from the document"
        detail = _artifacts_difference(row, lock["artifacts"]) or _dependencies_difference(
            row, lock.get("graph")
        )
        if detail:
            return f"target {row.target}: {detail}"
    return ""


def _dependencies_difference(row: LockRecord, graph: Mapping[str, Any] | None) -> str:
    """The dependency rows against the document's graph (none without one)."""
    try:
        documented = Counter(
            [
                (
                    "constraint" if r.get("constraint") else "input",
                    "",
                    r["package"],
                    r["requirement"],
                    r["source"],
                    "",
                )
                for r in (graph or {}).get("roots", [])
            ]
            + [
                ("requires", e["from"], e["to"], e["requirement"], "", e.get("extra") or "")
                for e in (graph or {}).get("edges", [])
            ]
        )
    except (KeyError, TypeError, AttributeError):
        return "its document's dependency graph lacks fields every graph has"
    stored = Counter(tuple(line.split(FIELD_SEP)[1:]) for line in row.dependency_lines)
    if stored == documented:
        return ""
    for values in stored - documented:
        return f"dependency row {_dependency(values)} is not in the document's graph"
    for values in documented - stored:
        return f"{_dependency(values)} of the document's graph is missing from its table"
    return "its dependency rows differ from the document's graph"


def _dependency(values: tuple[str, ...]) -> str:
    """``requires pandas -> numpy (numpy>=2.2)``, ``input -r requirements.in -> pandas (…)``."""
    kind, package, dependency, requirement, source, extra = (*values, *[""] * 6)[:6]
    through = f", extra {extra}" if extra else ""
    text = f"{kind} {package or source} -> {dependency} ({requirement}{through})"
    return text if len(text) <= 120 else text[:119] + "…"


def _artifacts_difference(row: LockRecord, artifacts: Sequence[Mapping[str, Any]]) -> str:
    # Fast path: the same multiset of rows, compared as text without the row ids.
    try:
        documented = sorted(FIELD_SEP.join(_artifact_fields(a)) for a in artifacts)
    except (KeyError, TypeError):  # a field missing or not text: compare field by field
        documented = []
    if documented == sorted(line.partition(FIELD_SEP)[2] for line in row.artifact_lines):
        return ""
    stored = {(a.name, a.filename): a for a in row.artifacts()}
    for artifact in artifacts:
        key = (artifact["name"], artifact["filename"])
        found = stored.pop(key, None)
        if found is None:
            return (
                f"artifact {artifact['name']} {artifact['filename']} is missing from the "
                "artifacts table"
            )
        for name in ARTIFACT_FIELDS:
            if getattr(found, name) != artifact.get(name, "wheel" if name == "kind" else None):
                return (
                    f"artifact {found.name} {found.version} ({found.filename}, row {found.id}): "
                    f"{name} is {_show(getattr(found, name))} in the artifacts table, "
                    f"{_show(artifact.get(name))} in the document"
                )
    for extra in stored.values():
        return f"artifact row {extra.id} ({extra.name} {extra.filename}) is not in the document"
    return "its artifact rows differ from the document (duplicated or unreadable rows)"


def _images_difference(rows: Sequence[ImageRecord], images: Sequence[Mapping[str, Any]]) -> str:
    if len(rows) != len(images):
        return f"{len(rows)} image rows for the {len(images)} base images of the document"
    for row, image in zip(rows, images, strict=True):  # both in recording order
        for name in IMAGE_FIELDS:
            value = image.get(name)
            if name == "resolved_at" and value is not None:
                value = _utc(value)
            if row.columns.get(name) != value:
                return (
                    f"image {image.get('reference')} (row {row.id}): {name} is "
                    f"{_show(row.columns.get(name))} in the images table, {_show(value)} in the "
                    "document"
                )
    return ""


def _drift_difference(record: DriftRecord) -> str:
    data, why = _parse(record, DRIFT_FORMAT)
    if data is None or why:
        return why
    try:
        findings = data["findings"]
        expected = {
            "lockset_hash": data["lockset"],
            "status": report_status(
                (f.get("severity", "error") for f in findings), bool(data["errors"])
            ),
            "checked_at": _utc(data["checked_at"]),
            "finding_count": len(findings),
        }
    except (KeyError, TypeError, ValueError, AttributeError):
        return "its document lacks fields every drift report has"
    if data.get("status") != expected["status"]:
        return f"its status {data.get('status')!r} contradicts its findings"
    for name, value in expected.items():
        if record.columns.get(name) != value:
            return (
                f"column {name} is {_show(record.columns.get(name))} in the drift_reports "
                f"table, {_show(value)} in the document"
            )
    return ""


def _utc(value: str | datetime) -> str:
    """One spelling for a moment: ISO, UTC, seconds (how both sides are compared)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds") + "Z"


def _short(value: object) -> str:
    return str(value)[:12] if value else "none"


def _show(value: object) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "…"


# -- loading (one query per table) -------------------------------------------------

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
    return assemble(
        lockset_rows,
        lock_rows,
        artifact_rows,
        drift_rows,
        image_rows,
        dependency_rows=dependency_rows,
        all_projects=project is None,
    )


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
        columns["resolved_at"] = _utc(columns["resolved_at"])
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
        columns["created_at"] = _utc(columns["created_at"])
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
        columns["checked_at"] = _utc(columns["checked_at"])
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


__all__ = [
    "ArtifactRecord",
    "ChainReport",
    "DriftRecord",
    "ImageRecord",
    "LockRecord",
    "LocksetRecord",
    "Problem",
    "ProjectChain",
    "Records",
    "assemble",
    "check_chains",
    "load_records",
    "parse_document",
]
