"""The resolver role: one abstract class, results as frozen values."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..builds import BuildPolicy
from ..routing import IndexPlan
from ..targets import Target


@dataclass(frozen=True, slots=True)
class Pin:
    """A version the previous lock chose for a package."""

    name: str
    version: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A wheel the backend picked while it resolves: it may still backtrack away from it."""

    name: str  # normalised
    version: str
    url: str  # without credentials


@dataclass(frozen=True, slots=True)
class ResolveRequest:
    """Everything a backend needs to lock one target.

    ``preferences`` are the previous lock's pins: the backend keeps each one that
    still satisfies the inputs, except with ``upgrade`` (none kept) or for the
    packages named in ``upgrade_packages`` (``NAME`` or ``NAME==VERSION``).
    ``promote`` names routed packages to declare as direct dependencies from the
    first run (what another target of the matrix needed promoted).
    ``watch``, when the backend can tell, hears of each wheel as it is picked, before
    the resolution is done (a hint for work that can start early: the answer is the
    ``Resolution``, which may hold other versions).
    """

    target: Target
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    plan: IndexPlan
    workdir: Path  # private scratch directory of this target
    glibc: str = "2.28"
    exclude_newer: str | None = None  # applied to indexes that publish upload times
    cache_dir: Path | None = None
    preferences: tuple[Pin, ...] = ()
    upgrade: bool = False
    upgrade_packages: tuple[str, ...] = ()
    builds: BuildPolicy = field(default_factory=BuildPolicy)  # which sdists may be built
    promote: frozenset[str] = frozenset()
    watch: Callable[[Candidate], None] | None = None


@dataclass(frozen=True, slots=True)
class ResolvedFile:
    url: str
    filename: str
    sha256: str | None
    upload_time: str | None = None
    size: int | None = None
    kind: str = "wheel"


@dataclass(frozen=True, slots=True)
class ResolvedPackage:
    name: str
    version: str
    files: tuple[ResolvedFile, ...]


@dataclass(frozen=True, slots=True)
class Resolution:
    """A backend's answer for one target, before lockd verifies it."""

    target: Target
    packages: tuple[ResolvedPackage, ...]
    promoted: frozenset[str] = frozenset()  # routed packages declared direct to route them


class Resolver(abc.ABC):
    """A resolution backend (uv, pip-tools)."""

    name: str
    honours_exclude_newer = True  # a cut-off the backend cannot apply must not be recorded

    @abc.abstractmethod
    def version(self) -> str:
        """The backend's version, recorded with every lockset."""

    def check(self, target: Target) -> None:  # noqa: B027 - optional hook
        """Raise ``UsageError`` if this backend cannot lock ``target`` at all."""

    @abc.abstractmethod
    def resolve(self, request: ResolveRequest) -> Resolution:
        """Lock one target; raise ``ResolutionError`` with a one-paragraph reason."""
