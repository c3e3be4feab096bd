"""Which packages may be built from source (pure).

Resolvers build a source distribution to learn its metadata, and installers
build it to install it; either way the package's own build code runs. lockd
refuses that unless the user allowed the package by name (``--allow-build
NAME``, ``allow-build = [...]``) or allowed every package (``"*"``). The
allowance is recorded with the lockset, so ``lockd drift`` applies the same one.

A package with no wheel for a target is not always a build question: when every
release the requirement admits declares a ``Requires-Python`` that excludes the
target's Python, building would not help, and ``python_conflict`` says so instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidName, canonicalize_name
from packaging.version import Version

from .errors import ResolutionError, UsageError

if TYPE_CHECKING:
    from .lockset import Lockset

ALL = "*"


@dataclass(frozen=True, slots=True)
class BuildPolicy:
    """The packages allowed to build from source (canonical names, or ``*``)."""

    allowed: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, names: Iterable[str], where: str = "--allow-build") -> BuildPolicy:
        """Validate names as given by a flag or the configuration."""
        allowed = set()
        for raw in names:
            name = raw.strip()
            if name == ALL:
                allowed.add(ALL)
                continue
            try:
                allowed.add(canonicalize_name(name, validate=True))
            except InvalidName:
                raise UsageError(
                    f"{where}: {raw!r} is not a package name.",
                    hint='Give a distribution name such as numpy, or "*" to allow every build.',
                ) from None
        return cls(frozenset(allowed))

    @property
    def everything(self) -> bool:
        return ALL in self.allowed

    def allows(self, name: str) -> bool:
        return self.everything or canonicalize_name(name) in self.allowed

    def union(self, other: BuildPolicy) -> BuildPolicy:
        return BuildPolicy(self.allowed | other.allowed)

    def to_list(self) -> list[str]:
        """Sorted, as recorded with a lockset and in the input key."""
        return sorted(self.allowed)


def refusal(target: str, packages: Iterable[str]) -> ResolutionError:
    """The one paragraph for packages that would have to be built to be locked."""
    names = sorted(set(packages))
    listed = ", ".join(names)
    flags = " ".join(f"--allow-build {name}" for name in names)
    config = ", ".join(f'"{name}"' for name in names)
    return ResolutionError(
        f"Target {target}: {listed} {'has' if len(names) == 1 else 'have'} no wheel that "
        "fits, only a source distribution, and building one runs the package's own code, "
        "which lockd does not do unless allowed.",
        target=target,
        hint=f"If you trust {'it' if len(names) == 1 else 'them'}, pass {flags} or set "
        f"allow-build = [{config}] in lockd.toml or [tool.lockd] "
        '("*" allows every package).',
    )


def python_conflict(
    target: str,
    python: str,
    requirement: tuple[str, str],
    releases: Iterable[tuple[Version, str | None]],
) -> ResolutionError | None:
    """The error for a package none of whose candidate files admit ``python``, or ``None``.

    ``requirement`` is the package's name and the specifier the user wrote
    (``("numpy", ">=2.3")``; empty when it is not a direct requirement);
    ``releases`` are the (version, Requires-Python) of every file its index
    lists. Only when every file of every version the specifier admits declares
    a Requires-Python that excludes ``python`` is that the answer: a file that
    declares none, or an unreadable one, leaves the question to the build refusal.
    """
    name, specifier = requirement
    try:
        wanted = SpecifierSet(specifier)
    except InvalidSpecifier:
        wanted = SpecifierSet()
    needs: set[str] = set()
    for version, requires_python in releases:
        if not wanted.contains(version, prereleases=True):
            continue
        try:
            if requires_python is None or SpecifierSet(requires_python).contains(Version(python)):
                return None
        except InvalidSpecifier:
            return None
        needs.add(requires_python)
    if not needs:
        return None
    return ResolutionError(
        f"Target {target}: {name}{specifier} needs Python {' or '.join(sorted(needs))} (every "
        f"release that fits declares it in Requires-Python), and this target is Python {python}; "
        "building from source would not change that.",
        target=target,
        hint=f"Drop Python {python} from the matrix (--python, python = in lockd.toml), or "
        f"require a {name} release that supports Python {python}.",
    )


def recorded_builds(lockset: Lockset) -> BuildPolicy:
    """The allowance a lockset was compiled with (none when it records none)."""
    allowed = lockset.extra.get("allow_build") or ()
    if isinstance(allowed, str) or not isinstance(allowed, list | tuple):
        allowed = ()
    return BuildPolicy.parse(map(str, allowed), f"lockset {lockset.hash[:12]} allow-build")


def rebuild_refusal(target: str, packages: Iterable[str]) -> ResolutionError:
    """A lock that installs sdists its lockset did not allow to build."""
    names = sorted(set(packages))
    listed = ", ".join(names)
    return ResolutionError(
        f"Target {target}: the lock installs {listed} from source, and building "
        f"{'it' if len(names) == 1 else 'them'} runs the package's own code, which the "
        "lockset was not compiled to allow; the rebuild was not attempted.",
        target=target,
        hint="If you trust "
        + ("it" if len(names) == 1 else "them")
        + ", recompile with "
        + " ".join(f"--allow-build {name}" for name in names)
        + " (or allow-build in lockd.toml) to record the allowance, or check with --no-rebuild.",
    )
