"""The audit report as data (pure): what the Markdown, HTML and JSON renderers show.

:class:`AuditBuilder` takes recorded drift reports and locksets one at a time
(with the hashes the database filed them under) and, with the outcome of the
hash-chain check, returns frozen values: per project a line per lockset and
its drift history, newest first, and a summary. A lockset's full entry
(:class:`LocksetEntry`) is handed back as it is read, to be rendered then and
dropped: the report model of 10,000 locksets stays small. Nothing here reads
the database or formats text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..drift import DriftReport, Finding, Standing
from ..drift.standing import LOCAL
from ..errors import FormatError, UsageError, excerpt
from ..lockset import Lockset
from ..store.verify import ChainReport, ProjectChain
from ..times import parse_time

AUDIT_FORMAT = "lockd.audit/1"


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open time window ``[since, until)``; either end may be open."""

    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(
        cls,
        since: str | None,
        until: str | None,
        *,
        names: tuple[str, str] = ("--since", "--until"),
        now: datetime | None = None,
    ) -> Period:
        """ISO dates or times, or durations ago (``lockd.times``); a date as ``until``
        includes that whole day. ``names``: the flags, or the API's query parameters."""
        now = now or datetime.now(UTC)
        start = parse_time(since, names[0], now=now) if since else None
        stop = parse_time(until, names[1], now=now, end=True) if until else None
        if start and stop and start >= stop:
            raise UsageError(
                f"{names[0]} {excerpt(since or '')} is not before {names[1]} "
                f"{excerpt(until or '')}.",
                hint=f"Give the earlier moment as {names[0]}.",
            )
        return cls(start, stop)

    def contains(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment < self.until
        )

    def to_dict(self) -> dict[str, str | None]:
        return {"since": _iso(self.since), "until": _iso(self.until)}

    def describe(self) -> str:
        if self.since is None and self.until is None:
            return "all time"
        start = _iso(self.since) or "the beginning"
        stop = _iso(self.until) or "now"
        return f"{start} to {stop}"


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ImagePlatform:
    platform: str  # os/architecture[/variant]
    digest: str


@dataclass(frozen=True, slots=True)
class ImageEntry:
    """A base image as recorded with a lockset (whatever shape the record has)."""

    reference: str
    index_digest: str | None
    platforms: tuple[ImagePlatform, ...]
    resolved_at: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ImageEntry:
        platforms = []
        for entry in data.get("platforms") or ():
            if not isinstance(entry, Mapping):
                continue
            name = "/".join(
                str(entry[key]) for key in ("os", "architecture", "variant") if entry.get(key)
            )
            platforms.append(ImagePlatform(name or "?", str(entry.get("digest", ""))))
        digest = data.get("index_digest") or data.get("digest")
        return cls(
            reference=str(data.get("reference") or data.get("image") or "?"),
            index_digest=str(digest) if digest else None,
            platforms=tuple(platforms),
            resolved_at=data.get("resolved_at"),
        )


@dataclass(frozen=True, slots=True)
class LocksetEntry:
    """One recorded lockset; ``hash`` is the one it is filed under (not recomputed)."""

    hash: str
    lockset: Lockset
    images: tuple[ImageEntry, ...]
    drift_status: str | None  # of this lockset in the period (``drift.standing``)
    document: Mapping[str, Any] | None = None  # as recorded, when read from the database

    @property
    def artifact_count(self) -> int:
        return sum(len(lock.artifacts) for lock in self.lockset.locks)

    @property
    def source_builds(self) -> tuple[SourceBuild, ...]:
        """The packages a lock of this lockset installs from an sdist (their code runs)."""
        return tuple(
            SourceBuild(lock.target, name, version)
            for lock in self.lockset.locks
            for name, version in lock.source_builds().items()
        )

    def to_dict(self) -> dict[str, Any]:
        body = self.document if self.document is not None else self.lockset.body()
        return {**body, "hash": self.hash, "drift_status": self.drift_status}

    def line(self) -> LocksetLine:
        prov = self.lockset.provenance
        return LocksetLine(
            self.hash,
            prov.created_at,
            prov.user,
            prov.git_commit,
            self.lockset.resolver,
            self.lockset.resolver_version,
            len(self.lockset.targets),
            self.artifact_count,
            self.drift_status,
        )


@dataclass(frozen=True, slots=True)
class LocksetLine:
    """What the report's table of locksets shows of one (its section is rendered apart)."""

    hash: str
    created_at: str
    user: str
    git_commit: str | None
    resolver: str
    resolver_version: str
    target_count: int
    artifact_count: int
    drift_status: str | None


@dataclass(frozen=True, slots=True)
class SourceBuild:
    """A package a lock installs from a source distribution: installing runs its code."""

    target: str
    name: str
    version: str

    def to_dict(self) -> dict[str, str]:
        return {"target": self.target, "name": self.name, "version": self.version}


@dataclass(frozen=True, slots=True)
class DriftEntry:
    hash: str
    report: DriftReport
    document: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        body = self.document if self.document is not None else self.report.body()
        return {**body, "hash": self.hash}


@dataclass(frozen=True, slots=True)
class ProjectAudit:
    """One project in the period: locksets and drift reports, newest first."""

    name: str
    locksets: tuple[LocksetLine, ...]
    drift_reports: tuple[DriftEntry, ...]
    chain: ProjectChain | None
    unreadable: tuple[str, ...] = ()  # hashes of records whose document cannot be read
    source_builds: tuple[tuple[str, SourceBuild], ...] = ()  # (lockset hash, build)
    # The lockset of the newest drift report as it stands (``drift.standing``): the worst
    # over the newest report of each target and origin, and their open findings.
    standing: tuple[str, tuple[Finding, ...]] | None = None

    @property
    def latest(self) -> LocksetLine | None:
        return self.locksets[0] if self.locksets else None

    @property
    def last_drift(self) -> DriftEntry | None:
        return self.drift_reports[0] if self.drift_reports else None

    @property
    def drift_status(self) -> str:
        return self.standing[0] if self.standing else "not checked"

    @property
    def open_findings(self) -> tuple[Finding, ...]:
        """The open findings (not ``info``) of the lockset the newest drift report checked,
        over the newest report of each target and origin."""
        return self.standing[1] if self.standing else ()

    @property
    def chain_verified(self) -> bool | None:
        return None if self.chain is None else self.chain.ok

    def summary(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "project": self.name,
            "locksets": len(self.locksets),
            "drift_reports": len(self.drift_reports),
            "latest_lockset": latest.hash if latest else None,
            "latest_created_at": latest.created_at if latest else None,
            "last_drift_status": self.drift_status,
            "last_checked_at": self.last_drift.report.checked_at if self.last_drift else None,
            "open_findings": len(self.open_findings),
            "chain_verified": self.chain_verified,
        }


@dataclass(frozen=True, slots=True)
class AuditReport:
    """Everything an audit report shows."""

    generated_at: str
    lockd_version: str
    project: str | None  # the --project filter
    period: Period
    projects: tuple[ProjectAudit, ...]
    chain: ChainReport

    @property
    def lockset_count(self) -> int:
        return sum(len(p.locksets) for p in self.projects)

    @property
    def drift_count(self) -> int:
        return sum(len(p.drift_reports) for p in self.projects)

    @property
    def open_finding_count(self) -> int:
        return sum(len(p.open_findings) for p in self.projects)

    def summary(self) -> dict[str, Any]:
        return {
            "projects": len(self.projects),
            "locksets": self.lockset_count,
            "drift_reports": self.drift_count,
            "open_findings": self.open_finding_count,
            "chain_verified": self.chain.ok,
            "per_project": [p.summary() for p in self.projects],
        }

    def to_dict(self, locksets: Callable[[ProjectAudit], Any]) -> dict[str, Any]:
        """The ``lockd.audit/1`` JSON document, with ``locksets(project)`` in the place of each
        project's locksets (their entries are rendered one at a time, see
        :meth:`LocksetEntry.to_dict`).

        Each lockset and drift report is its recorded document plus the hash it
        is filed under, so a reader can recompute every hash itself.
        """
        return {
            "format": AUDIT_FORMAT,
            "generated_at": self.generated_at,
            "lockd_version": self.lockd_version,
            "filter": {"project": self.project, **self.period.to_dict()},
            "summary": self.summary(),
            "chain": self.chain.to_dict(),
            "projects": [
                {
                    "name": p.name,
                    "summary": p.summary(),
                    "unreadable": list(p.unreadable),
                    "locksets": locksets(p),
                    # what installing the locks runs: packages locked as sdists only
                    "source_builds": [
                        {"lockset": digest, **build.to_dict()} for digest, build in p.source_builds
                    ],
                    "drift_reports": [entry.to_dict() for entry in p.drift_reports],
                }
                for p in self.projects
            ],
        }


# -- building ----------------------------------------------------------------------


class AuditBuilder:
    """The report model built one record at a time: every drift report first (a lockset's
    section shows its last drift check), then the locksets, each project's oldest first.

    Only what the report shows of every record is kept (a :class:`LocksetLine` per
    lockset, the drift reports); :meth:`lockset` hands each lockset's full entry back.
    """

    def __init__(self, project: str | None = None, period: Period = Period()) -> None:
        self.project, self.period = project, period
        self._drifts: dict[str, list[DriftEntry]] = {}  # oldest first
        self._standing: dict[tuple[str, str], Standing] = {}  # by (project, lockset)
        self._lines: dict[str, list[LocksetLine]] = {}  # oldest first
        self._builds: dict[str, list[tuple[str, SourceBuild]]] = {}
        self._unreadable: dict[str, list[str]] = {}  # locksets'
        self._unreadable_drifts: dict[str, list[str]] = {}

    def drift_report(
        self, digest: str, project: str, data: Mapping[str, Any] | None, origin: str = LOCAL
    ) -> None:
        """A recorded drift report (``data``: its parsed document; None when not an object;
        ``origin``: who made it, see ``drift.standing``)."""
        # The hash check is the chain checker's job: here a document only has to be readable.
        try:
            if data is None:
                raise ValueError("not a JSON object")
            report = DriftReport.from_dict(data)
        except (ValueError, KeyError, TypeError, AttributeError):
            self._unreadable_drifts.setdefault(project, []).append(digest)
            return
        if self.project and report.project != self.project:
            return
        if self.period.contains(_moment(report.checked_at)):
            self._drifts.setdefault(report.project, []).append(DriftEntry(digest, report, data))
            key = (report.project, report.lockset)
            self._standing.setdefault(key, Standing()).add(report, origin)

    def lockset(
        self, digest: str, project: str, data: Mapping[str, Any] | None
    ) -> LocksetEntry | None:
        """A recorded lockset: its entry when the report shows it (None: outside the filter,
        or unreadable)."""
        try:
            if data is None:
                raise ValueError("not a JSON object")
            lockset = Lockset.from_dict(data, verify=False)
        except (ValueError, KeyError, TypeError, AttributeError, FormatError):
            self._unreadable.setdefault(project, []).append(digest)
            return None
        if self.project and lockset.project != self.project:
            return None
        if not self.period.contains(_moment(lockset.provenance.created_at)):
            return None
        entry = LocksetEntry(
            digest,
            lockset,
            tuple(ImageEntry.from_mapping(i) for i in lockset.images),
            self._status(lockset.project, digest),
            data,
        )
        self._lines.setdefault(lockset.project, []).append(entry.line())
        self._builds.setdefault(lockset.project, []).extend(
            (digest, build) for build in reversed(entry.source_builds)
        )
        return entry

    def _status(self, project: str, lockset: str) -> str | None:
        standing = self._standing.get((project, lockset))
        return standing.status if standing else None

    def _project_standing(self, project: str) -> tuple[str, tuple[Finding, ...]] | None:
        drifts = self._drifts.get(project)
        if not drifts:
            return None
        standing = self._standing[project, drifts[-1].report.lockset]
        return standing.status or "clean", standing.open_findings

    def build(self, chain: ChainReport, *, generated_at: str, lockd_version: str) -> AuditReport:
        """The report, once every record was given."""
        names = set(self._lines) | set(self._drifts)
        if self.project:
            names.add(self.project)
        projects = [
            ProjectAudit(
                name=name,
                locksets=tuple(reversed(self._lines.get(name, []))),
                drift_reports=tuple(reversed(self._drifts.get(name, []))),
                chain=chain.project(name),
                unreadable=(
                    *self._unreadable.get(name, ()),
                    *self._unreadable_drifts.get(name, ()),
                ),
                source_builds=tuple(reversed(self._builds.get(name, []))),
                standing=self._project_standing(name),
            )
            for name in sorted(names)
        ]
        return AuditReport(
            generated_at=generated_at,
            lockd_version=lockd_version,
            project=self.project,
            period=self.period,
            projects=tuple(projects),
            chain=chain,
        )


def count(n: int, noun: str) -> str:
    """``1 lockset``, ``2 locksets`` (a template filter)."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _verdict(chain: ChainReport, project: ProjectChain) -> str:
    if not project.ok:
        return "BROKEN"
    if not chain.verified(project):
        return "FAILED (its chains are intact; see the problems below)"
    return "verified"


def chain_lines(chain: ChainReport) -> list[str]:
    """What ``lockd audit verify`` prints: one line per project, then the verdict."""
    data = chain.to_dict()
    lines = [
        f"{p.project}: {count(p.locksets, 'lockset')}, {count(p.drift_reports, 'drift report')}, "
        f"head lockset {(p.head_lockset or '-')[:12]}, head drift report "
        f"{(p.head_drift_report or '-')[:12]}: {_verdict(chain, p)}"
        for p in chain.projects
    ]
    if chain.empty:
        lines.append(
            "the database holds no records (an empty, truncated or emptied database looks "
            "like this)"
        )
    if chain.evidence:
        lines.append("compared with " + " and ".join(chain.evidence))
    first = chain.first
    if first is None:
        lines.append(
            f"verified {count(len(chain.projects), 'project')}: "
            f"{count(data['locksets'], 'lockset')} and "
            f"{count(data['drift_reports'], 'drift report')}; every hash matches its document, "
            "every parent link resolves and every row matches its document"
            + ("; the project directory's locks agree with the record." if chain.evidence else ".")
        )
        return lines
    lines.append(f"first altered or removed record: {first.describe()}")
    lines += [f"  also: {p.describe()}" for p in chain.problems[1:]]
    return lines


__all__ = [
    "AUDIT_FORMAT",
    "AuditBuilder",
    "AuditReport",
    "DriftEntry",
    "ImageEntry",
    "ImagePlatform",
    "LocksetEntry",
    "LocksetLine",
    "Period",
    "ProjectAudit",
    "SourceBuild",
    "chain_lines",
    "count",
]
