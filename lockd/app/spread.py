"""The ``lockd spread`` use case: the packages a lockset locks differently across its
targets, and why.

Each target resolves on its own, so a matrix may lock numpy 2.2.6 for Python 3.10 and
2.5.5 for 3.12, or bring ``exceptiongroup`` in for 3.10 only. For every package whose
version is not the same on every target, each target that does not lock the highest
version (or does not lock the package at all) gets its reasons, first found first:

* ``accelerator``: the same version in another build (``torch 2.6.0+cu124`` / ``+cpu``);
* ``requirement``: a requirement on this target's graph excludes the higher version
  (another package's ``Requires-Dist`` line, or the user's own input);
* ``marker``: the requirement that brings the package in elsewhere has a marker that
  does not hold for this target;
* ``requirer``: what requires it elsewhere is not locked here, or is locked at another
  version (or build) that does not require it;
* ``requires-python``: every file of the higher version requires another Python
  (read from the index: ``data-requires-python``);
* ``wheels``: the higher version has no wheel for this target's Python, platform and
  glibc, and no sdist the lockset allowed to build (lockd locks wheels only unless
  ``--allow-build`` names the package);
* ``unknown``: none of those — the resolver's choice, bound by the rest of the resolution.

The lockset is read as ``lockd why`` reads it; the index is asked only for the two index
causes, and never with ``--offline``. Everything in the lockset may come from a pull
request: names and requirements are shown as text, never as markup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..builds import BuildPolicy, recorded_builds
from ..errors import PackageIndexError, UsageError
from ..indexes import IndexLink, link_version
from ..lockset import Lock, Lockset
from ..targets import Target, parse_target_id

LinksOf = Callable[[str, str], Sequence[IndexLink]]  # (index URL, package) -> its files
MAX_REASONS = 3  # per target and version: the first found are the telling ones


@dataclass(frozen=True, slots=True)
class SpreadRequest:
    """What ``lockd spread`` was asked (the lockset is chosen as ``lockd why`` chooses)."""

    database_url: str
    cwd: Path
    project: str | None = None
    lockset: str | None = None
    offline: bool = False


@dataclass(frozen=True, slots=True)
class Reason:
    """Why ``target`` locks ``version`` (``None``: not at all) rather than ``instead_of``."""

    target: str
    version: str | None
    instead_of: str | None  # the higher version locked elsewhere; None: the package's absence
    kind: str  # accelerator | requirement | marker | requirer | requires-python | wheels | unknown
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "version": self.version,
            "instead_of": self.instead_of,
            "kind": self.kind,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class Spread:
    """One package that is not locked the same way on every target."""

    name: str
    versions: Mapping[str, str | None]  # target -> version (None: not locked there)
    reasons: tuple[Reason, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": dict(self.versions),
            "reasons": [r.to_dict() for r in self.reasons],
        }


@dataclass(frozen=True, slots=True)
class SpreadAnswer:
    project: str
    lockset: str
    targets: tuple[str, ...]
    same: int  # packages locked at one version on every target
    packages: tuple[Spread, ...]
    offline: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "lockset": self.lockset,
            "targets": list(self.targets),
            "same_everywhere": self.same,
            "differ": [p.to_dict() for p in self.packages],
            "index_read": not self.offline,
        }


def spread(request: SpreadRequest) -> SpreadAnswer:
    """Read the lockset, ask its indexes what they need to be asked, and explain."""
    from .why import chosen_lockset

    lockset = chosen_lockset(request.database_url, request.cwd, request.project, request.lockset)
    if len(lockset.locks) < 2:
        raise UsageError(
            f"Lockset {lockset.hash[:12]} of {lockset.project} locks "
            f"{len(lockset.locks)} target{'s' if len(lockset.locks) != 1 else ''}: "
            "there is nothing to compare.",
            hint="Compile more than one target (--python, --platform, --cuda) to compare them.",
        )
    if request.offline:
        return explain_spread(lockset, None)
    from ..indexes import IndexClient

    client = IndexClient()
    try:
        return explain_spread(lockset, client.project_links)
    finally:
        client.close()


def explain_spread(lockset: Lockset, links_of: LinksOf | None) -> SpreadAnswer:
    """The packages that differ and why; ``links_of`` reads an index (None: offline)."""
    locks = lockset.locks
    versions = {lock.target: lock.packages() for lock in locks}
    names = sorted({name for found in versions.values() for name in found})
    differing = [n for n in names if len({versions[t].get(n) for t in versions}) > 1]
    pages = _read_pages(lockset, differing, links_of)
    context = _Context(str(lockset.extra.get("glibc", "2.28")), recorded_builds(lockset))
    packages = []
    for name in differing:
        per_target = {lock.target: versions[lock.target].get(name) for lock in locks}
        reasons = []
        for lock in locks:
            reasons += _reasons(
                name,
                lock,
                locks=locks,
                per_target=per_target,
                page=pages.get(name),
                context=context,
            )
        packages.append(Spread(name, per_target, tuple(reasons)))
    return SpreadAnswer(
        lockset.project,
        lockset.hash,
        tuple(lock.target for lock in locks),
        len(names) - len(differing),
        tuple(packages),
        offline=links_of is None,
    )


@dataclass(frozen=True, slots=True)
class _Context:
    glibc: str  # the lockset's manylinux floor, as compiled
    builds: BuildPolicy  # the sdists it allowed to build


def _read_pages(
    lockset: Lockset, names: Iterable[str], links_of: LinksOf | None
) -> dict[str, Sequence[IndexLink] | str]:
    """Each package's files on the index it was locked from (a string: why not read).

    Only packages locked at more than one version are read; conda records are not.
    """
    if links_of is None:
        return {}
    wanted: dict[str, str] = {}
    for name in names:
        found = {
            a.index
            for lock in lockset.locks
            for a in lock.artifacts
            if a.name == name and a.kind in ("wheel", "sdist")
        }
        if len({lock.packages().get(name) for lock in lockset.locks} - {None}) > 1 and found:
            wanted[name] = sorted(found)[0]
    if not wanted:
        return {}
    fetch = links_of

    def read(item: tuple[str, str]) -> tuple[str, Sequence[IndexLink] | str]:
        name, index = item
        try:
            return name, fetch(index, name)
        except PackageIndexError as err:
            return name, str(err)

    with ThreadPoolExecutor(max_workers=min(8, len(wanted))) as pool:
        return dict(pool.map(read, sorted(wanted.items())))


def _reasons(
    name: str,
    lock: Lock,
    *,
    locks: Sequence[Lock],
    per_target: Mapping[str, str | None],
    page: Sequence[IndexLink] | str | None,
    context: _Context,
) -> list[Reason]:
    mine = per_target[lock.target]
    target = _target(lock.target)
    if mine is None:
        texts = _absent(name, lock, locks, target)
        return [Reason(lock.target, None, None, kind, text) for kind, text in texts]
    out = []
    for higher in _higher(mine, per_target.values()):
        if Version(higher).public == Version(mine).public:
            texts = [("accelerator", f"{name} {mine} is this target's build of {higher}")]
        else:
            texts = _required_below(name, higher, lock) or [
                _index_cause(name, higher, target, page, context)
            ]
        out += [Reason(lock.target, mine, higher, kind, text) for kind, text in texts]
    return out


def _higher(mine: str, versions: Iterable[str | None]) -> list[str]:
    """The versions locked elsewhere that are higher than ``mine`` (another build of the
    same release is "higher" too: it is explained as the accelerator's)."""
    try:
        own = Version(mine)
    except InvalidVersion:
        return []
    out = set()
    for other in versions:
        if other is None or other == mine:
            continue
        try:
            theirs = Version(other)
        except InvalidVersion:
            continue
        if theirs.public == own.public or theirs > own:
            out.add(other)
    return sorted(out, key=Version)


def _required_below(name: str, higher: str, lock: Lock) -> list[tuple[str, str]]:
    """The requirements on this target's graph that exclude ``higher``."""
    if lock.graph is None:
        return []
    found = [
        ("requirement", f"your `{root.requirement}` ({root.source})")
        for root in lock.graph.inputs_of(name)
        if _excludes(root.requirement, higher)
    ]
    versions = lock.packages()
    found += [
        (
            "requirement",
            f"{edge.parent} {versions.get(edge.parent, '?')} requires `{edge.requirement}`",
        )
        for edge in lock.graph.requirers(name)
        if _excludes(edge.requirement, higher)
    ]
    return found[:MAX_REASONS]


def _index_cause(
    name: str,
    higher: str,
    target: Target | None,
    page: Sequence[IndexLink] | str | None,
    context: _Context,
) -> tuple[str, str]:
    """What the index says keeps ``higher`` from the target: its Python, its wheels."""
    if isinstance(page, str):
        return ("unknown", f"the index could not be read: {page}")
    if page is None or target is None:
        return ("unknown", "the resolver's choice (run without --offline to ask the index)")
    files = [link for link in page if _is(link, higher)]
    python = Version(target.python_version)
    usable = [link for link in files if _admits(link.requires_python, python)]
    if files and not usable:
        needs = sorted({link.requires_python or "" for link in files} - {""})
        return ("requires-python", f"{name} {higher} requires Python {' or '.join(needs)}")
    tags = target_tags(target, context.glibc)
    buildable = context.builds.allows(name)
    if files and not any(_fits(link.filename, tags, buildable) for link in usable):
        where = target.platform.name + (
            f", glibc {context.glibc}" if target.platform.os == "linux" else ""
        )
        refused = "" if buildable else " (and building it is not allowed)"
        return (
            "wheels",
            f"{name} {higher} has no wheel for Python {target.python_version} on {where}{refused}",
        )
    return ("unknown", "the resolver's choice: bound by the rest of this target's resolution")


def _absent(
    name: str, lock: Lock, locks: Sequence[Lock], target: Target | None
) -> list[tuple[str, str]]:
    """Why ``lock`` has no ``name`` that other locks have: what brings it in there."""
    here = lock.packages()
    env = target.marker_environment() if target is not None else None
    found: dict[str, str] = {}
    for other in locks:
        if other.graph is None or name not in other.packages():
            continue
        for root in other.graph.inputs_of(name):
            if env is not None and not _holds(root.requirement, env):
                text = f"your `{root.requirement}` ({root.source}) does not apply here"
                found.setdefault(text, "marker")
        for edge in other.graph.requirers(name):
            parent = edge.parent
            theirs = other.packages().get(parent)
            if parent not in here:
                found.setdefault(f"required by {parent}, which is not locked here", "requirer")
            elif here[parent] != theirs:
                text = f"required by {parent} {theirs}; {parent} {here[parent]} here does not"
                found.setdefault(text, "requirer")
            elif env is not None and not _holds(edge.requirement, env):
                text = f"{parent} {theirs} requires `{edge.requirement}`, which does not apply here"
                found.setdefault(text, "marker")
    if not found:
        return [("unknown", "the resolver's choice: nothing recorded here requires it")]
    return [(kind, text) for text, kind in list(found.items())[:MAX_REASONS]]


def target_tags(target: Target, glibc: str) -> frozenset[Tag]:
    """The wheel tags CPython of ``target`` installs on its platform (leniently: every
    macOS release, every glibc up to the lock's)."""
    major, minor = target.python
    interpreter = f"cp{major}{minor}"
    arch = target.platform.arch
    if target.platform.os == "linux":
        top = int(glibc.split(".")[1]) if "." in glibc else 28
        platforms = [f"manylinux_2_{m}_{arch}" for m in range(top, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        platforms += [f"{alias}_{arch}" for floor, alias in legacy.items() if top >= floor]
        platforms.append(f"linux_{arch}")
    elif target.platform.os == "macos":
        platforms = [
            f"macosx_{release}_0_{kind}"
            for release in range(16, 10, -1)
            for kind in ("arm64", "universal2")
        ]
        platforms += [f"macosx_10_{point}_universal2" for point in range(16, 8, -1)]
    else:
        platforms = ["win_amd64"]
    python = (major, minor)
    return frozenset(
        [
            *cpython_tags(python, abis=[interpreter, "abi3", "none"], platforms=platforms),
            *compatible_tags(python, interpreter, platforms),
        ]
    )


def _target(target_id: str) -> Target | None:
    try:
        return parse_target_id(target_id)
    except UsageError:
        return None  # a conda lock's or a forged id: no markers, no tags


def _requirement(text: str) -> Requirement | None:
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def _excludes(text: str, version: str) -> bool:
    req = _requirement(text)
    if req is None or not req.specifier:
        return False
    try:
        return not req.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def _holds(text: str, env: Mapping[str, str]) -> bool:
    req = _requirement(text)
    if req is None or req.marker is None:
        return True
    return _evaluate(req.marker, env)


def _evaluate(marker: Marker, env: Mapping[str, str]) -> bool:
    try:
        return marker.evaluate(dict(env))
    except (UndefinedComparison, UndefinedEnvironmentName):
        return False


def _is(link: IndexLink, version: str) -> bool:
    found = link_version(link)
    return found is not None and str(found) == str(Version(version))


def _admits(requires_python: str | None, python: Version) -> bool:
    if not requires_python:
        return True
    try:
        return SpecifierSet(requires_python).contains(python, prereleases=True)
    except InvalidSpecifier:
        return True  # pip and uv ignore a specifier they cannot read


def _fits(filename: str, tags: frozenset[Tag], buildable: bool) -> bool:
    if not filename.endswith(".whl"):
        return buildable  # an sdist, which the lockset may allow to build
    try:
        return bool(parse_wheel_filename(filename)[3] & tags)
    except InvalidWheelFilename:
        return False
