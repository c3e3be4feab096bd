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

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..builds import rebuild_refusal, recorded_builds
from ..drift import (
    CheckError,
    DriftReport,
    Finding,
    check_artifacts,
    compare_image,
    compare_offered,
    compare_resolution,
    compare_snapshot,
    driver_findings,
)
from ..errors import LockdError, NotFoundError, ResolutionError, UsageError
from ..indexes import IndexClient, files_of_version, listed_versions
from ..lockfiles.requirements import render_requirements
from ..lockset import Lock, Lockset
from ..processes import Deadline, run_child
from ..resolvers.interface import ResolveRequest
from ..resolvers.uv import UvResolver, hermetic_env, sync_build_flags, uv_binary
from ..routing import IndexPlan, plan_for
from ..scratch import scratch_dir
from ..settings import PYPI_SENTINEL, Settings, deadline
from ..store import Store
from ..targets import Target, host_platform, parse_target_id
from ..urls import redact, strip_credentials

ProgressHook = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DriftOptions:
    database_url: str
    project: str | None = None
    lockset: str | None = None
    target: str | None = None
    all_projects: bool = False
    python: Path | None = None
    snapshot: Path | None = None
    rebuild: bool | None = None  # None: rebuild the targets this machine can build
    creep: bool = True
    images: bool = True
    concurrency: int = 4
    image_refs: tuple[str, ...] = ()  # --image: check these images instead of an environment
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))


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
    from ..images import RegistryOptions
    from .image_drift import ImageCheck, check_image

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
    from ..images import RegistryOptions
    from .image_drift import ImageCheck, check_image, failed_check

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
    project = options.project or _default_project(store)
    lockset = store.latest(project)
    if lockset is None:
        raise NotFoundError(
            f"No lockset recorded for project {project!r}.",
            hint="Run `lockd compile` first, or name the project with --project.",
        )
    return lockset


def _default_project(store: Store) -> str:
    from ..settings import load_project_config
    from .request import project_name

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
            if _is_conda(lock):
                try:
                    findings += _conda_served_findings(lock, client)
                    checks.append(f"conda:{lock.target}")
                except LockdError as err:
                    errors.append(CheckError(lock.target, "conda", redact(err.render())))
                if options.creep:
                    try:
                        findings += _conda_creep(options, lockset, lock)
                        checks.append(f"creep:{lock.target}")
                    except LockdError as err:
                        errors.append(CheckError(lock.target, "creep", redact(err.render())))
                continue
            target = parse_target_id(lock.target)
            try:
                found, snapshot, check = _check_environment(
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
                    findings += _creep(options, lockset, lock, target, client)
                    checks.append(f"creep:{lock.target}")
                except LockdError as err:
                    errors.append(CheckError(lock.target, "creep", redact(err.render())))
        if options.images and lockset.images:
            found_images, image_errors = _images(lockset, options.environ)
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


# -- environments ----------------------------------------------------------------------


def _check_environment(  # noqa: PLR0917 - private step of _check_lockset
    store: Store,
    options: DriftOptions,
    lockset: Lockset,
    lock: Lock,
    target: Target,
    client: IndexClient,
) -> tuple[list[Finding], dict[str, Any] | None, str]:
    from ..snapshot import Snapshot, read_snapshot, take_snapshot

    baseline_doc = store.baseline_snapshot(lockset.project, lock.target)
    baseline = Snapshot.from_dict(baseline_doc) if baseline_doc else None
    if options.snapshot is not None or options.python is not None:
        snapshot = (
            read_snapshot(options.snapshot) if options.snapshot else take_snapshot(options.python)
        )
        findings = compare_snapshot(lock, target, snapshot, baseline=baseline)
        findings += driver_findings(
            lock, target, snapshot.driver_version or _driver_override(options)
        )
        return findings, snapshot.to_dict(), f"live:{lock.target}"
    interpreter = _interpreter_for(target, options)
    if options.rebuild is False or interpreter is None:
        if options.rebuild:
            raise UsageError(
                f"Target {lock.target} cannot be rebuilt here: it needs {target.platform.name} "
                f"with Python {target.python_version}.",
                hint="Drop --rebuild to check the locked artifacts on their indexes instead.",
            )
        plan = _plan(lockset, target, options)
        return _served_findings(lock, client, plan), None, f"artifacts:{lock.target}"
    with scratch_dir("rebuild", Settings.from_env(options.environ).home) as tmp:
        findings, venv_python = _rebuild(lockset, lock, target, interpreter, tmp, options)
        if venv_python is None:
            return findings, None, f"rebuild:{lock.target}"
        snapshot = take_snapshot(venv_python)
        findings += compare_snapshot(lock, target, snapshot, baseline=baseline)
        findings += driver_findings(lock, target, snapshot.driver_version)
        return findings, snapshot.to_dict(), f"rebuild:{lock.target}"


def _driver_override(options: DriftOptions) -> str | None:
    return options.environ.get("LOCKD_CUDA_DRIVER_VERSION") or None


def _interpreter_for(target: Target, options: DriftOptions) -> str | None:
    """A Python of the target's version on this machine, if the platform matches."""
    if host_platform() != target.platform:
        return None
    proc = run_child(
        [uv_binary(), "python", "find", "--no-project", target.python_version],
        env=hermetic_env(options.environ),
    )
    found = proc.stdout.strip()
    return found if proc.returncode == 0 and found else None


def _rebuild(  # noqa: PLR0917 - private step of _check_environment
    lockset: Lockset, lock: Lock, target: Target, interpreter: str, tmp: Path, options: DriftOptions
) -> tuple[list[Finding], Path | None]:
    """A fresh venv from the recorded lock, hashes enforced."""
    builds = recorded_builds(lockset)
    refused = sorted(name for name in lock.source_builds() if not builds.allows(name))
    if refused:
        raise rebuild_refusal(lock.target, refused)
    env = hermetic_env(options.environ)
    venv = tmp / "venv"
    made = run_child([uv_binary(), "venv", "--quiet", "--python", interpreter, str(venv)], env=env)
    if made.returncode != 0:
        raise ResolutionError(
            f"Could not create a venv with {interpreter} to rebuild {lock.target}: "
            f"{' '.join(made.stderr.split())[-400:]}",
            target=lock.target,
        )
    plan = _plan(lockset, target, options)
    # With the configured credentials put back: read from stdin, never written to a file.
    requirements = render_requirements(
        lock, plan, header=f"lockd drift rebuild of {lock.target}", credentials=True
    )
    python = venv / "bin" / "python"
    proc = run_child(
        [
            uv_binary(),
            "pip",
            "sync",
            "--require-hashes",
            *sync_build_flags(lock.packages(), builds),
            "--python",
            str(python),
            "-",
        ],
        env=env,
        deadline=Deadline(
            deadline("LOCKD_UV_DEADLINE", options.environ), "uv pip sync (rebuild)", lock.target
        ),
        stdin=requirements,
    )
    if proc.returncode == 0:
        return [], python
    return [_rebuild_failure(lock, redact(proc.stderr))], None


def _rebuild_failure(lock: Lock, stderr: str) -> Finding:
    text = " ".join(stderr.split())
    package = next(
        (a.name for a in lock.artifacts if a.filename in text or f"`{a.name}" in text), None
    )
    if "Hash mismatch" in text or "hash mismatch" in text:
        kind = "artifact-changed"
    elif "404" in text or "not found" in text.lower():
        kind = "artifact-gone"
    else:
        kind = "artifact-gone" if package else "missing"
    return Finding(kind, lock.target, package, "rebuildable", "rebuild failed", detail=text[-600:])


def _served_findings(lock: Lock, client: IndexClient, plan: IndexPlan) -> list[Finding]:
    served: dict[str, dict[str, str | None]] = {}
    for artifact in lock.artifacts:
        if artifact.name in served:
            continue
        links = client.project_links(_credentialed(artifact.index, plan), artifact.name)
        served[artifact.name] = {link.filename: link.sha256 for link in links}
    return check_artifacts(lock, served)


def _is_conda(lock: Lock) -> bool:
    return bool(lock.artifacts) and all(a.kind == "conda" for a in lock.artifacts)


def _conda_served_findings(lock: Lock, client: IndexClient) -> list[Finding]:
    """Every locked conda archive still listed in its subdir's repodata with its sha256."""
    by_subdir: dict[str, dict[str, str | None]] = {}
    served: dict[str, dict[str, str | None]] = {}
    for artifact in lock.artifacts:
        subdir = artifact.url.rsplit("/", 1)[0]
        if subdir not in by_subdir:
            data = client.json(f"{subdir}/repodata.json")
            listing: dict[str, str | None] = {}
            if isinstance(data, dict):
                for key in ("packages", "packages.conda"):
                    for filename, record in (data.get(key) or {}).items():
                        listing[filename] = record.get("sha256")
            by_subdir[subdir] = listing
        served.setdefault(artifact.name, {}).update(by_subdir[subdir])
    return check_artifacts(lock, served)


def _conda_creep(options: DriftOptions, lockset: Lockset, lock: Lock) -> list[Finding]:
    """Solve the recorded environment again for this conda target, today."""
    from ..inputs.environment import CondaEnvironment
    from ..lockset import InputFile
    from ..targets import parse_accelerator, parse_platform
    from .conda import lock_conda

    recorded = lockset.extra.get("conda")
    if not isinstance(recorded, dict):
        return []
    platform, accelerator = lock.target.rsplit("-", 1)
    environment = CondaEnvironment(
        name=recorded.get("name"),
        channels=tuple(recorded.get("channels", ())),
        specs=tuple(recorded.get("specs", ())),
        source=str(recorded.get("environment", "environment.yml")),
    )
    settings = Settings.from_env(options.environ)
    outcome = lock_conda(
        environment,
        InputFile(environment.source, ""),
        (Target(parse_platform(platform), (3, 0), parse_accelerator(accelerator)),),
        channel_base=settings.conda_channel,
        glibc=str(lockset.extra.get("glibc", "2.28")),
        cache_dir=settings.home / "cache" / "rattler",
        concurrency=1,
    )
    if outcome.failures:
        raise outcome.failures[0]
    return compare_resolution(lock, outcome.locks[0].packages(), None, cutoff_known=False)


# -- creep -----------------------------------------------------------------------------


def _plan(lockset: Lockset, target: Target, options: DriftOptions) -> IndexPlan:
    """The lockset's indexes and routes, as compile built them, with credentials from the
    environment where they match (``UV_INDEX_<NAME>_USERNAME``/``_PASSWORD`` for the
    ``[[index]]`` ones)."""
    from ..routing import (
        VARIANT_INDEX_NAME,
        RoutedIndex,
        family_names,
        url_with_variables,
        with_environment_credentials,
    )

    settings = Settings.from_env(options.environ)
    default = _with_credentials(lockset.indexes["default"], settings.index_url)
    pytorch = lockset.indexes.get("pytorch", PYPI_SENTINEL)
    if pytorch != PYPI_SENTINEL:
        pytorch = _with_credentials(pytorch, settings.pytorch_index)
        pytorch = url_with_variables(pytorch, VARIANT_INDEX_NAME, options.environ)
    family = family_names(lockset.extra.get("family", ()))
    routes = lockset.extra.get("routes", {})
    private = tuple(
        with_environment_credentials(
            RoutedIndex(name, lockset.indexes[name], frozenset(packages)), options.environ
        )
        for name, packages in sorted(routes.items())
        if name in lockset.indexes
    )
    return plan_for(target, default, pytorch, family, private)


def _credentialed(recorded: str, plan: IndexPlan) -> str:
    """A recorded (credential-free) index URL as the plan's URL, credentials included."""
    return next((url for url in plan.urls() if strip_credentials(url) == recorded), recorded)


def _with_credentials(recorded: str, configured: str) -> str:
    return configured if strip_credentials(configured) == recorded else recorded


def _creep(
    options: DriftOptions, lockset: Lockset, lock: Lock, target: Target, client: IndexClient
) -> list[Finding]:
    resolver = UvResolver()
    plan = _plan(lockset, target, options)
    constraints = tuple(lockset.extra.get("constraints", ()))
    glibc = str(lockset.extra.get("glibc", "2.28"))
    cache = options.environ.get("UV_CACHE_DIR")
    findings: list[Finding] = []
    for offered in lock.offered:
        links = client.project_links(_credentialed(offered.index, plan), offered.name)
        locked_version = lock.packages().get(offered.name)
        files = files_of_version(links, locked_version) if locked_version else {}
        versions = list(listed_versions(links))
        findings += compare_offered(lock.target, offered, files, versions)
    with scratch_dir("creep", Settings.from_env(options.environ).home) as tmp:

        def resolve(name: str, exclude_newer: str | None) -> dict[str, str]:
            request = ResolveRequest(
                target=target,
                requirements=lockset.requirements,
                constraints=constraints,
                plan=plan,
                workdir=tmp / name,
                glibc=glibc,
                exclude_newer=exclude_newer,
                cache_dir=Path(cache) if cache else None,
                builds=recorded_builds(lockset),
            )
            return {p.name: p.version for p in resolver.resolve(request).packages}

        try:
            today = resolve("today", None)
            as_of = resolve("cutoff", lockset.cutoff) if today != lock.packages() else None
        except ResolutionError:
            if findings:  # what the index no longer offers explains the failure
                return _dedupe(findings)
            raise
    findings += compare_resolution(lock, today, as_of)
    return _dedupe(findings)


def _dedupe(findings: Sequence[Finding]) -> list[Finding]:
    seen: dict[tuple[str, str | None, str | None, str | None], Finding] = {}
    for finding in findings:
        seen.setdefault((finding.kind, finding.target, finding.package, finding.actual), finding)
    return list(seen.values())


# -- images ----------------------------------------------------------------------------


def _images(lockset: Lockset, environ: dict[str, str]) -> tuple[list[Finding], list[CheckError]]:
    """Where each recorded base image's reference points now (one HEAD per tag)."""
    from ..errors import ImageNotFoundError, RegistryError
    from ..images import RegistryClient, RegistryOptions

    findings: list[Finding] = []
    errors: list[CheckError] = []
    with RegistryClient(RegistryOptions.from_env(environ)) as client:
        for image in lockset.images:
            reference = str(image.get("reference"))
            recorded = str(image.get("index_digest"))
            try:
                current: str | None = client.digest(reference)
            except ImageNotFoundError:  # the tag, digest or repository is gone
                current = None
            except RegistryError as err:
                errors.append(CheckError(None, f"image {reference}", redact(err.render())))
                continue
            findings += compare_image(reference, recorded, current)
    return findings, errors


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code(reports: Sequence[DriftReport]) -> int:
    """1 if anything drifted (``info`` findings do not), else 3 if a check could not run, else 0."""
    if any(r.status == "drift" for r in reports):
        return 1
    return 3 if any(r.errors for r in reports) else 0
