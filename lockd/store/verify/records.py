"""The rows hash chains are made of, as plain records, and what checking them finds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ARTIFACT_FIELDS = ("name", "version", "index", "url", "filename", "sha256", "kind")
# Separators of the artifact lines: ASCII unit/record separators never occur in
# names, versions, URLs, file names or hashes (a row that has one shows as altered).
FIELD_SEP, ROW_SEP = "\x1f", "\x1e"
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
class LockFileRecord:
    """One ``lock_files`` row: a lock file as compile wrote it, its content already hashed
    (the content itself is not kept)."""

    id: int
    name: str
    sha256: str  # the column
    content_sha256: str  # of the stored content


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
    lock_files: tuple[LockFileRecord, ...] = ()  # none when the files were not stored


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
    # Its ``snapshots`` rows: target -> (content hash, taken_at as ``chains.utc`` spells it).
    snapshots: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    deployment: str | None = None  # the deployment that posted its snapshot (``lockd serve``)

    @property
    def origin(self) -> str:
        """Who made it (``drift.standing.origin_of``): a deployment, an image, local checks."""
        from ...drift.standing import origin_of

        return origin_of(self.deployment, self.snapshots)


@dataclass(frozen=True, slots=True)
class Records:
    """Everything the chains are made of, in insertion order per table."""

    locksets: tuple[LocksetRecord, ...]
    drift_reports: tuple[DriftRecord, ...]
    orphan_locks: tuple[tuple[int, int], ...] = ()  # (lock id, missing lockset id)
    orphan_artifacts: tuple[tuple[int, int], ...] = ()  # (artifact id, missing lock id)
    orphan_images: tuple[tuple[int, int], ...] = ()  # (image id, missing lockset id)
    orphan_dependencies: tuple[tuple[int, int], ...] = ()  # (dependency id, missing lock id)
    # Stored snapshot contents whose sha256 is not their key, with the reports that compared
    # them: (project, drift report hash, content key).
    altered_snapshots: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Problem:
    """One record that was altered or removed."""

    project: str | None
    record: str  # "lockset" | "drift-report" | "lock" | "artifact" | "snapshot"
    ref: str  # the record's hash, or "id N" for rows without one
    change: str  # "altered" | "removed" | "forked"
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
    """Every project's chains, plus rows that belong to no record any more.

    ``outside`` are the problems found by comparing the records with what a
    project directory keeps (``locks/lockd.json``, its versions in git, the lock
    files): see :mod:`lockd.store.verify.anchors`; ``evidence`` names what was
    compared.
    """

    projects: tuple[ProjectChain, ...]
    orphans: tuple[Problem, ...] = field(default=())
    outside: tuple[Problem, ...] = field(default=())
    evidence: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.orphans and not self.outside and all(p.ok for p in self.projects)

    @property
    def empty(self) -> bool:
        """No record at all (an empty, truncated or emptied database looks like this)."""
        return not self.projects

    @property
    def problems(self) -> tuple[Problem, ...]:
        """All problems: what the project directory shows missing first (an emptied database
        has no chain to break), then each project's in chain order, orphans last."""
        return (
            *self.outside,
            *(p for chain in self.projects for p in chain.problems),
            *self.orphans,
        )

    @property
    def first(self) -> Problem | None:
        """The first altered or removed record (the earliest in its chain)."""
        problems = self.problems
        return problems[0] if problems else None

    def project(self, name: str) -> ProjectChain | None:
        return next((p for p in self.projects if p.project == name), None)

    def verified(self, chain: ProjectChain) -> bool:
        """Whether nothing at all was found wrong for this project: its chains, and also
        what the project directory keeps and rows left over from its records."""
        return chain.ok and not any(
            p.project == chain.project for p in (*self.outside, *self.orphans)
        )

    def to_dict(self) -> dict[str, Any]:
        first = self.first
        return {
            "verified": self.ok,
            "first_problem": first.to_dict() if first else None,
            "projects": [
                {**p.to_dict(), "verified": self.verified(p), "chains_intact": p.ok}
                for p in self.projects
            ],
            "orphans": [p.to_dict() for p in self.orphans],
            "outside": [p.to_dict() for p in self.outside],
            "evidence": list(self.evidence),
            "locksets": sum(p.locksets for p in self.projects),
            "drift_reports": sum(p.drift_reports for p in self.projects),
        }
