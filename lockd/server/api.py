"""``/api/v1``: JSON over the record, and fleet snapshot ingestion.

Each route parses its parameters, calls a use case (``lockd.app``) or a
store reader, and returns what it got; nothing here decides anything. No
route takes a file path: lock files, SBOMs and audit reports come from the
database.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..app import audit, record
from ..app.fleet import Ingestion
from ..errors import NotFoundError, UsageError, excerpt
from ..lockset import Lockset, diff_locksets
from ..report.audit_model import Period
from ..store import DeploymentQuery, ReportQuery
from ..times import parse_time
from .auth import Caller, require
from .state import fleet_of as _fleet
from .state import store_of as _store

router = APIRouter(prefix="/api/v1")
# The fleet's snapshot posts, on a router of their own that the application puts before
# every other route: routes are matched in order, and this one takes nearly every request.
ingestion = APIRouter(prefix="/api/v1")

Reader = Annotated[Caller, Depends(require("read"))]
Ingester = Annotated[Caller, Depends(require("ingest"))]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]


def _lockset(request: Request, ref: str, project: str | None = None) -> Lockset:
    return _store(request).get(ref, project)


def since_time(text: str | None) -> datetime | None:
    """``since`` as an ISO date or time (``2026-11-01``, ``…T03:00:00Z``) or a duration ago
    (``24h``), parsed as the CLI's ``--since``; errors name the query parameter."""
    return parse_time(text, "since") if text else None


# -- projects and locksets ----------------------------------------------------------------


@router.get("/projects", summary="Projects with their newest lockset and last 14 nights")
def projects(request: Request, _: Reader) -> list[dict[str, Any]]:
    return [p.to_dict() for p in _fleet(request).projects()[1]]


@router.get("/locksets", summary="Recorded locksets, newest first")
def locksets(
    request: Request,
    _: Reader,
    project: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    return [s.to_dict() for s in _store(request).history(project, limit, offset)]


@router.get("/locksets/{ref}", summary="One lockset (hash or unique prefix)")
def lockset(request: Request, ref: str, _: Reader) -> dict[str, Any]:
    return _lockset(request, ref).to_dict()


@router.get("/locksets/{ref}/diff", summary="Changes from another lockset (default: the parent)")
def lockset_diff(
    request: Request, ref: str, _: Reader, against: str | None = None
) -> dict[str, Any] | None:
    newer = _lockset(request, ref)
    if against is None:
        return record.diff_to_parent(_store(request), newer)
    return diff_locksets(_lockset(request, against), newer)


@router.get(
    "/locksets/{ref}/files/{name}",
    summary="Download one lock file (as compile wrote it) or lockd.json",
    response_class=Response,
)
def lock_file(request: Request, ref: str, name: str, _: Reader) -> Response:
    found = record.lock_file(_store(request), _lockset(request, ref), name)
    return Response(
        found.content,
        media_type=found.media_type,
        headers={"Content-Disposition": f'attachment; filename="{found.name}"'},
    )


@router.get(
    "/locksets/{ref}/sbom",
    summary="CycloneDX 1.6 SBOM of a lockset (all targets, or one)",
    response_class=Response,
)
def lockset_sbom(request: Request, ref: str, _: Reader, target: str | None = None) -> Response:
    found = _lockset(request, ref)
    text = audit.sbom(audit.SbomRequest("", None, found.hash, target), _store(request))
    return Response(
        text,
        media_type="application/vnd.cyclonedx+json",
        headers={"Content-Disposition": f'attachment; filename="sbom-{found.hash[:12]}.json"'},
    )


# -- drift reports, images, audit -----------------------------------------------------------


@router.get("/drift-reports", summary="Drift reports, newest first")
def drift_reports(
    request: Request,
    _: Reader,
    project: str | None = None,
    target: str | None = None,
    status: Annotated[str | None, Query(pattern="^(clean|drift|error)$")] = None,
    since: Annotated[str | None, Query(description="ISO time, or a duration ago: 24h")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    query = ReportQuery(project, target, status, since_time(since), limit, offset)
    return [s.to_dict() for s in _store(request).drift_report_summaries(query)]


@router.get("/drift-reports/{ref}", summary="One drift report with the snapshots it compared")
def drift_report(request: Request, ref: str, _: Reader) -> dict[str, Any]:
    document, snapshots = _store(request).drift_report(ref)
    if not document:
        raise NotFoundError(f"No drift report {excerpt(ref)}.", hint="Give the full hash.")
    return {**document, "snapshots": snapshots}


@router.get("/images", summary="Base images recorded with locksets")
def images(
    request: Request, _: Reader, project: str | None = None, limit: Limit = 200
) -> list[dict[str, Any]]:
    return _store(request).images(project, limit)


AUDIT_MEDIA = {
    "markdown": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "cyclonedx": "application/vnd.cyclonedx+json",
}


@router.get(
    "/audit", summary="Audit report in any format lockd audit writes", response_class=Response
)
def audit_report(
    request: Request,
    _: Reader,
    project: str | None = None,
    since: str | None = None,
    until: str | None = None,
    format: Annotated[  # noqa: A002 - the CLI's flag name
        str, Query(pattern="^(markdown|html|json|cyclonedx)$")
    ] = "markdown",
    lockset: str | None = None,
    target: str | None = None,
) -> Response:
    store = _store(request)
    extension = {"markdown": "md", "html": "html", "json": "json", "cyclonedx": "cdx.json"}
    headers = {"Content-Disposition": f'attachment; filename="lockd-audit.{extension[format]}"'}
    if format == "cyclonedx":
        text = audit.sbom(audit.SbomRequest("", project, lockset, target), store)
        return Response(text, media_type=AUDIT_MEDIA[format], headers=headers)
    if lockset or target:
        raise UsageError("lockset and target choose what a CycloneDX SBOM describes.")
    # The report is written in parts (a large one spills to a temporary file) and sent as
    # it is read back: the server never holds a whole report of 10,000 locksets.
    window = Period.parse(since, until, names=("since", "until"))
    asked = audit.AuditRequest("", project, window.since, window.until)
    spooled = tempfile.SpooledTemporaryFile(max_size=_SPOOLED_BYTES)  # noqa: SIM115 - _chunks closes it
    try:
        audit.write_report(asked, format, spooled, store)
        spooled.seek(0)
    except BaseException:
        spooled.close()
        raise
    return StreamingResponse(_chunks(spooled), media_type=AUDIT_MEDIA[format], headers=headers)


_SPOOLED_BYTES = 8 << 20


def _chunks(spooled: IO[bytes]) -> Iterator[bytes]:
    with spooled:
        while block := spooled.read(1 << 16):
            yield block


# -- the fleet -------------------------------------------------------------------------------


@router.get("/deployments", summary="Deployments: lockset, last seen, status, finding kinds")
def deployments(
    request: Request,
    _: Reader,
    project: str | None = None,
    target: str | None = None,
    status: Annotated[str | None, Query(pattern="^(clean|drift|error|stale)$")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    fleet = _fleet(request)
    listed = fleet.deployments(DeploymentQuery(project, target, status, limit, offset))
    return {
        "stale_after_seconds": int(fleet.stale_after.total_seconds()),
        "deployments": [d.to_dict() for d in listed],
    }


@ingestion.post(
    "/snapshots",
    summary="Check a deployment's snapshot against its lock; answer the drift report",
    response_model=dict[str, Any],
)
async def snapshots(
    request: Request,
    _: Ingester,
    project: str,
    target: str,
    deployment: str,
    lockset: str | None = None,
) -> Response:
    body = await request.body()  # the body limit is enforced while it streams in
    fleet = _fleet(request)
    report = await run_in_threadpool(
        fleet.ingest, Ingestion(project, target, deployment, lockset), body
    )
    request.app.state.metrics.ingested(report)
    # Encoded here (what JSONResponse writes, faster): the report is lockd's own
    # document, so FastAPI's validation of the answer would only cost time.
    return Response(orjson.dumps(report.to_dict()), media_type="application/json")
