"""The compile use case: inputs -> resolved, verified, written and recorded lockset.

``request`` turns flags and configuration into a ``LockRequest``; ``pip`` locks
the pip targets and ``conda`` the conda ones; this module decides what to do
(no-op, images, partial failures), writes the files atomically and records the
lockset. The decisions themselves (routing, verification, rendering) are pure
functions in their own modules.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import __version__
from ..errors import (
    FormatError,
    MatrixError,
    UnsafeFileError,
    UsageError,
)
from ..inputs import PipInputs, is_conda_input, load_pip_inputs
from ..lockfiles.manifest import MANIFEST, read_manifest, render_manifest
from ..lockset import (
    Failure,
    InputFile,
    Lock,
    Lockset,
    Provenance,
    diff_locksets,
    input_key,
)
from ..resolvers import make_resolver
from ..urls import strip_credentials
from .freshness import Expected, LockCheck, staleness
from .request import CompileFlags, LockRequest, build_lock_request

# What only resolving needs (the pip machinery, staged writes, threads) is imported
# where it is used: `lockd compile --check` runs on every commit of a pre-commit hook.
if TYPE_CHECKING:
    from concurrent.futures import Future

    from ..inputs.environment import CondaEnvironment
    from ..resolvers.interface import Resolver
    from ..store import Store
    from .conda import CondaOutcome
    from .pip import ProgressHook


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
    # Per target, how the pins moved from the lockset on disk (``diff_locksets`` entries).
    changes: Mapping[str, Any] = field(default_factory=dict)
    # Base images against the lockset on disk: added, removed, changed (``diff_locksets``).
    image_changes: Mapping[str, Any] = field(default_factory=dict)
    # The lockset locks/lockd.json named when the database held none of the project:
    # the new lockset starts a chain of its own there (another database has the old one).
    unrecorded_parent: str | None = None


@dataclass(frozen=True, slots=True)
class _Prepared:
    """The inputs read and the input key computed: everything before resolving."""

    request: LockRequest  # with a requirements file's -i applied
    resolver: Resolver
    pip_paths: tuple[Path, ...]
    environment: tuple[CondaEnvironment, InputFile] | None
    inputs: PipInputs
    base: _BaseImages
    expected: Expected
    on_disk: Lockset | None  # the lockset in the output directory, if readable
    unreadable: str | None  # why the manifest there is not one (edited, wrong field, …)


def check_locks(request: LockRequest) -> LockCheck:
    """``lockd compile --check``: are the locks on disk current? Nothing is resolved,
    written or recorded, and the database is not opened."""
    prepared = _prepare(request)
    return LockCheck(
        request.out_dir / MANIFEST,
        prepared.on_disk.hash if prepared.on_disk else None,
        staleness(prepared.on_disk, prepared.expected, request.out_dir, prepared.unreadable),
    )


def compile_lockset(request: LockRequest, progress: ProgressHook | None = None) -> CompileResult:
    """Resolve, verify, write and record one lockset (all-or-nothing unless partial)."""
    from ..lockfiles.files import StagedFiles, prepare_output_directory
    from ..lockfiles.names import is_lockd_file

    prepared = _prepare(request)
    # Before anything is resolved or recorded: the output directory is a real,
    # writable directory, and a killed run's temporaries there are gone.
    prepare_output_directory(request.out_dir, is_lockd_file)
    request, resolver = prepared.request, prepared.resolver
    inputs, on_disk = prepared.inputs, prepared.on_disk
    current = (
        not request.refresh
        and not request.moves_pins
        and on_disk is not None
        and not staleness(on_disk, prepared.expected, request.out_dir)
    )
    if current and on_disk is not None:
        from ..store.head import UNKNOWN, latest_hash

        # A no-op when the database recorded this lockset last: asked without opening
        # the store where it can be (a SQLite file), or by the store below.
        recorded_hash = latest_hash(request.database_url, request.project)
        if recorded_hash == on_disk.hash:
            return CompileResult(on_disk, unchanged=True)
        current = recorded_hash == UNKNOWN
    from .pip import resolve_all

    # Importing SQLModel and opening (maybe migrating) the database takes about a
    # second: it happens in the background while uv resolves. The project's newest
    # lockset is read there too: the parent this compile starts from (if another
    # compile records first, the store refuses this one rather than fork the chain).
    opening = _in_background(_open_store, request.database_url, request.project)
    try:
        if current:
            recorded = opening.result().parent
            if recorded is not None and on_disk is not None and recorded.hash == on_disk.hash:
                return CompileResult(recorded, unchanged=True)
        started = datetime.now(UTC).replace(microsecond=0)
        # Images first: a wrong tag fails in a second rather than after every target
        # resolved, and a RegistryError here leaves nothing written or recorded.
        images = _resolve_images(prepared.base)
        outcomes = (
            resolve_all(request, inputs, resolver, progress, on_disk) if prepared.pip_paths else []
        )
        conda = _lock_conda(request, prepared.environment) if prepared.environment else None
        if conda is not None and conda.pip_targets:
            # The pip: section, for the Python each conda solution chose.
            section = replace(request, targets=tuple(conda.pip_targets))
            outcomes += resolve_all(section, inputs, resolver, progress, on_disk)
        store, previous = opening.result()
        failures = [o.error for o in outcomes if o.error is not None]
        failures += conda.failures if conda else []
        total = len(outcomes) + (len(conda.locks) + len(conda.failures) if conda else 0)
        if failures and (not request.allow_partial or len(failures) == total):
            if total == 1:
                raise failures[0]
            raise MatrixError(
                failures,
                total=total,
                suggest_partial=not request.allow_partial and len(failures) < total,
            )
        conda_locks = tuple(conda.locks) if conda else ()
        _check_upgrade_names(
            request.upgrade_packages,
            [o.lock for o in outcomes if o.lock is not None] + list(conda_locks),
        )
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
            input_key=prepared.expected.key,
            provenance=_provenance(request.root, started),
            locks=tuple(o.lock for o in outcomes if o.lock is not None) + conda_locks,
            failures=tuple(Failure(o.target.id, o.error.render()) for o in outcomes if o.error)
            + tuple(
                Failure(f.target or "conda", f.render()) for f in (conda.failures if conda else ())
            ),
            images=images,
            parent=previous.hash if previous else None,
            extra={
                **prepared.expected.options,
                **({"conda": conda.summary()} if conda else {}),
            },
        )
        files = {name: data for o in outcomes for name, data in o.files.items()}
        files.update(conda.files if conda else {})
        files[MANIFEST] = render_manifest(lockset)
        stale = [name for lock in (on_disk.locks if on_disk else ()) for name in lock.files]
        with StagedFiles(request.out_dir, files, last=MANIFEST, remove=stale) as staged:
            store.record_lockset(lockset, files)
            written = staged.commit()
        diff = diff_locksets(on_disk, lockset) if on_disk else None
        return CompileResult(
            lockset,
            unchanged=False,
            written=tuple(written),
            failures=lockset.failures,
            changes=diff["targets"] if diff else {},
            image_changes=diff["images"] if diff else {},
            unrecorded_parent=on_disk.hash if on_disk is not None and previous is None else None,
        )
    finally:
        if opening.done() and opening.exception() is None:
            opening.result().store.close()


def _prepare(request: LockRequest) -> _Prepared:
    resolver = make_resolver(request.resolver)
    for target in request.targets:
        resolver.check(target)
    if request.exclude_newer and not resolver.honours_exclude_newer:
        raise UsageError(
            f"The {resolver.name} resolver cannot resolve as of --exclude-newer.",
            hint="Use --resolver uv, or drop --exclude-newer.",
        )
    pip_paths = tuple(p for p in request.inputs if not is_conda_input(p))
    environment = _read_environment(request)
    inputs = _pip_inputs(request, pip_paths, environment)
    if inputs.index_url is not None and not request.index_given:
        request = replace(request, index_url=inputs.index_url)  # a requirements file's -i
    base = _base_images(request)
    expected = Expected(
        key=_input_key(request, inputs, resolver, base),
        inputs=inputs.files,
        targets=None if environment else tuple(t.id for t in request.targets),
        resolver=resolver.name,
        resolver_version=resolver.version(),
        indexes=_public_indexes(request),
        options={
            "constraints": list(inputs.constraints),
            "glibc": request.glibc,
            "family": sorted(request.family),
            **_selection(request),
            **({"dockerfile": base.dockerfile.to_dict()} if base.dockerfile else {}),
            # absent, not empty, when nothing is allowed: older lockset hashes stay valid
            **({"allow_build": request.builds.to_list()} if request.builds.allowed else {}),
        },
    )
    return _Prepared(
        request,
        resolver,
        pip_paths,
        environment,
        inputs,
        base,
        expected,
        *_previous_manifest(request.out_dir),
    )


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
        return load_pip_inputs(pip_paths, request.root, request.extras, request.groups)
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
        pip = load_pip_inputs(pip_paths, request.root, request.extras, request.groups)
        return replace(pip, files=(*pip.files, env_file))
    from ..inputs.requirements import parse_requirement_lines, problems_error

    section = parse_requirement_lines(
        (f"{env_file.path}:{line}", text)
        for line, text in zip(env.pip_lines, env.pip_requirements, strict=True)
    )
    if section.problems:
        raise problems_error(section.problems)
    from ..graph import DirectInput

    direct = tuple(DirectInput(r, f"{env_file.path} (pip:)") for r in section.requirements)
    return PipInputs(section.requirements, (), (env_file,), section.index_url, direct)


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


def _previous_manifest(out_dir: Path) -> tuple[Lockset | None, str | None]:
    """The manifest on disk, or why it is not a lockset (what ``--check`` says); an
    unreadable or edited one is simply replaced by a compile, one that leads outside
    the output directory (hostile input: ``UnsafeFileError``) is refused."""
    try:
        return read_manifest(out_dir / MANIFEST), None
    except UnsafeFileError:
        raise
    except FormatError as exc:
        return None, exc.message


class _Opened(NamedTuple):
    store: Store
    parent: Lockset | None  # the project's newest lockset when the compile started


def _open_store(url: str, project: str) -> _Opened:
    from ..processes import give_way

    give_way()  # this thread runs beside uv: on busy cores, uv first
    import httpx  # noqa: F401 - warms the import the verification step needs next

    from ..store import Store

    store = Store(url)
    try:
        return _Opened(store, store.latest(project))
    except BaseException:
        store.close()
        raise


def _in_background(function: Callable[[str, str], _Opened], *args: str) -> Future[_Opened]:
    from concurrent.futures import ThreadPoolExecutor

    executor = ThreadPoolExecutor(max_workers=1)
    future = executor.submit(function, *args)
    executor.shutdown(wait=False)
    return future


def _base_images(request: LockRequest) -> _BaseImages:
    """``--image`` references and the Dockerfile's real ``FROM`` images (not stages, not scratch).

    Every reference is parsed here, so a malformed one is a usage error before any work.
    """
    if not request.images and request.dockerfile is None:
        return _BaseImages()  # nothing to import either
    from ..images import (
        BuildOptions,
        FromKind,
        parse_reference,
        read_dockerfile,
        require_resolved,
    )

    references = list(request.images)
    dockerfile = None
    if request.dockerfile is not None:
        options = BuildOptions(build_args=request.build_args)
        text, instructions = read_dockerfile(request.dockerfile, options, root=request.root)
        require_resolved(instructions, str(request.dockerfile))
        references += [i.reference for i in instructions if i.kind is FromKind.IMAGE]
        digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
        # read_dockerfile refused a path outside the project: it is relative to it.
        relative = request.dockerfile.resolve().relative_to(request.root.resolve())
        dockerfile = InputFile(relative.as_posix(), digest)
    for reference in references:
        parse_reference(reference)
    return _BaseImages(tuple(sorted({r.strip() for r in references})), dockerfile)


def _resolve_images(base: _BaseImages) -> tuple[dict[str, Any], ...]:
    """Each base image's record (``ResolvedImage.to_dict``), sorted by reference."""
    if not base.references:
        return ()
    from ..images import RegistryOptions, resolve_images

    return tuple(i.to_dict() for i in resolve_images(base.references, RegistryOptions.from_env()))


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
    # Extras, groups and routes are left out when there are none, so that the keys of
    # locksets that have none stay what they were.
    selection = [_selection(request)] if _selection(request) else []
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
            *selection,
            # Left out when nothing is allowed, as for images. --upgrade is not part of
            # the key: it forces a resolution, and the next plain compile is a no-op.
            *([["allow-build", request.builds.to_list()]] if request.builds.allowed else []),
        ]
    )


def _public_indexes(request: LockRequest) -> dict[str, str]:
    out = {"default": strip_credentials(request.index_url)}
    out["pytorch"] = (
        request.pytorch_index
        if request.pytorch_index == "pypi"
        else strip_credentials(request.pytorch_index)
    )
    out.update({index.name: index.public_url for index in request.private_indexes})
    return out


def _selection(request: LockRequest) -> dict[str, Any]:
    """What the lockset records beyond the files: extras, groups, per-package routes.

    Drift reads ``routes`` (index name -> packages; the URLs are in ``indexes``)
    to resolve and re-check with the same routing as compile.
    """
    out: dict[str, Any] = {}
    if request.extras:
        out["extras"] = sorted(request.extras)
    if request.groups:
        out["groups"] = sorted(request.groups)
    if request.private_indexes:
        out["routes"] = {i.name: sorted(i.packages) for i in request.private_indexes}
    return out


def _provenance(root: Path, when: datetime) -> Provenance:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no") if commit else None
    return Provenance(
        user=user,
        host=socket.gethostname(),
        created_at=_iso(when),
        git_commit=commit or None,
        lockd_version=__version__,
        git_dirty=bool(status) if status is not None else None,
    )


def _git(root: Path, *args: str) -> str | None:
    """A git command's output in ``root``; ``None`` outside a repository or without git."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "CompileFlags",
    "CompileResult",
    "LockCheck",
    "LockRequest",
    "build_lock_request",
    "check_locks",
    "compile_lockset",
]


# -- flags + configuration -> request ------------------------------------------------


def _check_upgrade_names(upgrades: Sequence[str], locks: Sequence[Lock]) -> None:
    """``--upgrade-package`` names no lock holds moved nothing: a typo, said before recording."""
    import difflib
    import re

    locked = {name for lock in locks for name in lock.packages()}
    names = [re.split(r"[^a-z0-9-]", upgrade, maxsplit=1)[0] for upgrade in upgrades]
    unknown = [name for name in names if name not in locked]
    if not unknown:
        return
    close = [m for name in unknown for m in difflib.get_close_matches(name, locked, n=1)]
    raise UsageError(
        f"--upgrade-package {', '.join(unknown)}: no target locks a package of "
        f"{'that name' if len(unknown) == 1 else 'those names'}, so nothing would move; "
        "nothing was written or recorded.",
        hint=f"Did you mean {', '.join(close)}?"
        if close
        else "`lockd show` lists every locked package.",
    )
