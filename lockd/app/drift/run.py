"""The drift use case: rebuild or inspect, re-resolve, re-check, record, report.

For each target of a lockset (the project's latest unless one is named):

* ``--snapshot FILE`` / ``--python PATH``: compare that environment with the lock;
* otherwise, where the target can be built here (this platform, its Python
  installed), rebuild it in a fresh venv with uv, hashes enforced, snapshot the
  result and compare; elsewhere check that every locked file is still served
  with the same sha256;
* ``--creep``: resolve the loose inputs again, today and as of the cut-off;
* ``--images``: resolve every recorded base-image tag again.

Every run is stored (chained per project) with the snapshots it compared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...drift import CheckError, DriftReport, Finding
from ...errors import LockdError, NotFoundError, UsageError
from ...indexes import IndexClient
from ...lockset import Lock, Lockset
from ...store import Store
from ...targets import parse_target_id
from ...urls import redact
from .artifacts import conda_served_findings, is_conda
from .creep import conda_creep, creep_findings
from .environment import check_environment
from .images import image_findings
from .options import DriftOptions, ProgressHook


def run_drift(options: DriftOptions, progress: ProgressHook | None = None) -> list[DriftReport]:
    """Check one project (or every project with ``all_projects``); store every report."""
    store = Store(options.database_url)
    try:
        if options.all_projects:
            projects = store.projects()
            if not projects:
                raise NotFoundError(
                    "The database holds no projects yet.", hint="Run `lockd compile` first."
                )
            with ThreadPoolExecutor(max_workers=max(1, options.concurrency)) as pool:
                reports = list(
                    pool.map(lambda p: _check_project_safely(store, options, p, progress), projects)
                )
            return reports + _check_tracked_images(store, options, progress)
        if options.image_refs:
            return [
                _record(store, _check_image(store, options, reference, progress))
                for reference in options.image_refs
            ]
        lockset = _pick_lockset(store, options)
        return [_record(store, _check_lockset(store, options, lockset, progress))]
    finally:
        store.close()


def _check_project_safely(
    store: Store, options: DriftOptions, project: str, progress: ProgressHook | None
) -> DriftReport:
    """One project of ``--all``: a failure becomes an error report, never stops the others."""
    now = _now()
    try:
        lockset = store.latest(project)
        if lockset is None:
            return _record(
                store,
                DriftReport(project, "", now, (), (CheckError(None, "lockset", "no lockset"),)),
            )
        return _record(store, _check_lockset(store, options, lockset, progress))
    except Exception as err:  # one project never stops the nightly run
        message = err.render() if isinstance(err, LockdError) else f"{type(err).__name__}: {err}"
        report = DriftReport(project, "", now, (), (CheckError(None, "drift", redact(message)),))
        try:
            return _record(store, report)
        except LockdError:
            return report


def _check_image(
    store: Store, options: DriftOptions, reference: str, progress: ProgressHook | None
) -> DriftReport:
    from ...images import RegistryOptions
    from ..image_drift import ImageCheck, check_image

    def pick(label: str | None) -> Lockset:
        if options.lockset is None and label:
            return store.get(label, options.project)
        return _pick_lockset(store, options)

    registry = RegistryOptions.from_env(options.environ)
    return check_image(store, ImageCheck(reference, options.target), pick, registry, progress)


def _check_tracked_images(
    store: Store, options: DriftOptions, progress: ProgressHook | None
) -> list[DriftReport]:
    """``--all``: every tracked image against its project's latest lockset."""
    from ...images import RegistryOptions
    from ..image_drift import ImageCheck, check_image, failed_check

    registry = RegistryOptions.from_env(options.environ)
    reports = []
    for tracked in store.tracked_images():
        lockset = store.latest(tracked.project)
        if lockset is None:
            continue  # the project's own report already says it has no lockset
        check = ImageCheck(tracked.reference, tracked.target)
        try:
            report = check_image(store, check, _always(lockset), registry, progress)
        except LockdError as err:
            report = failed_check(lockset, check, err)
        reports.append(_record(store, report))
    return reports


def _always(lockset: Lockset) -> Callable[[str | None], Lockset]:
    """A tracked image is checked against its project's latest lockset, whatever its label."""
    return lambda _label: lockset


def _record(store: Store, report: DriftReport) -> DriftReport:
    return store.record_drift(report)


def _pick_lockset(store: Store, options: DriftOptions) -> Lockset:
    if options.lockset:
        return store.get(options.lockset, options.project)
    project = options.project or default_project(store)
    lockset = store.latest(project)
    if lockset is None:
        raise NotFoundError(
            f"No lockset recorded for project {project!r}.",
            hint="Run `lockd compile` first, or name the project with --project.",
        )
    return lockset


def default_project(store: Store) -> str:
    """The project to check when none is named: this directory's, else the only one."""
    from ...settings import load_project_config
    from ..request import project_name

    config = load_project_config(Path.cwd())
    if config.project:
        return config.project
    name = project_name(config.root)
    if name in store.projects():
        return name
    projects = store.projects()
    if not projects:
        raise NotFoundError(
            "Nothing to check: the database holds no lockset yet.",
            hint="Run `lockd compile` first (or point --db / LOCKD_DATABASE_URL at the "
            "database that holds your locksets).",
        )
    if len(projects) == 1:
        return projects[0]
    raise UsageError(
        "Which project? The database holds " + (", ".join(projects) or "none") + ".",
        hint="Pass --project NAME, or --all for every project.",
    )


def _check_lockset(
    store: Store, options: DriftOptions, lockset: Lockset, progress: ProgressHook | None
) -> DriftReport:
    findings: list[Finding] = []
    errors: list[CheckError] = []
    checks: list[str] = []
    snapshots: dict[str, Any] = {}
    locks = _selected_locks(lockset, options.target)
    client = IndexClient()
    try:
        for lock in locks:
            if progress:
                progress(lock.target)
            if is_conda(lock):
                try:
                    findings += conda_served_findings(lock, client)
                    checks.append(f"conda:{lock.target}")
                except LockdError as err:
                    errors.append(CheckError(lock.target, "conda", redact(err.render())))
                if options.creep:
                    try:
                        findings += conda_creep(options, lockset, lock)
                        checks.append(f"creep:{lock.target}")
                    except LockdError as err:
                        errors.append(CheckError(lock.target, "creep", redact(err.render())))
                continue
            target = parse_target_id(lock.target)
            try:
                found, snapshot, check = check_environment(
                    store, options, lockset, lock, target, client
                )
                findings += found
                checks.append(check)
                if snapshot is not None:
                    snapshots[lock.target] = snapshot
            except LockdError as err:
                errors.append(CheckError(lock.target, "environment", redact(err.render())))
            if options.creep:
                try:
                    findings += creep_findings(options, lockset, lock, target, client)
                    checks.append(f"creep:{lock.target}")
                except LockdError as err:
                    errors.append(CheckError(lock.target, "creep", redact(err.render())))
        if options.images and lockset.images:
            found_images, image_errors = image_findings(lockset, options.environ)
            findings += found_images
            errors += image_errors
            checks.append("images")
    finally:
        client.close()
    return DriftReport(
        project=lockset.project,
        lockset=lockset.hash,
        checked_at=_now(),
        findings=tuple(findings),
        errors=tuple(errors),
        checks=tuple(checks),
        snapshots=snapshots,
    )


def _selected_locks(lockset: Lockset, target: str | None) -> list[Lock]:
    if target is None:
        return list(lockset.locks)
    lock = lockset.lock(target)
    if lock is None:
        raise UsageError(
            f"Lockset {lockset.hash[:12]} has no target {target!r}.",
            hint="Its targets: " + ", ".join(lockset.targets) + ".",
        )
    return [lock]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code(reports: Sequence[DriftReport]) -> int:
    """1 if anything drifted (``info`` findings do not), else 3 if a check could not run, else 0."""
    if any(r.status == "drift" for r in reports):
        return 1
    return 3 if any(r.errors for r in reports) else 0
