"""Audit use cases: reports over the record, SBOMs of a lockset, chain verification.

The database is read once per call (one query per table); the documents are
parsed into domain values, the hash chains are checked, and the pure report
model is built. Rendering is the report package's job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import NotFoundError, UsageError
from ..heap import collector_paused
from ..store import Store

if TYPE_CHECKING:
    from ..report.audit_model import AuditReport
    from ..store.verify import ChainReport

REPORT_FORMATS = ("markdown", "html", "json")


@dataclass(frozen=True, slots=True)
class AuditRequest:
    """What an audit report covers."""

    database_url: str
    project: str | None = None  # None: every project
    since: str | None = None  # ISO date or time
    until: str | None = None


@dataclass(frozen=True, slots=True)
class SbomRequest:
    """Which lockset (and target) an SBOM describes."""

    database_url: str
    project: str | None = None
    lockset: str | None = None  # hash or unique prefix; default: the project's latest
    target: str | None = None  # default: every target in one BOM


def audit_report(request: AuditRequest, store: Store | None = None) -> AuditReport:
    """The audit report model over the database (``store`` when open, else the request's
    URL), with the chain verification result."""
    from ..report.audit_model import Period, build_audit, read_records
    from ..store.verify import check_chains

    period = Period.parse(request.since, request.until)  # bad dates fail before any I/O
    with _opened(request.database_url, store) as opened:
        _require_project(opened, request.project)
        with collector_paused():
            records = opened.chain_records(request.project)
    with collector_paused():
        recorded = read_records(records)
        return build_audit(
            recorded.locksets,
            recorded.drift_reports,
            check_chains(records),
            generated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            lockd_version=__version__,
            project=request.project,
            period=period,
            unreadable=recorded.unreadable,
            documents=recorded.documents,
        )


def render_report(report: AuditReport, output_format: str) -> str:
    """The report as ``markdown``, ``html`` or ``json`` (``lockd.audit/1``) text."""
    with collector_paused():
        return _render(report, output_format)


def _render(report: AuditReport, output_format: str) -> str:
    if output_format == "markdown":
        from ..report.markdown import render_markdown

        return render_markdown(report)
    if output_format == "html":
        from ..report.html import render_html

        return render_html(report)
    if output_format == "json":
        # Compact: indenting switches json to its pure-Python encoder, 5x slower on
        # a large record (pipe through `jq` to read it).
        return json.dumps(report.to_dict(), sort_keys=True, ensure_ascii=False) + "\n"
    raise UsageError(
        f"Unknown audit format {output_format!r}.",
        hint="Use markdown, html, json or cyclonedx.",
    )


def sbom(request: SbomRequest, store: Store | None = None) -> str:
    """A CycloneDX 1.6 JSON SBOM of one lockset (all targets, or one)."""
    from ..report import cyclonedx

    with _opened(request.database_url, store) as opened:
        _require_project(opened, request.project)
        if request.lockset:
            lockset = opened.get(request.lockset, request.project)
        else:
            project = request.project or _only_project(opened)
            latest = opened.latest(project)
            if latest is None:
                raise NotFoundError(
                    f"Project {project!r} has no lockset yet.",
                    hint="Run `lockd compile` first.",
                )
            lockset = latest
    # Store.get/latest rebuild the lockset from its document and reject one whose
    # content no longer matches its hash, so lockset.hash is the filed hash.
    return cyclonedx.render_cyclonedx(
        cyclonedx.BomRequest(lockset, lockset.hash, request.target, __version__)
    )


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    """What ``lockd audit verify`` checks."""

    database_url: str
    project: str | None = None  # None: every project
    workdir: Path | None = None  # a project directory whose locks/ are evidence (None: none)


def verify_chains(request: VerifyRequest) -> ChainReport:
    """Recompute every hash chain (per project), cross-check the rows, and compare the records
    with what the project directory keeps (``locks/lockd.json``, its git history, lock files).

    A database without lockd's tables (an empty or truncated file) is read as holding no
    records and is not migrated: verification never writes into what it examines.
    """
    from ..store.verify import Records, check_chains, check_evidence
    from .evidence import read_evidence, with_lock_files

    evidence = read_evidence(request.workdir) if request.workdir is not None else None
    anchored = {a.project for a in evidence.anchors} if evidence else set()
    store = Store(request.database_url, migrate=False)
    try:
        if store.has_schema():
            store.upgrade()
            if request.project not in anchored:  # a project the directory vouches for may be gone
                _require_project(store, request.project)
            with collector_paused():
                records = store.chain_records(request.project)
        else:
            records = Records((), ())
    finally:
        store.close()
    report = check_chains(records)
    if evidence is None:
        return report
    evidence = with_lock_files(evidence, records, request.workdir or Path.cwd())
    if request.project is not None:
        evidence = replace(
            evidence, anchors=tuple(a for a in evidence.anchors if a.project == request.project)
        )
    return replace(report, outside=check_evidence(records, evidence), evidence=evidence.sources)


@contextmanager
def _opened(database_url: str, store: Store | None) -> Iterator[Store]:
    """The caller's open store (the server's), or one opened and closed here (the CLI's)."""
    if store is not None:
        yield store
        return
    opened = Store(database_url)
    try:
        yield opened
    finally:
        opened.close()


def _require_project(store: Store, project: str | None) -> None:
    if project is not None and project not in store.projects():
        raise NotFoundError(
            f"No project {project!r} in the database.",
            hint="`lockd history` lists the recorded locksets and their projects.",
        )


def _only_project(store: Store) -> str:
    projects = store.projects()
    if len(projects) == 1:
        return projects[0]
    if not projects:
        raise NotFoundError("The database holds no lockset yet.", hint="Run `lockd compile` first.")
    raise UsageError(
        f"The database holds {len(projects)} projects ({', '.join(projects)}).",
        hint="Choose one with --project, or a lockset with --lockset.",
    )


__all__ = [
    "REPORT_FORMATS",
    "AuditRequest",
    "SbomRequest",
    "VerifyRequest",
    "audit_report",
    "render_report",
    "sbom",
    "verify_chains",
]
