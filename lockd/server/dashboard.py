"""The dashboard: server-rendered HTML pages over the record, usable without JavaScript.

Every page reads through the store's summary queries (see
:mod:`lockd.store.fleet`) and renders a Jinja template with autoescape on:
names come from snapshots, lock files and requests, and are hostile text.
Downloads link to ``/api/v1`` (a browser sends the token as the Basic password).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from .. import __version__
from ..app import record
from ..errors import NotFoundError, UsageError, excerpt
from ..lockfiles.manifest import MANIFEST
from ..store import DeploymentQuery, ReportQuery
from .auth import require
from .state import fleet_of as _fleet
from .state import store_of as _store

if TYPE_CHECKING:
    import jinja2

router = APIRouter(include_in_schema=False, dependencies=[Depends(require("read"))])
PAGE = 50
STATUS_MARK = {"clean": "✓", "drift": "✗", "error": "!", "stale": "○"}


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lockd.server", "templates"),
        autoescape=True,  # every name shown came from outside
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["q"] = lambda value: quote(str(value), safe="")
    env.filters["short"] = lambda value: str(value or "")[:12]
    env.globals["mark"] = STATUS_MARK
    env.globals["version"] = __version__
    return env


def render(template: str, code: int = 200, **context: Any) -> HTMLResponse:
    html = _environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=code)


def error_page(
    request: Request, status: int, message: str, headers: dict[str, str]
) -> HTMLResponse:
    response = render("error.html.j2", status, status_code=status, message=message)
    response.headers.update(headers)
    return response


def _page(page: int) -> int:
    return max(1, min(page, 10_000))


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    overview = _fleet(request).overview()
    return render(
        "home.html.j2",
        overview=overview,
        stale_hours=round(_fleet(request).stale_after.total_seconds() / 3600, 1),
    )


@router.get("/deployments", response_class=HTMLResponse)
def deployments(
    request: Request,
    status: str | None = None,
    project: str | None = None,
    page: int = 1,
) -> HTMLResponse:
    page = _page(page)
    if status not in (None, "", "clean", "drift", "error", "stale"):
        raise UsageError("Unknown status.", hint="Use clean, drift, error or stale.")
    query = DeploymentQuery(project or None, None, status or None, PAGE + 1, (page - 1) * PAGE)
    found = _fleet(request).deployments(query)
    keep = {k: v for k, v in (("status", status), ("project", project)) if v}
    return render(
        "deployments.html.j2",
        deployments=found[:PAGE],
        status=status,
        project=project,
        page=page,
        newer=urlencode({**keep, "page": page - 1}) if page > 1 else None,
        older=urlencode({**keep, "page": page + 1}) if len(found) > PAGE else None,
    )


@router.get("/projects/{name:path}", response_class=HTMLResponse)
def project(request: Request, name: str, page: int = 1) -> HTMLResponse:
    page = _page(page)
    store = _store(request)
    days, overviews = _fleet(request).projects()
    found = next((p for p in overviews if p.name == name), None)
    if found is None:
        raise NotFoundError(f"No project {excerpt(name)}.")
    locksets = store.history(name, PAGE + 1, (page - 1) * PAGE)
    reports = store.drift_report_summaries(ReportQuery(project=name, limit=20))
    return render(
        "project.html.j2",
        project=found,
        days=days,
        locksets=locksets[:PAGE],
        reports=reports,
        page=page,
        older=page + 1 if len(locksets) > PAGE else None,
        deployments=_fleet(request).deployments(DeploymentQuery(project=name, limit=PAGE)),
    )


@router.get("/locksets/{ref}", response_class=HTMLResponse)
def lockset(request: Request, ref: str) -> HTMLResponse:
    store = _store(request)
    found = store.get(ref)
    files = sorted({n for lock in found.locks for n in lock.files})
    return render(
        "lockset.html.j2",
        lockset=found,
        diff=record.diff_to_parent(store, found),
        files=[MANIFEST, *files],
        reports=store.drift_report_summaries(ReportQuery(lockset=found.hash, limit=PAGE)),
    )


@router.get("/reports/{ref}", response_class=HTMLResponse)
def report(request: Request, ref: str) -> HTMLResponse:
    document, snapshots = _store(request).drift_report(ref)
    if not document:
        raise NotFoundError(f"No drift report {excerpt(ref)}.")
    return render("report.html.j2", report=document, snapshots=snapshots)
