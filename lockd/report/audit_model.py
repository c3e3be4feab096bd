"""The audit report as data (pure): what the Markdown, HTML and JSON renderers show.

:func:`build_audit` takes recorded locksets and drift reports (with the hashes
the database filed them under) and the outcome of the hash-chain check, and
returns frozen values: per project its locksets and drift history, newest
first, and a summary. Nothing here reads the database or formats text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..drift import DriftReport, Finding
from ..errors import FormatError, UsageError, excerpt
from ..lockset import Lockset
from ..store.verify import ChainReport, ProjectChain, Records

AUDIT_FORMAT = "lockd.audit/1"


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open time window ``[since, until)``; either end may be open."""

    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, since: str | None, until: str | None) -> Period:
        """ISO dates or times; a date as ``until`` includes that whole day."""
        start = _parse_bound(since, "--since", end=False)
        stop = _parse_bound(until, "--until", end=True)
        if start and stop and start >= stop:
            raise UsageError(
                f"--since {since} is not before --until {until}.",
                hint="Give the earlier moment as --since.",
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


def _parse_bound(text: str | None, flag: str, *, end: bool) -> datetime | None:
    if not text:
        return None
    try:
        if len(text) == 10:  # a bare date: the window covers whole days
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1 if end else 0), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{flag} {excerpt(text)} is not an ISO date or time.",
            hint="Use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ.",
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
    drift_status: str | None  # of the last drift check of this lockset in the period
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
    locksets: tuple[LocksetEntry, ...]
    drift_reports: tuple[DriftEntry, ...]
    chain: ProjectChain | None
    unreadable: tuple[str, ...] = ()  # hashes of records whose document cannot be read

    @property
    def latest(self) -> LocksetEntry | None:
        return self.locksets[0] if self.locksets else None

    @property
    def last_drift(self) -> DriftEntry | None:
        return self.drift_reports[0] if self.drift_reports else None

    @property
    def drift_status(self) -> str:
        last = self.last_drift
        return last.report.status if last else "not checked"

    @property
    def open_findings(self) -> tuple[Finding, ...]:
        """The findings of the project's latest drift report (``info`` ones are not open)."""
        last = self.last_drift
        return tuple(f for f in last.report.findings if f.severity != "info") if last else ()

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
            "latest_created_at": latest.lockset.provenance.created_at if latest else None,
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

    def to_dict(self) -> dict[str, Any]:
        """The ``lockd.audit/1`` JSON document.

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
                    "locksets": [entry.to_dict() for entry in p.locksets],
                    # what installing the locks runs: packages locked as sdists only
                    "source_builds": [
                        {"lockset": entry.hash, **build.to_dict()}
                        for entry in p.locksets
                        for build in entry.source_builds
                    ],
                    "drift_reports": [entry.to_dict() for entry in p.drift_reports],
                }
                for p in self.projects
            ],
        }


# -- building ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recorded:
    """The documents of a database, read into domain values."""

    locksets: tuple[tuple[str, Lockset], ...]  # (filed hash, lockset), oldest first
    drift_reports: tuple[tuple[str, DriftReport], ...]
    unreadable: Mapping[str, tuple[str, ...]]  # project -> hashes of unreadable documents
    documents: Mapping[str, Mapping[str, Any]]  # filed hash -> the parsed document


def read_records(records: Records) -> Recorded:
    """Parse each record's document; one that cannot be read is listed, not fatal."""
    locksets: list[tuple[str, Lockset]] = []
    drifts: list[tuple[str, DriftReport]] = []
    unreadable: dict[str, list[str]] = {}
    documents: dict[str, Mapping[str, Any]] = {}
    # The hash check is the chain checker's job: here a document only has to be readable.
    for record in records.locksets:
        try:
            data = record.data if record.data is not None else json.loads(record.document)
            locksets.append((record.hash, Lockset.from_dict(data, verify=False)))
            documents[record.hash] = data
        except (ValueError, KeyError, TypeError, AttributeError, FormatError):
            unreadable.setdefault(record.project, []).append(record.hash)
    for drift in records.drift_reports:
        try:
            data = drift.data if drift.data is not None else json.loads(drift.document)
            drifts.append((drift.hash, DriftReport.from_dict(data)))
            documents[drift.hash] = data
        except (ValueError, KeyError, TypeError, AttributeError):
            unreadable.setdefault(drift.project, []).append(drift.hash)
    return Recorded(
        tuple(locksets), tuple(drifts), {k: tuple(v) for k, v in unreadable.items()}, documents
    )


def build_audit(
    locksets: Iterable[tuple[str, Lockset]],
    drift_reports: Iterable[tuple[str, DriftReport]],
    chain: ChainReport,
    *,
    generated_at: str,
    lockd_version: str,
    project: str | None = None,
    period: Period = Period(),
    unreadable: Mapping[str, Sequence[str]] | None = None,
    documents: Mapping[str, Mapping[str, Any]] | None = None,
) -> AuditReport:
    """Group recorded locksets and drift reports (oldest first) per project, within ``period``.

    ``documents`` (filed hash -> recorded document) lets the JSON output repeat
    the records verbatim instead of serializing the domain values again.
    """
    documents = documents or {}
    by_project: dict[str, list[tuple[str, Lockset]]] = {}
    for digest, lockset in locksets:
        if project and lockset.project != project:
            continue
        if period.contains(_moment(lockset.provenance.created_at)):
            by_project.setdefault(lockset.project, []).append((digest, lockset))
    drift_by_project: dict[str, list[tuple[str, DriftReport]]] = {}
    for digest, report in drift_reports:
        if project and report.project != project:
            continue
        if period.contains(_moment(report.checked_at)):
            drift_by_project.setdefault(report.project, []).append((digest, report))
    names = set(by_project) | set(drift_by_project)
    if project:
        names.add(project)
    projects = []
    for name in sorted(names):
        reports = drift_by_project.get(name, [])
        last_status: dict[str, str] = {}
        for _, report in reports:  # oldest first: the last one wins
            last_status[report.lockset] = report.status
        projects.append(
            ProjectAudit(
                name=name,
                locksets=tuple(
                    LocksetEntry(
                        digest,
                        lockset,
                        tuple(ImageEntry.from_mapping(i) for i in lockset.images),
                        last_status.get(digest),
                        documents.get(digest),
                    )
                    for digest, lockset in reversed(by_project.get(name, []))
                ),
                drift_reports=tuple(
                    DriftEntry(d, r, documents.get(d)) for d, r in reversed(reports)
                ),
                chain=chain.project(name),
                unreadable=tuple((unreadable or {}).get(name, ())),
            )
        )
    return AuditReport(
        generated_at=generated_at,
        lockd_version=lockd_version,
        project=project,
        period=period,
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
    "AuditReport",
    "DriftEntry",
    "ImageEntry",
    "ImagePlatform",
    "LocksetEntry",
    "Period",
    "ProjectAudit",
    "Recorded",
    "SourceBuild",
    "build_audit",
    "chain_lines",
    "count",
    "read_records",
]
