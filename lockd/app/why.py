"""The ``lockd why`` use case: every path from a direct input to a package, per target.

The lockset is chosen by ``record.chosen_lockset``. Reading the graph is pure
(``lockd.graph.paths_to``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from ..errors import NotFoundError, UsageError, excerpt
from ..graph import Paths, paths_to

DEFAULT_LIMIT = 20


@dataclass(frozen=True, slots=True)
class WhyRequest:
    """What ``lockd why`` was asked."""

    package: str
    database_url: str
    cwd: Path
    project: str | None = None
    lockset: str | None = None  # a recorded lockset's hash or unique prefix
    target: str | None = None
    limit: int = DEFAULT_LIMIT  # paths shown per target


@dataclass(frozen=True, slots=True)
class TargetPaths:
    """The answer for one target that locks the package."""

    target: str
    version: str
    paths: Paths
    unknown: tuple[str, ...]  # packages whose requirements were not read: paths may be missing

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "version": self.version,
            **self.paths.to_dict(),
            "unknown": list(self.unknown),
        }


@dataclass(frozen=True, slots=True)
class WhyAnswer:
    project: str
    lockset: str
    package: str
    targets: tuple[TargetPaths, ...]
    absent: tuple[str, ...]  # targets of the lockset that do not lock the package

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "lockset": self.lockset,
            "package": self.package,
            "targets": [t.to_dict() for t in self.targets],
            "not_in": list(self.absent),
        }


def why(request: WhyRequest) -> WhyAnswer:
    """Why ``request.package`` is in the lockset's locks (one target, or every one)."""
    from .record import chosen_lockset

    lockset = chosen_lockset(request.database_url, request.cwd, request.project, request.lockset)
    name = canonicalize_name(request.package)
    locks = lockset.locks
    if request.target is not None:
        locks = tuple(lock for lock in locks if lock.target == request.target)
        if not locks:
            raise NotFoundError(
                f"Target {excerpt(request.target)} is not in lockset {lockset.hash[:12]} of "
                f"{lockset.project}.",
                hint=f"Its targets: {', '.join(lockset.targets) or 'none'}.",
            )
    answers, absent = [], []
    for lock in locks:
        version = lock.packages().get(name)
        if version is None:
            absent.append(lock.target)
            continue
        if lock.graph is None:
            raise UsageError(
                f"Lockset {lockset.hash[:12]} of {lockset.project} was recorded without a "
                f"dependency graph (target {lock.target}).",
                hint="Run `lockd compile --refresh` to lock again and record why each "
                "package is there.",
            )
        paths = paths_to(lock.graph, name, limit=request.limit)
        answers.append(TargetPaths(lock.target, version, paths, lock.graph.unknown))
    if not answers:
        raise NotFoundError(
            f"{excerpt(request.package)} is not in "
            + (f"target {request.target}" if request.target else "any lock")
            + f" of lockset {lockset.hash[:12]} of {lockset.project}.",
            hint="Check the name; `lockd show` lists every locked package.",
        )
    return WhyAnswer(lockset.project, lockset.hash, name, tuple(answers), tuple(absent))
