"""The nightly run over every project, sharded, and the morning summary of it.

``lockd drift --all`` lists the checks of every project's latest lockset
(one per target, plus the project-wide base-image check; see
:mod:`lockd.shards`), keeps this shard's slice (all of them unsharded), checks
the projects concurrently and records one report per project, each with how
long every check took. A project that fails is recorded as an error report and
never stops the others.

``lockd drift summary --since 24h`` reads back every report of the period,
whichever shard or machine recorded it, and merges them per project: for each
check the newest report that covered it speaks; a check no report covered is
an error ("not checked"). The result renders like any drift run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from ..drift import NO_REPORT, CheckError, CheckTiming, DriftReport, Finding
from ..errors import LockdError, NotFoundError
from ..lockset import Lockset
from ..shards import Check, durations, history_window, select
from ..store import Store, TrackedImage
from ..urls import redact
from .drift.run import DriftRun, Scope, image_progress

T = TypeVar("T")


def run_nightly(run: DriftRun) -> list[DriftReport]:
    """This shard's checks of every project's latest lockset; every report stored.

    A project's lockset checks make one report; each tracked image its own.
    """
    store, options = run.store, run.options
    checks = check_list(_latest_locksets(store), store.tracked_images(), images=options.images)
    if options.shard is not None:
        since, until = history_window(datetime.now(UTC))
        known = durations(recorded_timings(store.drift_reports(since=since, until=until)))
        checks = select(checks, known, options.shard)
    by_project: dict[str, list[Check]] = {}
    for check in checks:
        if check.image is None:
            by_project.setdefault(check.project, []).append(check)
    jobs = [
        partial(_check_project, run, project, by_project[project]) for project in sorted(by_project)
    ]
    jobs += [
        partial(_check_tracked_image, run, check) for check in checks if check.image is not None
    ]
    with ThreadPoolExecutor(max_workers=max(1, options.concurrency)) as pool:
        return list(pool.map(lambda job: job(), jobs))


def _latest_locksets(store: Store) -> dict[str, Lockset | None]:
    projects = store.projects()
    if not projects:
        raise NotFoundError(
            f"The database {store.where} holds no projects yet.",
            hint="Run `lockd compile` first, or point --db / LOCKD_DATABASE_URL at the shared "
            "database.",
        )
    return {project: store.latest(project) for project in projects}


def check_list(
    latest: Mapping[str, Lockset | None],
    tracked: Iterable[TrackedImage] = (),
    *,
    images: bool = True,
) -> list[Check]:
    """The checks of each project's latest lockset (a project without one: its error),
    then every tracked image of a project that has one."""
    checks = []
    for project, lockset in sorted(latest.items()):
        if lockset is None:
            checks.append(Check(project))
            continue
        checks += [Check(project, lock.target) for lock in lockset.locks]
        if images and lockset.images:
            checks.append(Check(project))
    checks += [Check(t.project, t.target, t.reference) for t in tracked if latest.get(t.project)]
    return checks


def recorded_timings(reports: Iterable[DriftReport]) -> list[tuple[Check, float]]:
    """How long each check took in each report that timed it."""
    return [
        (Check(report.project, timing.target, timing.image), timing.seconds)
        for report in reports
        for timing in report.timings
    ]


def _check_project(run: DriftRun, project: str, checks: Sequence[Check]) -> DriftReport:
    def check() -> DriftReport:
        # Read again: a compile may have recorded a newer lockset since the list was made.
        lockset = run.store.latest(project)
        if lockset is None:
            return _no_lockset(project)
        scope = Scope(
            frozenset(c.target for c in checks if c.target is not None),
            project_wide=any(c.target is None for c in checks),
        )
        return run.check_lockset(lockset, scope)

    return _recorded(run, project, checks, check)


def _check_tracked_image(run: DriftRun, check: Check) -> DriftReport:
    """A tracked image against its project's latest lockset, whatever the image's label."""
    from ..images import RegistryOptions, VerifiedLayers
    from .image_drift import ImageCheck, check_image, failed_check

    def checked() -> DriftReport:
        lockset = run.store.latest(check.project)
        if lockset is None:
            return _no_lockset(check.project)
        verified = VerifiedLayers.from_env(run.options.environ)
        image = ImageCheck(str(check.image), check.target, verified)
        registry = RegistryOptions.from_env(run.options.environ)
        try:
            progress = image_progress(image, run.progress)
            return check_image(run.store, image, lambda _label: lockset, registry, progress)
        except LockdError as err:
            return failed_check(lockset, image, err)

    return _recorded(run, check.project, (check,), checked)


def _no_lockset(project: str) -> DriftReport:
    return DriftReport(project, "", _now(), (), (CheckError(None, "lockset", "no lockset"),))


def _recorded(
    run: DriftRun, project: str, checks: Sequence[Check], check: Callable[[], DriftReport]
) -> DriftReport:
    """Run and record one job of the night; a failure becomes an error report, never stops
    the others. Every report is timed and names its shard, so that the summary knows which
    checks it covers."""
    store, shard = run.store, run.options.shard
    now, started = _now(), time.monotonic()

    def stamped(report: DriftReport) -> DriftReport:
        seconds = round(time.monotonic() - started, 3)
        timings = report.timings or tuple(CheckTiming(c.target, c.image, seconds) for c in checks)
        return replace(report, timings=timings, shard=str(shard) if shard else None)

    try:
        return store.record_drift(stamped(check()))
    except Exception as err:  # one project never stops the nightly run
        message = err.render() if isinstance(err, LockdError) else f"{type(err).__name__}: {err}"
        report = stamped(
            DriftReport(project, "", now, (), (CheckError(None, "drift", redact(message)),))
        )
        try:
            return store.record_drift(report)
        except LockdError:
            return report


# -- the morning summary ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProjectSummary:
    """One project's checks of the period, merged from every report that covered them."""

    report: DriftReport  # merged: not a record of its own
    sources: tuple[str, ...]  # the hashes of the recorded reports it was merged from
    missing: tuple[Check, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        body = self.report.body()
        for key in ("format", "parent", "timings", "shard"):
            body.pop(key)
        return {
            **body,
            "reports": list(self.sources),
            "missing": [c.to_dict() for c in self.missing],
        }


@dataclass(frozen=True, slots=True)
class Summary:
    since: str
    projects: tuple[ProjectSummary, ...]

    @property
    def reports(self) -> list[DriftReport]:
        return [p.report for p in self.projects]


def summarize(store: Store, since: datetime) -> Summary:
    """Every check of every project's latest lockset, as the period's reports found it."""
    latest = _latest_locksets(store)
    heads = {project: lockset.hash for project, lockset in latest.items() if lockset}
    expected = check_list(latest, store.tracked_images())
    reports = store.drift_reports_with_origins(since)  # newest first
    wanted: dict[str, list[Check]] = {}
    for check in expected:
        wanted.setdefault(check.project, []).append(check)
    for report, _ in reports:
        wanted.setdefault(report.project, [])
    stamp = _iso(since)
    return Summary(
        stamp,
        tuple(
            _merge(
                project,
                checks,
                [(r, origin) for r, origin in reports if r.project == project],
                stamp,
                heads.get(project),
            )
            for project, checks in sorted(wanted.items())
        ),
    )


@dataclass
class _Merged:
    findings: list[Finding] = field(default_factory=list)
    errors: list[CheckError] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    sources: dict[str, DriftReport] = field(default_factory=dict)


def _merge(
    project: str,
    expected: Sequence[Check],
    reports: Sequence[tuple[DriftReport, str]],
    since: str,
    latest: str | None,
) -> ProjectSummary:
    """One project's result; ``reports``: newest first, with their origins; ``latest``: its
    latest lockset, named when no report speaks."""
    merged = _Merged()
    missing = []
    for check in expected:
        sources = _newest_of_each_origin(
            [(r, o) for r, o in reports if (check.target, check.image) in _covered(r)]
        )
        if not sources:
            missing.append(check)
            what, was = (
                (f"target {check.target}", "was") if check.target else ("the base images", "were")
            )
            if check.image is not None:
                what = f"image {check.image} (against target {check.target})"
            message = f"{what} {was} not checked since {since}: no drift report covers it"
            merged.errors.append(CheckError(check.target, NO_REPORT, message))
            continue
        for source in sources:
            merged.sources.setdefault(source.hash, source)
            _add_new(merged.findings, (f for f in source.findings if f.target == check.target))
            _add_new(merged.errors, (e for e in source.errors if e.target == check.target))
            _add_new(
                merged.checks,
                source.checks  # an image check's report is its own
                if check.image is not None
                else (c for c in source.checks if _unit_of(c) == check.target),
            )
    if not expected and reports:  # a project that no longer has checks: its newest report
        merged.sources[reports[0][0].hash] = reports[0][0]
    for source in merged.sources.values():  # failures of a whole run (no target)
        merged.errors += [e for e in source.errors if e.target is None and e not in merged.errors]
    newest = max(merged.sources.values(), key=lambda r: r.checked_at, default=None)
    report = DriftReport(
        project=project,
        lockset=newest.lockset if newest else latest or "",
        checked_at=newest.checked_at if newest else since,
        findings=tuple(merged.findings),
        errors=tuple(merged.errors),
        checks=tuple(merged.checks),
    )
    return ProjectSummary(report, tuple(merged.sources), tuple(missing))


def _newest_of_each_origin(covering: Sequence[tuple[DriftReport, str]]) -> list[DriftReport]:
    """Of the reports that covered a check (newest first, with their origins), those on the
    newest one's lockset, the newest of each origin: a deployment's clean report does not
    hide another deployment's drift, nor the local checks' (``drift.standing``)."""
    if not covering:
        return []
    lockset = covering[0][0].lockset
    seen: set[str] = set()
    out: list[DriftReport] = []
    for report, origin in covering:
        if report.lockset == lockset and origin not in seen:
            seen.add(origin)
            out.append(report)
    return out


def _add_new(into: list[T], items: Iterable[T]) -> None:
    """Append the items ``into`` does not hold yet (two deployments' same finding once)."""
    into += [item for item in items if item not in into]


def _covered(report: DriftReport) -> set[tuple[str | None, str | None]]:
    """The (target, image) checks a report ran; reports without timings say it in ``checks``."""
    if report.timings:
        return {(t.target, t.image) for t in report.timings}
    return {(_unit_of(check), None) for check in report.checks}


def _unit_of(check: str) -> str | None:
    """``rebuild:T``, ``artifacts:T``, ``creep:T`` ... -> T; ``images`` -> None."""
    _, sep, target = check.partition(":")
    return target if sep else None


def _now() -> str:
    return _iso(datetime.now(UTC))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
