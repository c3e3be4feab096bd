"""Audit use cases: reports over the record, SBOMs of a lockset, chain verification.

The database is read once per call, a batch of records at a time: each record
is checked against its chain (:class:`lockd.store.verify.ChainCheck`) and given
to the pure report model (:class:`lockd.report.audit_model.AuditBuilder`),
whose lockset sections are rendered as they come (the report package's job).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .. import __version__
from ..errors import NotFoundError, UsageError
from ..heap import collector_paused
from ..store import Store

if TYPE_CHECKING:
    from ..report.audit_parts import ReportParts
    from ..store.verify import ChainReport

REPORT_FORMATS = ("markdown", "html", "json")
# Locksets from which a second process renders (starting one costs about half a second).
WORKER_FROM = 1000


@dataclass(frozen=True, slots=True)
class AuditRequest:
    """What an audit report covers."""

    database_url: str
    project: str | None = None  # None: every project
    since: datetime | None = None  # None: from the first record
    until: datetime | None = None  # None: up to now
    processes: int = 1  # 2: lockset sections rendered by a second process while this one reads


@dataclass(frozen=True, slots=True)
class SbomRequest:
    """Which lockset (and target) an SBOM describes."""

    database_url: str
    project: str | None = None
    lockset: str | None = None  # hash or unique prefix; default: the project's latest
    target: str | None = None  # default: every target in one BOM


def write_report(
    request: AuditRequest, output_format: str, out: IO[bytes], store: Store | None = None
) -> ChainReport:
    """Write the audit report (``markdown``, ``html`` or ``json``: ``lockd.audit/1``) to
    ``out`` over the database (``store`` when open, else the request's URL); return the
    chain verification result.

    The records are read a batch at a time: the drift reports, then the locksets,
    each checked against its chain and rendered into a spool file in
    ``$LOCKD_HOME/tmp`` as it is read (with ``processes=2``, by a second process:
    :mod:`lockd.app.audit_render`); the report opens with the verdict over every
    record, so it is written once all are read, each project's locksets newest first.
    Memory holds a line per lockset and the drift reports, never every document.
    """
    from ..scratch import scratch_dir
    from ..store.verify import ChainCheck, orphan_problems
    from .audit_render import Renderer, WorkerRenderer

    report_parts(output_format)  # an unknown format fails before any I/O
    window, check = (request.since, request.until), ChainCheck()
    with (
        _opened(request.database_url, store) as opened,
        scratch_dir("audit") as scratch,
        tempfile.TemporaryFile(dir=scratch) as spooled,
    ):
        _require_project(opened, request.project)
        with opened.reading_records(request.project) as reader, collector_paused():
            renderer: Renderer | WorkerRenderer = (
                WorkerRenderer(request.project, window, output_format, scratch)
                if request.processes > 1 and reader.lockset_count() >= WORKER_FROM
                else Renderer(request.project, window, output_format, spooled)
            )
            try:
                for drift in reader.drift_reports():
                    check.drift_report(drift)
                    renderer.drift_report(drift)
                for record in reader.locksets():
                    check.lockset(record)
                    renderer.lockset(record)
                left = reader.orphans()
                check.altered_snapshots(left.altered_snapshots)
                chain = check.report(orphan_problems(left))
                renderer.finish(chain, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), out)
            finally:
                renderer.close()
    return chain


def report_parts(output_format: str) -> ReportParts:
    """The parts of the report in ``output_format`` (``UsageError`` for another)."""
    if output_format == "markdown":
        from ..report.markdown import markdown_report

        return markdown_report()
    if output_format == "html":
        from ..report.html import html_report

        return html_report()
    if output_format == "json":
        from ..report.audit_parts import JsonReport

        return JsonReport()
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


def _require_current_schema(store: Store) -> None:
    """``StoreError`` unless the schema is this lockd's: verification reads what it finds and
    never migrates it (a migration rewrites what is being examined)."""
    from ..errors import StoreError
    from ..store.migrate import SCHEMA_HEAD, current_revision

    found = current_revision(store.engine)
    if found == SCHEMA_HEAD:
        return
    raise StoreError(
        f"The database {store.where} is at schema revision {found or 'none'}; this lockd reads "
        f"{SCHEMA_HEAD}, and verification never migrates the database it examines.",
        hint="Verify with the lockd that wrote it, or run `lockd db upgrade --db URL` on a "
        "copy and verify the copy.",
    )


def verify_chains(request: VerifyRequest) -> ChainReport:
    """Recompute every hash chain (per project), cross-check the rows, and compare the records
    with what the project directory keeps (``locks/lockd.json``, its git history, lock files).

    The records are read a batch at a time and dropped once checked. A database without
    lockd's tables (an empty or truncated file) is read as holding no records and is not
    migrated: verification never writes into what it examines.
    """
    from ..store.verify import ChainCheck, Held, check_evidence, orphan_problems
    from .evidence import read_evidence, with_lock_files

    evidence = read_evidence(request.workdir) if request.workdir is not None else None
    anchored = {a.project for a in evidence.anchors} if evidence else set()
    check, head = ChainCheck(), None
    from ..store.engine import missing_sqlite_file
    from .record import require_database

    gone = missing_sqlite_file(request.database_url) is not None
    if gone and not anchored:  # no project vouches for records: a mistyped --db
        require_database(request.database_url)
    # A deleted database the project's records vouch for: verified as holding nothing, and
    # not created.
    store = None if gone else Store(request.database_url, migrate=False)
    try:
        if store is not None and store.has_schema():
            _require_current_schema(store)
            if request.project not in anchored:  # a project the directory vouches for may be gone
                _require_project(store, request.project)
            with store.reading_records(request.project) as reader, collector_paused():
                for drift in reader.drift_reports():
                    check.drift_report(drift)
                for record in reader.locksets():
                    check.lockset(record)
                    if evidence is not None and record.hash == evidence.head:
                        head = record
                left = reader.orphans()
                check.altered_snapshots(left.altered_snapshots)
                orphans = orphan_problems(left)
        else:
            orphans = ()
    finally:
        if store is not None:
            store.close()
    report = check.report(orphans)
    if evidence is None:
        return report
    evidence = with_lock_files(evidence, head, request.workdir or Path.cwd())
    if request.project is not None:
        evidence = replace(
            evidence, anchors=tuple(a for a in evidence.anchors if a.project == request.project)
        )
    held = Held(check.holds, report.empty, head)
    return replace(report, outside=check_evidence(held, evidence), evidence=evidence.sources)


@contextmanager
def _opened(database_url: str, store: Store | None) -> Iterator[Store]:
    """The caller's open store (the server's), or one opened and closed here (the CLI's)."""
    if store is not None:
        yield store
        return
    from .record import require_database

    require_database(database_url)  # a mistyped --db is not an empty record, nor created
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
    "sbom",
    "verify_chains",
    "write_report",
]
