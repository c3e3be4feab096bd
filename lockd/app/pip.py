"""The pip side of ``lockd compile``: resolve, verify and render one lock per target."""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import tomli_w
from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import (
    LockdError,
    ResolutionError,
    VerificationError,
)
from ..graph import Graph, pip_graph
from ..indexes import files_of_version, listed_versions
from ..inputs import PipInputs
from ..lockfiles.names import pylock_name, requirements_name
from ..lockfiles.pylock import render_pylock
from ..lockfiles.requirements import render_requirements
from ..lockset import (
    Artifact,
    Lock,
    Lockset,
    Offered,
    sha256_text,
)
from ..resolvers.interface import Pin, Resolution, Resolver, ResolveRequest
from ..resolvers.verify import TORCH, local_flavour, verify
from ..routing import IndexPlan, index_of, plan_for
from ..scratch import scratch_dir
from ..targets import Target
from ..urls import strip_credentials
from .metadata import Pending, RequiresReader, gather
from .promotions import Promotions, needless, scouts_first

if TYPE_CHECKING:
    from ..indexes import IndexClient
    from .request import LockRequest

ProgressHook = Callable[[str, str], None]  # (target id, event: start|done|failed)


@dataclass(slots=True)
class TargetOutcome:
    target: Target
    lock: Lock | None = None
    error: ResolutionError | None = None
    files: dict[str, bytes] = field(default_factory=dict)


def resolve_all(
    request: LockRequest,
    inputs: PipInputs,
    resolver: Resolver,
    progress: ProgressHook | None,
    previous: Lockset | None = None,
) -> list[TargetOutcome]:
    """Lock every target; ``previous`` (the lockset on disk) supplies the pins to keep."""
    from ..indexes import IndexClient

    client = IndexClient(metadata_cache=request.metadata_cache)
    reader = RequiresReader(client)
    promotions = Promotions()
    cleanup = ExitStack()  # the scratch directory goes even if the client fails to close
    scratch = cleanup.enter_context(scratch_dir("compile"))
    targets = request.targets
    plans = [_plan(request, target) for target in targets]
    # Targets of one platform and routing plan learn their promotions from the first
    # (a plan that routes nothing has nothing to promote: no key).
    keys: list[Hashable | None] = [
        (t.platform.name, plan) if plan.routes() else None
        for t, plan in zip(targets, plans, strict=True)
    ]
    try:

        def run(i: int) -> TargetOutcome:
            target = targets[i]
            if progress:
                progress(target.id, "start")
            outcome = _lock_target(
                request,
                _Job(target, plans[i], keys[i], scratch / target.id, promotions),
                inputs=inputs,
                resolver=resolver,
                client=client,
                reader=reader,
                preferences=previous_pins(previous, target.id),
            )
            if progress:
                progress(target.id, "failed" if outcome.error else "done")
            return outcome

        # All targets at once, one uv process each: measured on uv 0.13.9, a shared
        # cache (cold or warm) is faster this way than target after target
        # (benchmarks/RESULTS.md), so there is no cache-warming first pass. Scouts
        # start first: the pool takes jobs in order, so no follower waits for a
        # scout that has not started.
        with ThreadPoolExecutor(max_workers=max(1, request.concurrency)) as pool:
            jobs = {i: pool.submit(run, i) for i in scouts_first(keys)}
            return [jobs[i].result() for i in range(len(targets))]
    finally:
        with cleanup:
            reader.close()
            client.close()


@dataclass(frozen=True, slots=True)
class _Job:
    """One target of the matrix, its routing plan and what it shares with its peers."""

    target: Target
    plan: IndexPlan
    key: Hashable | None  # targets with the same key share their promotions
    workdir: Path  # private scratch directory
    promotions: Promotions


def _plan(request: LockRequest, target: Target) -> IndexPlan:
    return plan_for(
        target, request.index_url, request.pytorch_index, request.family, request.private_indexes
    )


def _lock_target(
    request: LockRequest,
    job: _Job,
    *,
    inputs: PipInputs,
    resolver: Resolver,
    client: IndexClient,
    reader: RequiresReader,
    preferences: tuple[Pin, ...],
) -> TargetOutcome:
    target, plan = job.target, job.plan
    outcome = TargetOutcome(target)
    hints, scout = job.promotions.hints(job.key)

    def resolve(promote: frozenset[str]) -> tuple[Resolution, Pending, Graph]:
        resolution = resolver.resolve(
            ResolveRequest(
                target=target,
                requirements=inputs.requirements,
                constraints=inputs.constraints,
                plan=plan,
                workdir=job.workdir,
                glibc=request.glibc,
                exclude_newer=request.exclude_newer,
                cache_dir=request.cache_dir,
                preferences=preferences,
                upgrade=request.upgrade,
                upgrade_packages=request.upgrade_packages,
                builds=request.builds,
                promote=promote,
                watch=reader.early(plan),
            )
        )
        if scout:  # the followers start now, while this target reads metadata
            job.promotions.learned(job.key, resolution.promoted)
        resolution = _fill_hashes(resolution, client)
        requires = reader.submit(resolution, plan)
        graph = pip_graph(gather(requires), inputs.direct, target.marker_environment())
        return resolution, requires, graph

    try:
        if target.accelerator.kind == "cuda" and target.platform.os == "macos":
            raise VerificationError(
                f"Target {target.id}: PyTorch publishes no CUDA builds for macOS.",
                target=target.id,
                hint="Lock macos-arm64 with --cuda cpu only, or drop the platform.",
            )
        resolution, requires, graph = _hinted(resolve, hints)
        verdict = verify(resolution, plan, _torch_requires(resolution, requires))
        lock = Lock(
            target=target.id,
            artifacts=_artifacts(resolution, plan),
            offered=_offered(resolution, plan, client),
            notes=verdict.notes,
            flavour=verdict.flavour,
            graph=graph,
        )
        outcome.files = _render_files(lock, plan, target)
        outcome.lock = replace(
            lock, files={n: sha256_text(d.decode()) for n, d in outcome.files.items()}
        )
    except VerificationError as err:
        outcome.error = err
    except ResolutionError as err:
        names = _names(inputs.requirements, err)
        outcome.error = _naming_pinned_upgrades(
            _diagnose_variant(target, plan, client, names, err)
            or _diagnose_private(target, plan, names, client)
            or err,
            request.upgrade_packages,
        )
    except LockdError as err:
        outcome.error = ResolutionError(f"Target {target.id}: {err.render()}", target=target.id)
    finally:
        if scout:  # a scout that failed before resolving teaches nothing
            job.promotions.learned(job.key, frozenset())
    return outcome


def _naming_pinned_upgrades(err: ResolutionError, upgrades: tuple[str, ...]) -> ResolutionError:
    """A failed resolution that had ``--upgrade-package NAME==VERSION`` to satisfy says so: a
    version no index has makes the resolver settle for older releases of other packages,
    and its error then names one of those (an sdist-only pandas), not the pin."""
    pinned = [package for package in upgrades if "==" in package]
    if not pinned or type(err) is not ResolutionError:
        return err
    extra = (
        f"This compile also pins {', '.join(pinned)} (--upgrade-package): check that "
        f"{'this version exists' if len(pinned) == 1 else 'these versions exist'} on the "
        "index first; the error above may follow from it."
    )
    hint = f"{err.hint} {extra}" if err.hint else extra
    return ResolutionError(err.message, target=err.target, hint=hint)


def _hinted(
    resolve: Callable[[frozenset[str]], tuple[Resolution, Pending, Graph]],
    hints: frozenset[str],
) -> tuple[Resolution, Pending, Graph]:
    """Resolve with another target's promotions, or as the target alone when they do not
    fit it: the resolution fails with them (a promoted package this Python cannot
    install), or the lock would hold one that nothing in it requires."""
    if hints:
        try:
            resolved = resolve(hints)
        except ResolutionError:
            pass  # the target alone reports its own failure, if it has one
        else:
            if not needless(hints, resolved[2]):
                return resolved
    return resolve(frozenset())


def previous_pins(previous: Lockset | None, target: str) -> tuple[Pin, ...]:
    """The versions the previous lock of ``target`` chose, as resolver preferences.

    The lockset on disk may come from anyone (a pull request): only names and
    versions that parse as such are passed on, and only as preferences, which a
    resolver drops when they do not satisfy the inputs.
    """
    lock = previous.lock(target) if previous is not None else None
    if lock is None:
        return ()
    pins: dict[str, str] = {}
    for artifact in lock.artifacts:
        try:
            name = canonicalize_name(str(artifact.name), validate=True)
            pins.setdefault(name, str(Version(str(artifact.version))))
        except (InvalidName, InvalidVersion):
            continue
    return tuple(Pin(name, version) for name, version in sorted(pins.items()))


def _diagnose_variant(
    target: Target,
    plan: IndexPlan,
    client: IndexClient,
    names: frozenset[str],
    error: ResolutionError,
) -> ResolutionError | None:
    """After a failed resolution: is the PyTorch variant index itself the problem, or
    does it lack a family package the resolution needed (a mirror without triton)?

    uv's own words for the latter blame the platform ("wheels are available on
    linux_aarch64"), since the routed package exists nowhere else it may look.
    ``names`` are the requirements and the names the resolver's message mentions.
    """
    if plan.variant is None:
        return None
    from ..errors import PackageIndexError

    index = strip_credentials(plan.variant)
    mentioned = sorted((plan.family - {TORCH}) & names)
    if not mentioned and TORCH not in names and index not in error.message:
        return None  # nothing routed to the variant index was involved
    for name in (TORCH, *mentioned):
        try:
            listed = bool(client.project_links(plan.variant, name))
        except PackageIndexError as exc:
            if name == TORCH:
                variant = target.accelerator.name
                return ResolutionError(
                    f"Target {target.id}: the PyTorch index for {variant} does not answer "
                    f"({exc.message.rstrip('.')}).",
                    target=target.id,
                    hint=f"Check that {variant} is a variant PyTorch publishes and that "
                    "--pytorch-index points at the right base URL.",
                )
            listed = False
        if not listed:
            return ResolutionError(
                f"Target {target.id}: {name} is a PyTorch-family package, taken only from "
                f"the PyTorch index {index}, and that index does not list it.",
                target=target.id,
                hint=f"PyTorch's own index serves {name} next to torch; if {index} is a "
                f"mirror, add {name} to it, or point --pytorch-index at an index that has it.",
            )
    return None


def _diagnose_private(
    target: Target, plan: IndexPlan, names: frozenset[str], client: IndexClient
) -> ResolutionError | None:
    """After a failed resolution: does a private index refuse or lack a routed package?

    ``names`` are the packages worth asking about (the requirements, and the names
    the resolver's message mentions); each routed one is looked up on its index.
    """
    from ..errors import PackageIndexError
    from ..routing import credential_variables

    for route in plan.private:
        for name in sorted(route.packages & names):
            try:
                client.project_links(route.url, name)
            except PackageIndexError as exc:
                where = f"{name} is routed to the private index {route.name!r}"
                if any(f"HTTP {code}" in exc.message for code in (401, 403)):
                    user, password = credential_variables(route.name)
                    return ResolutionError(
                        f"Target {target.id}: {where}, which refused lockd's credentials "
                        f"({exc.message.rstrip('.')}).",
                        target=target.id,
                        hint=f"Set {user} and {password} (or put them in the url of the "
                        "[[index]] table).",
                    )
                detail = exc.message.rstrip(".")
                return ResolutionError(
                    f"Target {target.id}: {where}, and {detail[:1].lower()}{detail[1:]}.",
                    target=target.id,
                    hint="Check the name and the index url of the [[index]] table; a routed "
                    "package is never looked up on another index.",
                )
    return None


def _names(requirements: tuple[str, ...], err: ResolutionError) -> frozenset[str]:
    """The requirement names, and every word of the resolver's message, normalised."""
    from packaging.requirements import Requirement

    words = re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", err.message)
    return frozenset(
        canonicalize_name(n) for n in (*(Requirement(r).name for r in requirements), *words)
    )


def _fill_hashes(resolution: Resolution, client: IndexClient) -> Resolution:
    """Hash files the index listed without ``#sha256=``: a lock never records an empty hash."""
    packages = []
    for package in resolution.packages:
        files = tuple(
            f if f.sha256 else replace(f, sha256=client.sha256(f.url)) for f in package.files
        )
        packages.append(replace(package, files=files))
    return replace(resolution, packages=tuple(packages))


def _torch_requires(resolution: Resolution, requires: Pending) -> dict[str, list[str]]:
    """torch's Requires-Dist, when its local tag does not already tell its flavour."""
    torch = next((p for p in resolution.packages if p.name == TORCH), None)
    pending = requires.get(TORCH)
    if torch is None or pending is None or local_flavour(torch.version) is not None:
        return {}
    return {TORCH: pending.result()}


def _artifacts(resolution: Resolution, plan: IndexPlan) -> tuple[Artifact, ...]:
    return tuple(
        Artifact(
            name=package.name,
            version=package.version,
            index=index_of(file.url, plan),
            url=strip_credentials(file.url),
            filename=file.filename,
            sha256=file.sha256 or "",
            kind=file.kind,
            upload_time=file.upload_time,
            size=file.size,
        )
        for package in sorted(resolution.packages, key=lambda p: p.name)
        for file in package.files
    )


def _offered(resolution: Resolution, plan: IndexPlan, client: IndexClient) -> tuple[Offered, ...]:
    """For files without upload times, what their index offered now (for later creep checks)."""
    out = []
    for package in resolution.packages:
        if all(f.upload_time for f in package.files):
            continue
        index_url = plan.index_url(package.name)
        links = client.project_links(index_url, package.name)
        files = {f: h for f, h in files_of_version(links, package.version).items() if h}
        out.append(
            Offered(package.name, strip_credentials(index_url), listed_versions(links), files)
        )
    return tuple(sorted(out, key=lambda o: o.name))


def _render_files(lock: Lock, plan: IndexPlan, target: Target) -> dict[str, bytes]:
    pylock = render_pylock(lock, requires_python=f"=={target.python_version}.*")
    header = (
        f"lockd lock for {target.id} ({lock.flavour or 'no torch'}); generated, do not edit.\n"
        f"Install: pip install --require-hashes --no-deps -r {target.id}.requirements.txt"
    )
    return {
        pylock_name(target.id): tomli_w.dumps(pylock).encode(),
        requirements_name(target.id): render_requirements(lock, plan, header=header).encode(),
    }
