"""The lint use case: read Dockerfiles, find the lock they should install, run the rules.

The lockset is the project's latest in the database with ``--project``; else
the ``lockd.json`` of this directory's lock folder (``out`` in lockd.toml,
default ``locks/``); else none, and only the rules that need no lock run.
The rules themselves are pure (``lockd.lint``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NotFoundError, UsageError
from ..images import BuildOptions
from ..lint import FileReport, lint_text, lock_facts
from ..lockset import Lockset


@dataclass(frozen=True, slots=True)
class LintRequest:
    """What ``lockd lint`` was asked."""

    paths: tuple[Path, ...]
    database_url: str
    cwd: Path
    project: str | None = None
    target: str | None = None
    options: BuildOptions = field(default_factory=BuildOptions)


def lint_files(request: LintRequest) -> list[FileReport]:
    """One report per file, in the order given."""
    if not request.paths:
        raise UsageError("Name at least one Dockerfile.", hint="lockd lint Dockerfile")
    texts = [(path, _read(path)) for path in request.paths]  # every file readable first
    lockset = _lockset(request)
    return [
        lint_text(
            text,
            str(path),
            options=request.options,
            lock=lock_facts(lockset, text, request.target) if lockset else None,
        )
        for path, text in texts
    ]


def _read(path: Path) -> str:
    from ..inputs.files import read_lossless_text

    return read_lossless_text(path, None, kind="The Dockerfile")


def _lockset(request: LintRequest) -> Lockset | None:
    if request.project is not None:
        from ..store import Store

        store = Store(request.database_url)
        try:
            found = store.latest(request.project)
        finally:
            store.close()
        if found is None:
            raise NotFoundError(
                f"No lockset recorded for project {request.project!r}.",
                hint="Run `lockd compile` first, or drop --project to lint without the lock.",
            )
        return found
    from ..lockfiles.manifest import MANIFEST, read_manifest
    from ..settings import load_project_config

    config = load_project_config(request.cwd)
    manifest = request.cwd / (config.out or "locks") / MANIFEST
    lockset = read_manifest(manifest)
    if lockset is None and request.target is not None:
        raise UsageError(
            f"--target {request.target} needs a lockset, and {manifest} does not exist.",
            hint="Pass --project NAME, or run lockd lint where locks/lockd.json is.",
        )
    return lockset
