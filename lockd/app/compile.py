"""The compile use case: flags + config -> request -> resolved, verified, written, recorded.

I/O happens here and in the backends; the decisions (routing, verification,
rendering, diffing) are pure functions in their own modules.
"""

from __future__ import annotations

import getpass
import hashlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from .. import __version__
from ..errors import (
    FormatError,
    LockdError,
    MatrixError,
    ResolutionError,
    UsageError,
    VerificationError,
)
from ..indexes import files_of_version, listed_versions, requires_dist
from ..inputs import PipInputs, is_conda_input, load_pip_inputs
from ..lockfiles.files import StagedFiles
from ..lockfiles.manifest import MANIFEST, read_manifest, render_manifest
from ..lockfiles.pylock import render_pylock
from ..lockfiles.requirements import render_requirements
from ..lockset import (
    Artifact,
    Failure,
    InputFile,
    Lock,
    Lockset,
    Offered,
    Provenance,
    input_key,
    sha256_text,
)
from ..resolvers.interface import Resolution, Resolver, ResolveRequest
from ..resolvers.verify import TORCH, local_flavour, verify
from ..routing import IndexPlan, index_of, plan_for
from ..targets import Target
from ..urls import strip_credentials

if TYPE_CHECKING:
    from ..indexes import IndexClient
    from ..inputs.environment import CondaEnvironment
    from ..store import Store
    from .conda import CondaOutcome

ProgressHook = Callable[[str, str], None]  # (target id, event: start|done|failed)


@dataclass(frozen=True, slots=True)
class LockRequest:
    """Everything ``lockd compile`` was asked to do, after flags and config are merged."""

    project: str
    inputs: tuple[Path, ...]
    targets: tuple[Target, ...]
    root: Path
    out_dir: Path
    index_url: str
    pytorch_index: str
    family: frozenset[str]
    database_url: str
    resolver: str = "uv"
    extras: tuple[str, ...] = ()
    glibc: str = "2.28"
    allow_partial: bool = False
    refresh: bool = False
    exclude_newer: str | None = None
    concurrency: int = 4
    cache_dir: Path | None = None
    images: tuple[str, ...] = ()  # base image references, as written
    dockerfile: Path | None = None  # whose FROM images are base images too
    conda_channel: str = "https://conda.anaconda.org"  # base URL for named channels
    conda_channels: tuple[str, ...] = ()  # put in front of environment.yml's channels
    conda_cache: Path | None = None  # rattler's repodata cache
    metadata_cache: Path | None = None  # core metadata of wheels, by sha256


@dataclass(frozen=True, slots=True)
class _BaseImages:
    """The base image references to resolve, and the Dockerfile they were read from."""

    references: tuple[str, ...] = ()  # sorted, distinct
    dockerfile: InputFile | None = None


@dataclass(frozen=True, slots=True)
class CompileResult:
    lockset: Lockset
    unchanged: bool
    written: tuple[Path, ...] = ()
    failures: tuple[Failure, ...] = ()


@dataclass(slots=True)
class _TargetOutcome:
    target: Target
    lock: Lock | None = None
    error: ResolutionError | None = None
    files: dict[str, bytes] = field(default_factory=dict)


def make_resolver(name: str) -> Resolver:
    if name == "uv":
        from ..resolvers.uv import UvResolver

        return UvResolver()
    if name == "pip-tools":
        from ..resolvers.piptools import PipToolsResolver

        return PipToolsResolver()
    raise UsageError(
        f"Unknown resolver {name!r}.", hint="Use --resolver uv or --resolver pip-tools."
    )


def compile_lockset(request: LockRequest, progress: ProgressHook | None = None) -> CompileResult:
    """Resolve, verify, write and record one lockset (all-or-nothing unless partial)."""
    resolver = make_resolver(request.resolver)
    for target in request.targets:
        resolver.check(target)
    pip_paths = tuple(p for p in request.inputs if not is_conda_input(p))
    environment = _read_environment(request)
    inputs = _pip_inputs(request, pip_paths, environment)
    base = _base_images(request)
    key = _input_key(request, inputs, resolver, base)
    on_disk = _previous_manifest(request.out_dir)
    # Importing SQLModel and opening (maybe migrating) the database takes about a
    # second: it happens in the background while uv resolves.
    opening = _in_background(_open_store, request.database_url)
    try:
        if (
            not request.refresh
            and on_disk is not None
            and _unchanged(on_disk, key, request.out_dir)
        ):
            recorded = opening.result().latest(request.project)
            if recorded is not None and recorded.hash == on_disk.hash:
                return CompileResult(recorded, unchanged=True)
        started = datetime.now(UTC).replace(microsecond=0)
        # Images first: a wrong tag fails in a second rather than after every target
        # resolved, and a RegistryError here leaves nothing written or recorded.
        images = _resolve_images(base)
        outcomes = _resolve_all(request, inputs, resolver, progress) if pip_paths else []
        conda = _lock_conda(request, environment) if environment else None
        if conda is not None and conda.pip_targets:
            # The pip: section, for the Python each conda solution chose.
            section = replace(request, targets=tuple(conda.pip_targets))
            outcomes += _resolve_all(section, inputs, resolver, progress)
        store = opening.result()
        previous = store.latest(request.project)
        failures = [o.error for o in outcomes if o.error is not None]
        failures += conda.failures if conda else []
        total = len(outcomes) + (len(conda.locks) + len(conda.failures) if conda else 0)
        if failures and (not request.allow_partial or len(failures) == total):
            raise failures[0] if len(failures) == 1 else MatrixError(failures)
        conda_locks = tuple(conda.locks) if conda else ()
        lockset = Lockset(
            project=request.project,
            inputs=inputs.files,
            requirements=inputs.requirements,
            targets=tuple(o.target.id for o in outcomes)
            + tuple(lock.target for lock in conda_locks),
            resolver=resolver.name,
            resolver_version=resolver.version(),
            indexes=_public_indexes(request),
            cutoff=request.exclude_newer or _iso(started),
            input_key=key,
            provenance=_provenance(request.root, started),
            locks=tuple(o.lock for o in outcomes if o.lock is not None) + conda_locks,
            failures=tuple(Failure(o.target.id, o.error.render()) for o in outcomes if o.error)
            + tuple(
                Failure(f.target or "conda", f.render()) for f in (conda.failures if conda else ())
            ),
            images=images,
            parent=previous.hash if previous else None,
            extra={
                "constraints": list(inputs.constraints),
                "glibc": request.glibc,
                "family": sorted(request.family),
                **({"dockerfile": base.dockerfile.to_dict()} if base.dockerfile else {}),
                **({"conda": conda.summary()} if conda else {}),
            },
        )
        files = {name: data for o in outcomes for name, data in o.files.items()}
        files.update(conda.files if conda else {})
        files[MANIFEST] = render_manifest(lockset)
        stale = [name for lock in (on_disk.locks if on_disk else ()) for name in lock.files]
        with StagedFiles(request.out_dir, files, last=MANIFEST, remove=stale) as staged:
            store.record_lockset(lockset)
            written = staged.commit()
        return CompileResult(
            lockset, unchanged=False, written=tuple(written), failures=lockset.failures
        )
    finally:
        if opening.done() and opening.exception() is None:
            opening.result().close()


def _read_environment(request: LockRequest) -> tuple[CondaEnvironment, InputFile] | None:
    paths = [p for p in request.inputs if is_conda_input(p)]
    if len(paths) > 1:
        raise UsageError(
            "Give one environment.yml per lockset, not " + ", ".join(map(str, paths)) + ".",
            hint="Lock each conda environment as its own project (--project).",
        )
    if not paths:
        return None
    from .conda import read_environment

    if not paths[0].exists():
        raise UsageError(f"Input file {paths[0]} does not exist.")
    return read_environment(paths[0], request.root)


def _pip_inputs(
    request: LockRequest,
    pip_paths: tuple[Path, ...],
    environment: tuple[CondaEnvironment, InputFile] | None,
) -> PipInputs:
    """The pip side: requirement files, or the environment's ``pip:`` section."""
    if environment is None:
        return load_pip_inputs(pip_paths, request.root, request.extras)
    env, env_file = environment
    if pip_paths and env.pip_requirements:
        raise UsageError(
            f"{env_file.path} has a pip: section and pip inputs were given too "
            f"({', '.join(map(str, pip_paths))}); lockd would not know which Python to lock "
            "them for.",
            hint="Move the pip requirements into the environment's pip: section, or lock "
            "them as a separate project.",
        )
    if pip_paths:
        pip = load_pip_inputs(pip_paths, request.root, request.extras)
        return replace(pip, files=(*pip.files, env_file))
    return PipInputs(env.pip_requirements, (), (env_file,))


def _lock_conda(
    request: LockRequest, environment: tuple[CondaEnvironment, InputFile]
) -> CondaOutcome:
    from .conda import lock_conda

    env, env_file = environment
    if request.conda_channels:
        env = replace(env, channels=(*request.conda_channels, *env.channels))
    return lock_conda(
        env,
        env_file,
        request.targets,
        channel_base=request.conda_channel,
        glibc=request.glibc,
        cache_dir=request.conda_cache,
        concurrency=request.concurrency,
    )


def _previous_manifest(out_dir: Path) -> Lockset | None:
    """The manifest on disk; an unreadable or edited one is simply replaced."""
    try:
        return read_manifest(out_dir / MANIFEST)
    except FormatError:
        return None


def _open_store(url: str) -> Store:
    import httpx  # noqa: F401 - warms the import the verification step needs next

    from ..store import Store

    return Store(url)


def _in_background(function: Callable[[str], Store], argument: str) -> Future[Store]:
    executor = ThreadPoolExecutor(max_workers=1)
    future = executor.submit(function, argument)
    executor.shutdown(wait=False)
    return future


def _resolve_all(
    request: LockRequest, inputs: PipInputs, resolver: Resolver, progress: ProgressHook | None
) -> list[_TargetOutcome]:
    from ..indexes import IndexClient

    client = IndexClient(metadata_cache=request.metadata_cache)
    scratch = Path(tempfile.mkdtemp(prefix="lockd-"))
    try:

        def run(target: Target) -> _TargetOutcome:
            if progress:
                progress(target.id, "start")
            outcome = _lock_target(
                request,
                inputs=inputs,
                resolver=resolver,
                target=target,
                client=client,
                workdir=scratch / target.id,
            )
            if progress:
                progress(target.id, "failed" if outcome.error else "done")
            return outcome

        # All targets at once, one uv process each: measured on uv 0.13.9, a shared
        # cache (cold or warm) is faster this way than target after target
        # (benchmarks/RESULTS.md), so there is no cache-warming first pass.
        with ThreadPoolExecutor(max_workers=max(1, request.concurrency)) as pool:
            return list(pool.map(run, request.targets))
    finally:
        client.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _lock_target(
    request: LockRequest,
    *,
    inputs: PipInputs,
    resolver: Resolver,
    target: Target,
    client: IndexClient,
    workdir: Path,
) -> _TargetOutcome:
    plan = plan_for(target, request.index_url, request.pytorch_index, request.family)
    outcome = _TargetOutcome(target)
    try:
        if target.accelerator.kind == "cuda" and target.platform.os == "macos":
            raise VerificationError(
                f"Target {target.id}: PyTorch publishes no CUDA builds for macOS.",
                target=target.id,
                hint="Lock macos-arm64 with --cuda cpu only, or drop the platform.",
            )
        resolution = resolver.resolve(
            ResolveRequest(
                target=target,
                requirements=inputs.requirements,
                constraints=inputs.constraints,
                plan=plan,
                workdir=workdir,
                glibc=request.glibc,
                exclude_newer=request.exclude_newer,
                cache_dir=request.cache_dir,
            )
        )
        resolution = _fill_hashes(resolution, client)
        verdict = verify(resolution, plan, _torch_requires(resolution, plan, client))
        lock = Lock(
            target=target.id,
            artifacts=_artifacts(resolution, plan),
            offered=_offered(resolution, plan, client),
            notes=verdict.notes,
            flavour=verdict.flavour,
        )
        outcome.files = _render_files(lock, plan, target)
        outcome.lock = replace(
            lock, files={n: sha256_text(d.decode()) for n, d in outcome.files.items()}
        )
    except VerificationError as err:
        outcome.error = err
    except ResolutionError as err:
        outcome.error = _diagnose_variant(target, plan, client) or err
    except LockdError as err:
        outcome.error = ResolutionError(f"Target {target.id}: {err.render()}", target=target.id)
    return outcome


def _diagnose_variant(
    target: Target, plan: IndexPlan, client: IndexClient
) -> ResolutionError | None:
    """After a failed resolution: is the PyTorch variant index itself the problem?"""
    if plan.variant is None:
        return None
    from ..errors import PackageIndexError

    try:
        client.project_links(plan.variant, TORCH)
    except PackageIndexError as exc:
        variant = target.accelerator.name
        return ResolutionError(
            f"Target {target.id}: the PyTorch index for {variant} does not answer "
            f"({exc.message.rstrip('.')}).",
            target=target.id,
            hint=f"Check that {variant} is a variant PyTorch publishes (cpu, cu118, cu121, "
            "cu124, cu126, cu128, …) and that --pytorch-index points at the right base URL.",
        )
    return None


def _fill_hashes(resolution: Resolution, client: IndexClient) -> Resolution:
    """Hash files the index listed without ``#sha256=``: a lock never records an empty hash."""
    packages = []
    for package in resolution.packages:
        files = tuple(
            f if f.sha256 else replace(f, sha256=client.sha256(f.url)) for f in package.files
        )
        packages.append(replace(package, files=files))
    return replace(resolution, packages=tuple(packages))


def _torch_requires(
    resolution: Resolution, plan: IndexPlan, client: IndexClient
) -> dict[str, list[str]]:
    """torch's Requires-Dist, when its local tag does not already tell its flavour."""
    torch = next((p for p in resolution.packages if p.name == TORCH), None)
    if torch is None or not torch.files or local_flavour(torch.version) is not None:
        return {}
    wheel = next((f for f in torch.files if f.kind == "wheel"), torch.files[0])
    return {TORCH: requires_dist(client.core_metadata(wheel.url, wheel.sha256))}


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
        index_url = plan.variant if plan.variant and plan.is_routed(package.name) else plan.default
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
        f"pylock.{target.id}.toml": tomli_w.dumps(pylock).encode(),
        f"{target.id}.requirements.txt": render_requirements(lock, plan, header=header).encode(),
    }


def _base_images(request: LockRequest) -> _BaseImages:
    """``--image`` references and the Dockerfile's real ``FROM`` images (not stages, not scratch).

    Every reference is parsed here, so a malformed one is a usage error before any work.
    """
    if not request.images and request.dockerfile is None:
        return _BaseImages()  # nothing to import either
    from ..images import FromKind, parse_reference, read_dockerfile

    references = list(request.images)
    dockerfile = None
    if request.dockerfile is not None:
        text, instructions = read_dockerfile(request.dockerfile)
        references += [i.reference for i in instructions if i.kind is FromKind.IMAGE]
        digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
        dockerfile = InputFile(_relative(request.dockerfile, request.root), digest)
    for reference in references:
        parse_reference(reference)
    return _BaseImages(tuple(sorted({r.strip() for r in references})), dockerfile)


def _resolve_images(base: _BaseImages) -> tuple[dict[str, Any], ...]:
    """Each base image's record (``ResolvedImage.to_dict``), sorted by reference."""
    if not base.references:
        return ()
    from ..images import RegistryOptions, resolve_images

    return tuple(i.to_dict() for i in resolve_images(base.references, RegistryOptions.from_env()))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:  # outside the project: recorded as given
        return path.as_posix()


def _input_key(
    request: LockRequest, inputs: PipInputs, resolver: Resolver, base: _BaseImages
) -> str:
    # The image references and the Dockerfile's content, not their digests: a moved
    # tag is drift (`lockd drift`), not a reason to resolve again. Left out when there
    # are none, so that the keys of locksets without images stay what they were.
    dockerfile = base.dockerfile.sha256 if base.dockerfile else None
    images = [[list(base.references), dockerfile]] if base.references or dockerfile else []
    conda = (
        [["conda", strip_credentials(request.conda_channel), list(request.conda_channels)]]
        if any(is_conda_input(p) for p in request.inputs)
        else []
    )
    return input_key(
        [
            "lockd.compile/1",
            [f.to_dict() for f in inputs.files],
            list(inputs.requirements),
            list(inputs.constraints),
            [t.id for t in request.targets],
            resolver.name,
            resolver.version(),
            _public_indexes(request),
            sorted(request.family),
            request.glibc,
            request.exclude_newer,
            request.allow_partial,
            *images,
            *conda,
        ]
    )


def _unchanged(on_disk: Lockset, key: str, out_dir: Path) -> bool:
    """Same inputs, same matrix, and the lock files on disk are the ones the manifest names."""
    if on_disk.input_key != key or on_disk.failures:
        return False
    for lock in on_disk.locks:
        for name, digest in lock.files.items():
            path = out_dir / name
            if not path.is_file() or sha256_text(path.read_text(encoding="utf-8")) != digest:
                return False
    return True


def _public_indexes(request: LockRequest) -> dict[str, str]:
    out = {"default": strip_credentials(request.index_url)}
    out["pytorch"] = (
        request.pytorch_index
        if request.pytorch_index == "pypi"
        else strip_credentials(request.pytorch_index)
    )
    return out


def _provenance(root: Path, when: datetime) -> Provenance:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Provenance(
        user=user,
        host=socket.gethostname(),
        created_at=_iso(when),
        git_commit=_git_commit(root),
        lockd_version=__version__,
    )


def _git_commit(root: Path) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "CompileFlags",
    "CompileResult",
    "LockRequest",
    "build_lock_request",
    "compile_lockset",
    "make_resolver",
]


# -- flags + configuration -> request ------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompileFlags:
    """``lockd compile`` flags as typed; ``None``/empty means "not given"."""

    inputs: tuple[Path, ...] = ()
    cuda: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    pythons: tuple[str, ...] = ()
    project: str | None = None
    out: Path | None = None
    resolver: str | None = None
    index_url: str | None = None
    pytorch_index: str | None = None
    pytorch_family: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    db: str | None = None
    allow_partial: bool = False
    refresh: bool = False
    exclude_newer: str | None = None
    glibc: str | None = None
    images: tuple[str, ...] = ()
    dockerfile: Path | None = None
    conda_channels: tuple[str, ...] = ()


def build_lock_request(
    flags: CompileFlags, cwd: Path, environ: dict[str, str] | None = None
) -> LockRequest:
    """Merge flags > environment > lockd.toml/[tool.lockd] > defaults."""
    import os

    from ..routing import family_names
    from ..settings import Settings, load_project_config
    from ..targets import expand_matrix, host_platform, host_python

    env = dict(os.environ if environ is None else environ)
    settings = Settings.from_env(env)
    config = load_project_config(cwd)
    root = config.root
    inputs = flags.inputs or tuple(root / p for p in config.inputs) or _default_inputs(root)
    host = host_platform()
    platforms = flags.platforms or config.platforms or ((host.name,) if host else ())
    pythons = flags.pythons or config.pythons or ("{}.{}".format(*host_python()),)
    accelerators = flags.cuda or config.accelerators or ("cpu",)
    index_url = (
        flags.index_url or env.get("LOCKD_INDEX_URL") or config.index_url or settings.index_url
    )
    pytorch_index = (
        flags.pytorch_index
        or env.get("LOCKD_PYTORCH_INDEX")
        or config.pytorch_index
        or settings.pytorch_index
    )
    cache = env.get("UV_CACHE_DIR")
    return LockRequest(
        project=flags.project or config.project or _project_name(root),
        inputs=tuple(inputs),
        targets=tuple(expand_matrix(platforms, pythons, accelerators)),
        root=root,
        out_dir=flags.out or (root / (config.out or "locks")),
        index_url=index_url.rstrip("/"),
        pytorch_index=pytorch_index.rstrip("/"),
        family=family_names((*config.pytorch_family, *flags.pytorch_family)),
        database_url=flags.db or settings.database_url,
        resolver=flags.resolver or config.resolver or "uv",
        extras=flags.extras or config.extras,
        glibc=flags.glibc or config.glibc or "2.28",
        allow_partial=flags.allow_partial,
        refresh=flags.refresh,
        exclude_newer=flags.exclude_newer,
        concurrency=settings.concurrency,
        cache_dir=Path(cache) if cache else None,
        images=flags.images or config.images,
        dockerfile=flags.dockerfile or (root / config.dockerfile if config.dockerfile else None),
        conda_channel=settings.conda_channel,
        conda_channels=flags.conda_channels or config.conda_channels,
        conda_cache=settings.home / "cache" / "rattler",
        metadata_cache=settings.home / "cache" / "metadata",
    )


def _default_inputs(root: Path) -> tuple[Path, ...]:
    for name in ("requirements.in", "pyproject.toml", "environment.yml"):
        if (root / name).is_file():
            return (root / name,)
    raise UsageError(
        f"No inputs given and none found in {root}.",
        hint="Pass a requirements.in, pyproject.toml or environment.yml, or set inputs in "
        "lockd.toml.",
    )


def _project_name(root: Path) -> str:
    import tomllib

    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            name = tomllib.loads(pyproject.read_text()).get("project", {}).get("name")
        except (tomllib.TOMLDecodeError, OSError):
            name = None
        if isinstance(name, str) and name:
            return name
    return root.resolve().name
