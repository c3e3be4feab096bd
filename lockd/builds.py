"""Which packages may be built from source (pure).

Resolvers build a source distribution to learn its metadata, and installers
build it to install it; either way the package's own build code runs. lockd
refuses that unless the user allowed the package by name (``--allow-build
NAME``, ``allow-build = [...]``) or allowed every package (``"*"``). The
allowance is recorded with the lockset, so ``lockd drift`` applies the same one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.utils import InvalidName, canonicalize_name

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
