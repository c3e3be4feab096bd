"""The ``lockd dockerfile`` use case: a recorded lockset -> a Dockerfile and .dockerignore.

The lockset is the project's latest in the database; the runtime base is
``--base`` (resolved and pinned now) or the one base image recorded with the
lockset. A base whose Python is not the target's is refused when its tag or
its image config (``PYTHON_VERSION`` in ``Env``, as the official images set
it) says so. The lock file the Dockerfile copies must be on disk, as recorded.
The text itself comes from ``report.dockerfile`` (pure).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import FormatError, NotFoundError, UsageError
from ..images import RegistryClient, RegistryOptions, ResolvedImage
from ..lint.baseimage import reference_facts, version_text
from ..lockset import Lock, Lockset
from ..report.dockerfile import DockerfileSpec, render_dockerfile, render_dockerignore
from ..targets import Target, parse_target_id
from .record import latest


@dataclass(frozen=True, slots=True)
class DockerfileRequest:
    """What ``lockd dockerfile`` was asked."""

    target: str
    database_url: str
    cwd: Path
    project: str | None = None
    base: str | None = None  # a reference to resolve; None: the lockset's recorded base
    output: str | None = None  # -o as given (the header's command to regenerate it)


@dataclass(frozen=True, slots=True)
class GeneratedDockerfile:
    """The two files, and what they were made from."""

    dockerfile: str
    dockerignore: str
    spec: DockerfileSpec
    python_known: bool  # the base's Python was checked against the target's


def generate_dockerfile(
    request: DockerfileRequest, registry: RegistryOptions | None = None
) -> GeneratedDockerfile:
    """Render the Dockerfile for one target of the latest lockset."""
    lockset = latest(request.database_url, request.project)
    target, lock = _target(lockset, request.target)
    lock_path = _lock_file(request.cwd, lockset, lock, target)
    with RegistryClient(registry or RegistryOptions.from_env()) as client:
        base = _base(client, lockset, request.base)
        base.for_platform(target.platform)  # RegistryError naming what it offers instead
        python_known = _check_python(client, base, target)
    spec = DockerfileSpec(
        project=lockset.project,
        lockset=lockset.hash,
        target=target.id,
        base_name=base.reference.split("@", 1)[0],
        base_digest=base.index_digest,
        lock_path=lock_path,
        wheels_only=all(a.kind == "wheel" for a in lock.artifacts),
        created=lockset.provenance.created_at,
        revision=lockset.provenance.git_commit,
        lockd_version=__version__,
        base_flag=request.base,
        output=request.output or "Dockerfile",
    )
    return GeneratedDockerfile(
        render_dockerfile(spec), render_dockerignore(spec), spec, python_known
    )


def dockerignore_path(dockerfile: Path) -> Path:
    """Where BuildKit looks for the ignore file of ``dockerfile``.

    ``./Dockerfile`` uses the context's ``.dockerignore``; any other file its own
    ``<name>.dockerignore`` beside it (BuildKit reads that one first).
    """
    if dockerfile.name == "Dockerfile" and dockerfile.resolve().parent == Path.cwd().resolve():
        return dockerfile.parent / ".dockerignore"
    return dockerfile.parent / f"{dockerfile.name}.dockerignore"


def _target(lockset: Lockset, name: str) -> tuple[Target, Lock]:
    lock = lockset.lock(name)
    if lock is None:
        raise NotFoundError(
            f"Target {name} is not in lockset {lockset.hash[:12]} of {lockset.project}.",
            hint=f"Its targets: {', '.join(lockset.targets) or 'none'}.",
        )
    if f"{name}.requirements.txt" not in lock.files:
        raise UsageError(
            f"Target {name} has no requirements lock (a conda target?): lockd dockerfile "
            "installs pip locks.",
            hint="Choose a pip target of the lockset.",
        )
    target = parse_target_id(name)
    if target.platform.os != "linux":
        raise UsageError(
            f"Target {name} is not a Linux target: container images run Linux.",
            hint="Choose a linux-x86_64 or linux-aarch64 target.",
        )
    return target, lock


def _lock_file(cwd: Path, lockset: Lockset, lock: Lock, target: Target) -> str:
    from ..lockfiles.files import MAX_LOCK_FILE_BYTES, read_regular_file
    from ..settings import load_project_config

    config = load_project_config(cwd)
    out = config.out or "locks"
    name = f"{target.id}.requirements.txt"
    path = config.root / out / name
    recorded = lock.files.get(name)
    # A bounded read of a real file: the lock folder may come from a pull request.
    data = read_regular_file(path, MAX_LOCK_FILE_BYTES)
    if data is None:
        raise UsageError(
            f"The lock file {path} is not there: the Dockerfile copies it into the build.",
            hint="Run lockd dockerfile from the project's directory, after `lockd compile`.",
        )
    if hashlib.sha256(data).hexdigest() != recorded:
        raise UsageError(
            f"{path} is not the lock recorded in lockset {lockset.hash[:12]}: the image would "
            "carry labels for one lock and install another.",
            hint="Run `lockd compile` (or check out the locks that match the record).",
        )
    return (Path(out) / name).as_posix()


def _base(client: RegistryClient, lockset: Lockset, reference: str | None) -> ResolvedImage:
    if reference is not None:
        return client.resolve(reference)
    recorded = []
    for data in lockset.images:
        try:
            recorded.append(ResolvedImage.from_dict(data))
        except FormatError:
            continue
    runtime = [i for i in recorded if not reference_facts(i.reference).devel]
    if len(runtime) == 1:
        return runtime[0]
    names = ", ".join(i.reference for i in recorded) or "none"
    raise UsageError(
        f"Lockset {lockset.hash[:12]} records {len(runtime) or 'no'} runtime base image(s) "
        f"({names}): lockd cannot tell which one the image should run on.",
        hint="Pass --base REF (for example python:3.11-slim); lockd resolves and pins it.",
    )


def _check_python(client: RegistryClient, base: ResolvedImage, target: Target) -> bool:
    python = reference_facts(base.reference).python
    if python is None:
        config = client.image_config(base.pinned, target.platform.oci_platform)
        env = (config.get("config") or {}).get("Env") or []
        for item in env:
            name, _, value = str(item).partition("=")
            parts = value.split(".")
            if name == "PYTHON_VERSION" and len(parts) >= 2 and all(p.isdigit() for p in parts[:2]):
                python = int(parts[0]), int(parts[1])
    if python is None:
        return False
    if python != target.python:
        raise UsageError(
            f"The base image {base.reference} has Python {version_text(python)}, but target "
            f"{target.id} was locked for Python {target.python_version}: its wheels would not "
            "install.",
            hint=f"Choose a base with Python {target.python_version} "
            f"(python:{target.python_version}-slim), or lock for the base's Python.",
        )
    return True
