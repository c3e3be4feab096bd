"""The ``lockd spread`` use case: the packages a lockset locks differently across its
targets, and why.

Each target resolves on its own, so a matrix may lock numpy 2.2.6 for Python 3.10 and
2.5.5 for 3.12, or bring ``exceptiongroup`` in for 3.10 only. Locks are compared with
locks of their kind: pip targets with pip targets, conda environments with conda
environments (a conda environment's ``pip:`` section is a pip lock of its own). For
every package whose version is not the same on every lock of a kind, each target that
does not lock the highest release, locks another build of it, or does not lock the
package at all gets its reasons (a requirement and an index cause both, when both hold):

* ``accelerator``: one row per target whose build of a release differs from other
  targets' (``+cpu``/``+cu124``); ``build``: the same for local labels that name no
  accelerator;
* ``requirement``: a requirement on this target's graph excludes the higher version
  (another package's ``Requires-Dist`` line, or the user's own input);
* ``marker``: what brings the package in elsewhere has a marker that does not hold here;
* ``requirer``: what requires it elsewhere is not locked here, is locked at another
  version (or build) that does not require it, or brings it only with an extra that
  nothing here asks for;
* ``index`` (read from the index this target locked the package from, as of the
  lockset's cut-off): the higher version is not on it, or was uploaded after the cut-off;
  ``requires-python``: every file of it requires another Python; ``wheels``: no wheel for
  this target's Python, platform and glibc, and no sdist the lockset allowed to build;
* ``unknown``: none of those — the resolver's choice, bound by the rest of the resolution
  (or lockd could not tell: no graph recorded, an index it could not read).

The lockset may come from a pull request: names and requirements are shown as text,
never as markup, and only ``http(s)`` indexes are asked, for valid project names.
``--offline`` asks nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import (
    InvalidName,
    canonicalize_name,
)
from packaging.version import InvalidVersion, Version

from ..builds import BuildPolicy, recorded_builds
from ..errors import LockdError, PackageIndexError, UsageError
from ..graph.build import marker_holds, parse_requirement
from ..indexes import IndexLink, link_version, wheel_fits
from ..lockset import Lock, Lockset
from ..targets import Target, parse_target_id

Kind = Literal[
    "accelerator",
    "build",
    "requirement",
    "marker",
    "requirer",
    "index",
    "requires-python",
    "wheels",
    "unknown",
]
LinksOf = Callable[[str, str], Sequence[IndexLink]]  # (index URL, package) -> its files
Page = Sequence[IndexLink] | str  # the files an index lists, or why they were not read
MAX_REASONS = 3  # per target and version: the first found are the telling ones
MAX_GLIBC_MINOR = 40  # manylinux_2_N tags considered, whatever a lockset claims
_ACCELERATOR_LABEL = re.compile(r"cpu|cu\d+|rocm[0-9.]+|xpu")
_NO_GRAPH = "recorded without a dependency graph (`lockd compile --refresh` records one)"


@dataclass(frozen=True, slots=True)
class SpreadRequest:
    """What ``lockd spread`` was asked (the lockset is chosen by ``record.chosen_lockset``)."""

    database_url: str
    cwd: Path
    project: str | None = None
    lockset: str | None = None
    offline: bool = False
    environ: Mapping[str, str] = field(default_factory=dict)  # credentials, as drift reads them


@dataclass(frozen=True, slots=True)
class Reason:
    """Why ``target`` locks ``version`` (``None``: not at all) rather than ``instead_of``."""

    target: str
    version: str | None
    instead_of: str | None  # the higher version locked elsewhere; None: the package's absence
    kind: Kind
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
    """One package that is not locked the same way on every lock of its kind."""

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
    """Every package that differs across the compared locks, and how many agree."""

    project: str
    lockset: str
    targets: tuple[str, ...]  # the locks compared (each with the others of its kind)
    same: int  # packages locked at one version on every lock of their kind
    packages: tuple[Spread, ...]
    offline: bool
    unread: tuple[str, ...] = ()  # indexes asked that did not answer (credentials stripped)
    failed: tuple[str, ...] = ()  # targets the lockset records as failed (--allow-partial)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "lockset": self.lockset,
            "targets": list(self.targets),
            "same_everywhere": self.same,
            "differ": [p.to_dict() for p in self.packages],
            "index_asked": not self.offline,
            "indexes_not_read": list(self.unread),
            "failed_targets": list(self.failed),
        }


def spread(request: SpreadRequest) -> SpreadAnswer:
    """Read the lockset, ask its indexes what only they can say, and explain."""
    from .record import chosen_lockset

    lockset = chosen_lockset(request.database_url, request.cwd, request.project, request.lockset)
    if request.offline or not any(len(group) > 1 for group in _kinds(lockset.locks)):
        return explain_spread(lockset, None)
    from ..indexes import IndexClient

    with_credentials = _credentials(lockset, request)
    client = IndexClient()

    def links_of(index: str, name: str) -> Sequence[IndexLink]:
        return client.project_links(with_credentials(index), name)

    try:
        return explain_spread(lockset, links_of)
    finally:
        client.close()


def _credentials(lockset: Lockset, request: SpreadRequest) -> Callable[[str], str]:
    """A recorded index URL with the credentials configured for it (as drift finds them:
    lockd.toml, ``LOCKD_*_URL``, uv's ``UV_INDEX_<NAME>_*``), only for that very URL."""
    from ..urls import strip_credentials
    from .drift.indexes import configured_index_urls, index_plan

    configured = configured_index_urls(request.cwd, request.environ)
    known: dict[str, str] = {}
    for lock in lockset.locks:
        target = _target(lock.target)
        if target is None or "default" not in lockset.indexes:
            continue
        try:
            plan = index_plan(lockset, target, configured, request.environ)
        except (LockdError, AttributeError, TypeError, ValueError):
            continue  # a lockset whose routes are not as lockd writes them: no credentials
        for url in plan.urls():
            known.setdefault(strip_credentials(url), url)
    return lambda recorded: known.get(recorded, recorded)


def explain_spread(lockset: Lockset, links_of: LinksOf | None) -> SpreadAnswer:
    """The packages that differ and why; ``links_of`` reads an index (None: offline)."""
    context = _Context(
        glibc_floor(lockset.extra.get("glibc")),
        recorded_builds(lockset),
        _moment(lockset.cutoff),
        offline=links_of is None,
    )
    compared: list[tuple[Sequence[Lock], str, dict[str, str | None]]] = []
    same = 0
    for locks in _kinds(lockset.locks):
        if len(locks) < 2:
            continue
        versions = [lock.packages() for lock in locks]
        names = sorted({name for found in versions for name in found})
        differing = [n for n in names if len({_key(found.get(n)) for found in versions}) > 1]
        same += len(names) - len(differing)
        targets = [lock.target for lock in locks]
        compared += [
            (locks, name, {t: v.get(name) for t, v in zip(targets, versions, strict=True)})
            for name in differing
        ]
    pages = _read_pages(_wanted(compared), links_of)
    packages = []
    for group, name, per_target in compared:
        reasons: list[Reason] = []
        for lock in group:
            reasons += _reasons(
                name, lock, locks=group, per_target=per_target, pages=pages, context=context
            )
        packages.append(Spread(name, per_target, tuple(reasons)))
    return SpreadAnswer(
        lockset.project,
        lockset.hash,
        tuple(lock.target for locks in _kinds(lockset.locks) if len(locks) > 1 for lock in locks),
        same,
        tuple(packages),
        offline=links_of is None,
        unread=tuple(
            sorted({index for (index, _), page in pages.items() if isinstance(page, str)})
        ),
        failed=tuple(failure.target for failure in lockset.failures),
    )


@dataclass(frozen=True, slots=True)
class _Context:
    glibc: str  # the lockset's manylinux floor, as compiled
    builds: BuildPolicy  # the sdists it allowed to build
    cutoff: datetime | None  # files uploaded later were not there for the resolver
    offline: bool


def _kinds(locks: Sequence[Lock]) -> list[list[Lock]]:
    """The pip locks and the conda locks: each compared only with its own kind."""
    pip = [lock for lock in locks if not lock.is_conda()]
    return [pip, [lock for lock in locks if lock.is_conda()]]


def _key(version: str | None) -> object:
    """What makes two versions the same (``1.0`` is ``1.0.0``); raw text if not PEP 440."""
    if version is None:
        return None
    try:
        return Version(version)
    except InvalidVersion:
        return version


def _index_of(lock: Lock, name: str) -> str | None:
    return next(
        (a.index for a in lock.artifacts if a.name == name and a.kind in ("wheel", "sdist")),
        None,
    )


def _wanted(
    compared: Iterable[tuple[Sequence[Lock], str, Mapping[str, str | None]]],
) -> set[tuple[str, str]]:
    """(index, package) pages worth reading: a target's own index for a package it locks
    below another target's release (another build of the same release needs none)."""
    wanted = set()
    for locks, name, per_target in compared:
        releases = [(lock, _release(per_target[lock.target])) for lock in locks]
        found = [release for _, release in releases if release is not None]
        if len(set(found)) < 2:
            continue
        for lock, release in releases:
            index = _index_of(lock, name)
            if index is not None and release is not None and release < max(found):
                wanted.add((index, name))
    return wanted


def _release(version: str | None) -> Version | None:
    key = _key(version)
    return Version(key.public) if isinstance(key, Version) else None


def _read_pages(
    wanted: set[tuple[str, str]], links_of: LinksOf | None
) -> dict[tuple[str, str], Page]:
    """Each wanted page, or why it was not read (only http(s) indexes, valid names)."""
    if links_of is None or not wanted:
        return {}
    read_links: LinksOf = links_of  # not None, for the closure below

    def read(item: tuple[str, str]) -> tuple[tuple[str, str], Page]:
        index, name = item
        if urlsplit(index).scheme not in ("http", "https"):
            return item, "not an http(s) index"
        try:
            canonicalize_name(name, validate=True)
        except InvalidName:
            return item, "not a valid project name"
        try:
            return item, read_links(index, name)
        except PackageIndexError as err:
            return item, err.message

    with ThreadPoolExecutor(max_workers=min(8, len(wanted))) as pool:
        return dict(pool.map(read, sorted(wanted)))


def _reasons(
    name: str,
    lock: Lock,
    *,
    locks: Sequence[Lock],
    per_target: Mapping[str, str | None],
    pages: Mapping[tuple[str, str], Page],
    context: _Context,
) -> list[Reason]:
    mine = per_target[lock.target]
    target = _target(lock.target)
    if mine is None:
        texts = _absent(name, lock, locks, target)
        return [Reason(lock.target, None, None, kind, text) for kind, text in texts]
    index = _index_of(lock, name)
    page = pages.get((index, name)) if index is not None else None
    others = [v for v in per_target.values() if v is not None and _key(v) != _key(mine)]
    out = [
        Reason(lock.target, mine, other, kind, text)
        for other, (kind, text) in _unordered(name, mine, others)
    ]
    builds = _other_builds(mine, others)
    if builds:
        kind, text = _build_cause(name, mine, builds)
        out.append(Reason(lock.target, mine, ", ".join(builds), kind, text))
    for higher in _higher_releases(mine, others):
        texts = _required_below(name, higher, lock)
        cause = _index_cause(_Question(name, higher, lock, target, index, page), context)
        if cause[0] != "unknown" or not texts:
            texts.append(cause)  # Requires-Python or wheels may hold beside a requirement
        out += [Reason(lock.target, mine, higher, kind, text) for kind, text in texts]
    return out


def _unordered(name: str, mine: str, others: Iterable[str]) -> list[tuple[str, tuple[Kind, str]]]:
    """Versions lockd cannot order against ``mine`` (either is not PEP 440)."""
    own = _key(mine)
    return [
        (other, ("unknown", f"lockd cannot order {name} {mine} and {other} (not PEP 440)"))
        for other in sorted(set(others))
        if not (isinstance(own, Version) and isinstance(_key(other), Version))
    ]


def _other_builds(mine: str, others: Iterable[str]) -> list[str]:
    """The other builds of this target's release locked elsewhere (``2.6.0+cpu``)."""
    own = _key(mine)
    if not isinstance(own, Version):
        return []
    found = {other for other in others if _release(other) == _release(mine)}
    return sorted(found)


def _build_cause(name: str, mine: str, builds: Sequence[str]) -> tuple[Kind, str]:
    labels = [Version(v).local or "" for v in (mine, *builds)]
    kind: Kind = (
        "accelerator" if any(_ACCELERATOR_LABEL.fullmatch(label) for label in labels) else "build"
    )
    return (kind, f"{name} {mine} is this target's build; elsewhere {', '.join(builds)}")


def _higher_releases(mine: str, others: Iterable[str]) -> list[str]:
    """The releases above ``mine``'s locked elsewhere, by their public version (one row
    for ``2.6.0+cpu`` and ``2.6.0+cu124`` alike)."""
    own = _key(mine)
    if not isinstance(own, Version):
        return []
    floor = Version(own.public)
    found = {r for other in others if (r := _release(other)) is not None and r > floor}
    return [str(v) for v in sorted(found)]


def _required_below(name: str, higher: str, lock: Lock) -> list[tuple[Kind, str]]:
    """The requirements on this target's graph that exclude ``higher``."""
    if lock.graph is None:
        return []
    found: list[tuple[Kind, str]] = [
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


@dataclass(frozen=True, slots=True)
class _Question:
    """Why does this target not lock ``higher`` of ``name``? With what its index lists."""

    name: str
    higher: str
    lock: Lock
    target: Target | None
    index: str | None  # the index this target locked the package from
    page: Page | None  # its listing (None: not read)


def _index_cause(question: _Question, context: _Context) -> tuple[Kind, str]:
    """What the target's own index says keeps the higher version from it."""
    target, page = question.target, question.page
    if context.offline or target is None or page is None or isinstance(page, str):
        return ("unknown", _not_asked(target, page, context))
    found = _listing_cause(question, target, page, context)
    if found is not None:
        return found
    if question.lock.graph is None:
        return ("unknown", _NO_GRAPH)
    return ("unknown", "the resolver's choice: bound by the rest of this target's resolution")


def _not_asked(target: Target | None, page: Page | None, context: _Context) -> str:
    if context.offline:
        return "the resolver's choice? (--offline: the index was not asked)"
    if target is None:
        return "not a pip target lockd can check (its id names no Python or platform)"
    if isinstance(page, str):
        return f"the index could not be read: {page}"
    return "no index is recorded for it on this target"


def _listing_cause(
    question: _Question, target: Target, page: Sequence[IndexLink], context: _Context
) -> tuple[Kind, str] | None:
    name, higher = question.name, question.higher
    files = [link for link in page if _is(link, higher)]
    if not files:
        return (
            "index",
            f"no build of {name} {higher} is on this target's index ({question.index})",
        )
    published = [link for link in files if _by_cutoff(link, context.cutoff)]
    if not published:
        return ("index", f"{name} {higher} was uploaded to this target's index after the cut-off")
    python = Version(target.python_version)
    usable = [link for link in published if _admits(link.requires_python, python)]
    if not usable:
        needs = sorted({link.requires_python or "" for link in published} - {""})
        return ("requires-python", f"{name} {higher} requires Python {' or '.join(needs)}")
    tags = target_tags(target, context.glibc)
    buildable = context.builds.allows(name)
    if any(_fits(link.filename, tags, buildable) for link in usable):
        return None
    where = target.platform.name + (
        f", glibc {context.glibc}" if target.platform.os == "linux" else ""
    )
    refused = "" if buildable else " (and building it is not allowed)"
    return (
        "wheels",
        f"{name} {higher} has no wheel for Python {target.python_version} on {where}{refused}",
    )


def _absent(
    name: str, lock: Lock, locks: Sequence[Lock], target: Target | None
) -> list[tuple[Kind, str]]:
    """Why ``lock`` has no ``name`` that other locks have: what brings it in there."""
    here = lock.packages()
    env = target.marker_environment() if target is not None else None
    found: dict[str, Kind] = {}
    graphs = 0
    for other in locks:
        if other.graph is None or name not in other.packages():
            continue
        graphs += 1
        there = other.packages()
        for root in other.graph.inputs_of(name):
            if not root.constraint and env is not None and not _holds(root.requirement, env):
                text = f"your `{root.requirement}` ({root.source}) does not apply here"
                found.setdefault(text, "marker")
        for edge in other.graph.requirers(name):
            parent, theirs = edge.parent, there.get(edge.parent)
            if parent not in here:
                found.setdefault(f"required by {parent}, which is not locked here", "requirer")
            elif here[parent] != theirs:
                text = f"required by {parent} {theirs}; {parent} {here[parent]} here does not"
                found.setdefault(text, "requirer")
            elif env is None:
                continue
            elif not _holds(edge.requirement, env, edge.extra or ""):
                text = f"{parent} {theirs} requires `{edge.requirement}`, which does not apply here"
                found.setdefault(text, "marker")
            elif edge.extra is not None:
                text = f"{parent} brings it only with its extra `{edge.extra}`, not asked for here"
                found.setdefault(text, "requirer")
    if not found:
        text = "the resolver's choice: nothing recorded here requires it" if graphs else _NO_GRAPH
        return [("unknown", text)]
    return [(kind, text) for text, kind in list(found.items())[:MAX_REASONS]]


@lru_cache(maxsize=64)
def target_tags(target: Target, glibc: str) -> frozenset[Tag]:
    """The wheel tags CPython of ``target`` installs on its platform, as uv selects them
    for ``--python-platform``: glibc up to the lock's, macOS up to 13.0 (arm64)."""
    major, minor = target.python
    interpreter = f"cp{major}{minor}"
    arch = target.platform.arch
    if target.platform.os == "linux":
        top = int(glibc.split(".")[1])
        platforms = [f"manylinux_2_{m}_{arch}" for m in range(top, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        platforms += [f"{alias}_{arch}" for floor, alias in legacy.items() if top >= floor]
        platforms.append(f"linux_{arch}")
    elif target.platform.os == "macos":
        platforms = [
            f"macosx_{release}_0_{kind}"
            for release in range(13, 10, -1)
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


def glibc_floor(value: object) -> str:
    """The lockset's glibc floor (``2.28``), bounded; anything else reads as ``2.28``."""
    found = re.fullmatch(r"2\.(\d{1,9})", value) if isinstance(value, str) else None
    if found is None:
        return "2.28"
    return f"2.{min(int(found[1]), MAX_GLIBC_MINOR)}"


def _moment(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _by_cutoff(link: IndexLink, cutoff: datetime | None) -> bool:
    """The file was there at the cut-off (a file without an upload time counts as there)."""
    uploaded = _moment(link.upload_time) if link.upload_time else None
    if uploaded is None or cutoff is None:
        return True
    try:
        return uploaded <= cutoff
    except TypeError:  # one of them without an offset
        return True


def _target(target_id: str) -> Target | None:
    try:
        return parse_target_id(target_id)
    except UsageError:
        return None  # a conda lock's or a forged id: no markers, no tags


def _excludes(text: str, version: str) -> bool:
    req = parse_requirement(text)
    if req is None or not req.specifier:
        return False
    try:
        return not req.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def _holds(text: str, env: Mapping[str, str], extra: str = "") -> bool:
    req = parse_requirement(text)
    return req is None or marker_holds(req.marker, env, extra)


def _is(link: IndexLink, release: str) -> bool:
    """``link`` is a file of ``release`` (any local build of it)."""
    found = link_version(link)
    return found is not None and Version(found.public) == _key(release)


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
    return wheel_fits(filename, tags)
