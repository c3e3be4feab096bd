"""The drift use case: rebuild or inspect, re-resolve, re-check, record, report.

For each target of a lockset (the project's latest unless one is named):

* ``--snapshot FILE`` / ``--python PATH``: compare that environment with the lock;
* otherwise, where the target can be built here (this platform, its Python
  installed), prove every locked file upstream and rebuild it in a fresh venv
  with uv, hashes enforced and no cache trusted, snapshot the result and
  compare; elsewhere check that every locked file is still served with the
  same sha256;
* ``--creep``: resolve the loose inputs again, today and as of the cut-off;
* ``--images``: resolve every recorded base-image tag again.

Every run is stored (chained per project) with the snapshots it compared.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...drift import CheckError, CheckTiming, DriftReport, Finding
from ...errors import LockdError, NotFoundError, UsageError
from ...indexes import IndexClient
from ...lockset import Lock, Lockset
from ...store import Store
from ...targets import parse_target_id
from ...urls import redact
from .artifacts import conda_served_findings
from .creep import conda_creep, creep_findings
from .environment import check_environment
from .images import image_findings
from .indexes import configured_indexes, index_plan
from .options import DriftOptions, DriftStep, ProgressHook, TargetCheck

if TYPE_CHECKING:
    from ...snapshot import Snapshot
    from ..image_drift import ImageCheck


def run_drift(options: DriftOptions, progress: ProgressHook | None = None) -> list[DriftReport]:
    """Check one project (or every project with ``all_projects``); store every report."""
    from ..record import require_database

    configured = configured_indexes(options)  # a broken lockd.toml fails before any check
    require_database(options.database_url)  # nothing recorded there: no empty file left behind
    store = Store(options.database_url)
    try:
        run = DriftRun(store, options, configured, progress)
        if options.all_projects:
            from ..nightly import run_nightly

            return run_nightly(run)
        if options.image_refs:
            return [
                store.record_drift(_check_image(store, options, reference, progress))
                for reference in options.image_refs
            ]
        lockset = _pick_lockset(store, options)
        return [store.record_drift(run.check_lockset(lockset))]
    finally:
        store.close()


def _check_image(
    store: Store, options: DriftOptions, reference: str, progress: ProgressHook | None
) -> DriftReport:
    from ...images import RegistryOptions, VerifiedLayers
    from ..image_drift import ImageCheck, check_image

    def pick(label: str | None) -> Lockset:
        if options.lockset is None and label:
            return store.get(label, options.project)
        return _pick_lockset(store, options)

    registry = RegistryOptions.from_env(options.environ)
    check = ImageCheck(reference, options.target, VerifiedLayers.from_env(options.environ))
    return check_image(store, check, pick, registry, image_progress(check, progress))


def image_progress(
    check: ImageCheck, progress: ProgressHook | None
) -> Callable[[str], None] | None:
    """The image reader's progress ("layer 2/5 of …") as drift steps of that image."""
    if progress is None:
        return None
    return lambda what: progress(DriftStep(check.reference, check.target, "image", redact(what)))


def _pick_lockset(store: Store, options: DriftOptions) -> Lockset:
    if options.lockset:
        return store.get(options.lockset, options.project)
    # An image named with --image is only read: the database's only project may answer.
    only_one = bool(options.image_refs)
    project = options.project or default_project(
        store, options.workdir, only_one=only_one, drift=True
    )
    lockset = store.latest(project)
    if lockset is None:
        raise NotFoundError(
            f"No lockset recorded for project {project!r}.",
            hint="Run `lockd compile` first, or name the project with --project.",
        )
    return lockset


def default_project(
    store: Store, workdir: Path | None = None, *, only_one: bool = False, drift: bool = False
) -> str:
    """The project to check when none is named: that of the locks in ``workdir`` (the
    working directory): ``lockd.json``'s, else lockd.toml's, else the directory's name
    (what ``compile`` names it). No guess beyond that: another project of the database
    would be checked (and rebuilt) by a command run in the wrong directory. With
    ``only_one`` (an image named on the command line, which is only read), the
    database's only project is the answer too. ``drift``: the question mentions --all,
    which only ``lockd drift`` takes."""
    from ...lockfiles.manifest import MANIFEST, read_manifest
    from ...settings import load_project_config
    from ..request import project_name

    config = load_project_config(workdir or Path.cwd())
    manifest = read_manifest(config.root / (config.out or "locks") / MANIFEST)
    if manifest is not None:
        return manifest.project
    if config.project:
        return config.project
    name = project_name(config.root)
    projects = store.projects()
    if name in projects:
        return name
    if only_one and len(projects) == 1:
        return projects[0]
    if not projects:
        raise NotFoundError(
            "Nothing to check: the database holds no lockset yet.",
            hint="Run `lockd compile` first (or point --db / LOCKD_DATABASE_URL at the "
            "database that holds your locksets).",
        )
    shown = ", ".join(projects[:10]) + (
        f" and {len(projects) - 10} more" if len(projects) > 10 else ""
    )
    raise UsageError(
        f"Which project? {config.root} has no {config.out or 'locks'}/lockd.json and no "
        f"project in lockd.toml, and the database has no project {name!r} (it holds {shown}).",
        hint="Pass --project NAME or run lockd where locks/lockd.json is"
        + (" (or --all: every project)." if drift else "."),
    )


@dataclass(frozen=True, slots=True)
class Scope:
    """The part of a lockset one run checks: some targets, and the project-wide checks."""

    targets: frozenset[str]
    project_wide: bool = True


@dataclass(frozen=True, slots=True)
class DriftRun:
    """One drift run: the store, the options and what every project's check shares."""

    store: Store
    options: DriftOptions
    configured: tuple[str, ...]  # index URLs that may carry credentials
    progress: ProgressHook | None

    def check_lockset(self, lockset: Lockset, scope: Scope | None = None) -> DriftReport:
        """Every check of ``lockset`` (or of ``scope``), each timed; the report is not stored."""
        found = _Found()
        if scope is None:
            locks, project_wide = _selected_locks(lockset, self.options), True
        else:
            locks = [lock for lock in lockset.locks if lock.target in scope.targets]
            project_wide = scope.project_wide
        client = IndexClient()
        try:
            for lock in locks:
                with found.timed(lock.target):
                    self._check_target(lockset, lock, client, found)
            if project_wide and self.options.images and lockset.images:
                with found.timed(None):
                    self._step(lockset, None, "images", f"{len(lockset.images)} base image tag(s)")
                    found_images, image_errors = image_findings(lockset, self.options.environ)
                    found.findings += found_images
                    found.errors += image_errors
                    found.checks.append("images")
        finally:
            client.close()
        return DriftReport(
            project=lockset.project,
            lockset=lockset.hash,
            checked_at=_now(),
            findings=tuple(found.findings),
            errors=tuple(found.errors),
            checks=tuple(found.checks),
            snapshots=found.snapshots,
            timings=tuple(found.timings),
            shard=str(self.options.shard) if self.options.shard else None,
        )

    def _check_target(
        self, lockset: Lockset, lock: Lock, client: IndexClient, found: _Found
    ) -> None:
        options = self.options
        if lock.is_conda():
            self._step(lockset, lock.target, "artifacts", "conda archives against repodata.json")
            found.run(lock.target, "conda", lambda: conda_served_findings(lock, client))
            if options.creep:
                self._step(lockset, lock.target, "creep", "solving the environment again")
                found.run(lock.target, "creep", lambda: conda_creep(options, lockset, lock))
            return
        target = parse_target_id(lock.target)
        check = TargetCheck(
            options,
            lockset,
            lock,
            target,
            index_plan(lockset, target, self.configured, options.environ),
            client,
            self.progress,
        )
        try:
            findings, snapshot, name = check_environment(self.store, check)
            found.findings += findings
            found.checks.append(name)
            if snapshot is not None:
                found.snapshots[lock.target] = snapshot
        except LockdError as err:
            found.errors.append(CheckError(lock.target, "environment", redact(err.render())))
        if options.creep:
            check.step("creep", "resolving the inputs again")
            found.run(lock.target, "creep", lambda: creep_findings(check))

    def _step(self, lockset: Lockset, target: str | None, step: str, detail: str) -> None:
        if self.progress is not None:
            self.progress(DriftStep(lockset.project, target, step, redact(detail)))


@dataclass
class _Found:
    """What the checks of one lockset found so far."""

    findings: list[Finding] = field(default_factory=list)
    errors: list[CheckError] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    snapshots: dict[str, Any] = field(default_factory=dict)
    timings: list[CheckTiming] = field(default_factory=list)

    @contextmanager
    def timed(self, target: str | None) -> Iterator[None]:
        """Time one unit of the run: a target's checks, or (``None``) the base images."""
        started = time.monotonic()
        try:
            yield
        finally:
            seconds = round(time.monotonic() - started, 3)
            self.timings.append(CheckTiming(target, None, seconds))

    def run(self, target: str, check: str, findings: Callable[[], list[Finding]]) -> None:
        """Run one check: its findings count, a failure becomes a ``CheckError``."""
        try:
            self.findings += findings()
            self.checks.append(f"{check}:{target}")
        except LockdError as err:
            self.errors.append(CheckError(target, check, redact(err.render())))


def _selected_locks(lockset: Lockset, options: DriftOptions) -> list[Lock]:
    target = options.target
    if target is None and options.snapshot is not None:
        return [_snapshot_lock(lockset, options.snapshot)]
    if target is None:
        return list(lockset.locks)
    lock = lockset.lock(target)
    if lock is None:
        raise UsageError(
            f"Lockset {lockset.hash[:12]} has no target {target!r}.",
            hint="Its targets: " + ", ".join(lockset.targets) + ".",
        )
    return [lock]


def _snapshot_lock(lockset: Lockset, snapshot: Snapshot) -> Lock:
    """The one target a snapshot is of: its Python and platform, then its torch's accelerator.

    One environment compared with every target would report each other Python's
    target as drifted; when the snapshot does not tell, the user names it.
    """
    python, platform = snapshot.python.minor, snapshot.python.platform
    flavour = snapshot.torch_flavour
    candidates = []
    for lock in lockset.locks:
        if lock.is_conda():
            continue
        target = parse_target_id(lock.target)
        same_platform = target.platform.name == platform or (
            target.platform.os == "macos" and platform.startswith("macosx")
        )
        if same_platform and target.python_version == python:
            candidates.append((lock, target))
    if len(candidates) > 1 and flavour is not None:
        wanted = flavour.kind.value
        fitting = [
            (lock, t)
            for lock, t in candidates
            if t.accelerator.kind == wanted
            and (t.accelerator.cuda_version == flavour.cuda or wanted != "cuda")
        ]
        candidates = fitting or candidates
    if len(candidates) == 1:
        return candidates[0][0]
    said = f"Python {python} on {platform}"
    if not candidates:
        raise UsageError(
            f"No target of lockset {lockset.hash[:12]} is for {said}, as the snapshot is.",
            hint="Pass --target to compare it with one anyway (its targets: "
            + ", ".join(lockset.targets)
            + ").",
        )
    raise UsageError(
        f"The snapshot ({said}) fits several targets of lockset {lockset.hash[:12]}: "
        + ", ".join(lock.target for lock, _ in candidates)
        + ".",
        hint="Pass --target to say which one it is.",
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code(reports: Sequence[DriftReport]) -> int:
    """1 if anything drifted (``info`` findings do not), else 3 if a check could not run, else 0."""
    if any(r.status == "drift" for r in reports):
        return 1
    return 3 if any(r.errors for r in reports) else 0
