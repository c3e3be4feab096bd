"""``pyproject.toml`` inputs: dependencies, extras and PEP 735 dependency groups (pure).

A self-reference is expanded as pip expands it when it installs the project:
``eval = ["scikit-learn", "my-project[train]"]`` adds the requirements of the
``train`` extra, under the self-reference's marker (and the markers of every
self-reference on the way), to any depth; a cycle of extras ends where it
closes. Extra and group names compare normalised (PEP 685, PEP 735). Unlike
pip, which only warns, a self-reference to an extra that does not exist is an
error: it would silently drop requirements.

``[dependency-groups]`` (PEP 735) hold requirement strings and
``{include-group = "name"}`` tables. Only the requested groups (and what they
include) are read; an unknown group, an include cycle, two names that
normalise alike or a malformed entry is an error naming the group. Groups
need no ``[project]`` table; without one, only the groups are locked.
Self-references inside groups are expanded like those inside extras.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import UsageError
from ..graph import DirectInput
from .requirements import Problem, classify_line, shorten

# PEP 735: group names are valid (non-normalised) project names.
_QUOTED = re.compile(r'"([^"\\]*)"|\'([^\']*)\'')  # TOML basic (no escapes) and literal strings
_GROUP_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PyprojectInputs:
    requirements: tuple[str, ...]
    problems: tuple[Problem, ...] = ()
    # each requirement with the part it comes from: ``pyproject.toml (extra: train)``
    direct: tuple[DirectInput, ...] = ()


def parse_pyproject(
    text: str, source: str, extras: Iterable[str] = (), groups: Iterable[str] = ()
) -> PyprojectInputs:
    """The project's dependencies with the chosen extras and dependency groups expanded."""
    extras, groups = tuple(extras), tuple(groups)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            f"{source} is not valid TOML: {exc}.", hint="Fix the syntax at the position shown."
        ) from None
    project = data.get("project")
    if project is None and not groups:
        raise UsageError(
            f"{source} has no [project] table.",
            hint="lockd reads [project].dependencies and [dependency-groups] (--group); add "
            "them, or lock a requirements.in.",
        )
    found = _project({} if project is None else project, source, bool(extras))
    reader = _Reader(source, text.splitlines(), found)
    if project is not None:
        reader.add(_strings(project, "dependencies", source), "[project] dependencies", source)
    for extra in extras:
        key = canonicalize_name(extra)
        if key not in reader.optional:
            known = ", ".join(sorted(reader.optional)) or "none"
            raise UsageError(
                f"{source} has no optional dependency group {extra!r}.",
                hint=f"Known extras: {known}.",
            )
        reader.add_extra(key, None, (key,))
    if groups:
        table = _groups_table(data, source)
        for group in groups:
            for entry, name in _group_entries(table, group, source, ()):
                reader.add((entry,), f"[dependency-groups] {name}", f"{source} (group: {name})")
    return PyprojectInputs(
        tuple(dict.fromkeys(r.requirement for r in reader.out)),
        tuple(reader.problems),
        tuple(dict.fromkeys(reader.out)),
    )


@dataclass(frozen=True, slots=True)
class _Project:
    name: str | None  # normalised
    version: Version | None
    optional: Mapping[str, tuple[str, tuple[str, ...]]]  # normalised -> (as written, entries)


class _Reader:
    """Collects requirements, expanding self-references; problems are kept, not raised."""

    def __init__(self, source: str, lines: list[str], project: _Project) -> None:
        self.source = source
        self.lines = lines
        self.project = project
        self.optional = project.optional
        self.out: list[DirectInput] = []
        self.problems: list[Problem] = []
        self._quoted: dict[str, int] | None = None  # quoted string -> first line, on demand

    def add(
        self,
        entries: Iterable[str],
        where: str,
        origin: str,
        marker: Marker | None = None,
        path: tuple[str, ...] = (),
    ) -> None:
        """Collect ``entries`` of the section ``where`` (an origin such as
        ``pyproject.toml (extra: train)`` for the graph)."""
        for entry in entries:
            item = classify_line(entry.strip(), "")
            if isinstance(item, Problem):
                self.problems.append(replace(item, where=self._where(entry, where)))
                continue
            if not isinstance(item, Requirement):
                self.problems.append(
                    Problem(
                        self._where(entry, where),
                        "is a pip option, not a requirement",
                        "option",
                        shorten(entry),
                    )
                )
                continue
            combined = _and(marker, item.marker)
            if self.project.name is not None and canonicalize_name(item.name) == self.project.name:
                self._self_reference(item, self._where_lazy(entry, where), combined, path)
                continue
            item.marker = combined
            self.out.append(DirectInput(str(item), origin))

    def add_extra(self, key: str, marker: Marker | None, path: tuple[str, ...]) -> None:
        written, entries = self.optional[key]
        where = f"[project.optional-dependencies] {written}"
        self.add(entries, where, f"{self.source} (extra: {written})", marker, path)

    def _self_reference(
        self,
        req: Requirement,
        at: Callable[[], str],
        marker: Marker | None,
        path: tuple[str, ...],
    ) -> None:
        version = self.project.version
        if version is not None and req.specifier and not req.specifier.contains(version, True):
            self.problems.append(
                Problem(
                    at(),
                    f"requires the project itself as {req.specifier}, but it is {version}",
                    hint="Drop the version from the self-reference.",
                )
            )
        for extra in sorted(canonicalize_name(e) for e in req.extras):
            if extra not in self.optional:
                known = ", ".join(sorted(self.optional)) or "none"
                self.problems.append(
                    Problem(
                        at(),
                        f"names the extra {extra!r} of the project itself, which does not exist "
                        f"(known extras: {known})",
                        hint="Fix the name of the extra (names compare normalised: My_Extra is "
                        "my-extra).",
                    )
                )
            elif extra not in path:  # on the path already: the cycle closes here
                self.add_extra(extra, marker, (*path, extra))

    def _where_lazy(self, entry: str, where: str) -> Callable[[], str]:
        return lambda: self._where(entry, where)

    def _where(self, entry: str, where: str) -> str:
        """``file:line`` of the first line that holds ``entry`` quoted, else the key."""
        if self._quoted is None:
            self._quoted = {}
            for lineno, line in enumerate(self.lines, start=1):
                for match in _QUOTED.finditer(line):
                    self._quoted.setdefault(match.group(1) or match.group(2) or "", lineno)
        found = self._quoted.get(entry)
        return f"{self.source}:{found}" if found else f"{self.source} ({where})"


def _and(outer: Marker | None, inner: Marker | None) -> Marker | None:
    if outer is None or inner is None:
        return outer or inner
    return Marker(f"({outer}) and ({inner})")


def _project(project: object, source: str, need_optional: bool) -> _Project:
    if not isinstance(project, dict):
        raise _shape(source, "[project]", "must be a table")
    name = project.get("name")
    if name is not None and not isinstance(name, str):
        raise _shape(source, "[project] name", "must be a string")
    dynamic = project.get("dynamic", [])
    if not isinstance(dynamic, list):
        raise _shape(source, "[project] dynamic", "must be a list of strings")
    for key in ("dependencies", "optional-dependencies"):
        if key in dynamic and (key == "dependencies" or need_optional):
            raise UsageError(
                f"{source} declares its {key} as dynamic; lockd cannot read them statically.",
                hint=f"List them in [project] {key}, or in a requirements.in.",
            )
    table = project.get("optional-dependencies", {})
    if not isinstance(table, dict):
        raise _shape(source, "[project.optional-dependencies]", "must be a table of lists")
    optional: dict[str, tuple[str, tuple[str, ...]]] = {}
    for written, _ in table.items():
        key = canonicalize_name(written)
        if key in optional:
            raise _shape(
                source,
                "[project.optional-dependencies]",
                f"names one extra twice ({optional[key][0]!r} and {written!r} normalise alike)",
            )
        entries = _strings(table, written, source, "[project.optional-dependencies]")
        optional[key] = (written, entries)
    return _Project(
        canonicalize_name(name) if name else None, _version(project.get("version")), optional
    )


def _version(value: object) -> Version | None:
    try:
        return Version(value) if isinstance(value, str) else None
    except InvalidVersion:
        return None


def _strings(
    table: Mapping[str, Any], key: str, source: str, section: str = "[project]"
) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _shape(source, f"{section} {key}", "must be a list of requirement strings")
    return tuple(value)


def _groups_table(data: Mapping[str, Any], source: str) -> dict[str, tuple[str, list[Any]]]:
    """``[dependency-groups]`` by normalised name: (name as written, entries)."""
    table = data.get("dependency-groups", {})
    if not isinstance(table, dict):
        raise _shape(source, "[dependency-groups]", "must be a table")
    out: dict[str, tuple[str, list[Any]]] = {}
    for written, entries in table.items():
        if not _GROUP_NAME.match(written):
            raise _shape(source, f"[dependency-groups] {written!r}", "is not a valid group name")
        key = canonicalize_name(written)
        if key in out:
            raise _shape(
                source,
                "[dependency-groups]",
                f"names one group twice ({out[key][0]!r} and {written!r} normalise alike)",
            )
        if not isinstance(entries, list):
            raise _shape(source, f"[dependency-groups] {written}", "must be a list")
        out[key] = (written, entries)
    return out


def _group_entries(
    table: Mapping[str, tuple[str, list[Any]]], group: str, source: str, chain: tuple[str, ...]
) -> Iterator[tuple[str, str]]:
    """The requirement strings of ``group`` with its includes in place, and whose they are."""
    key = canonicalize_name(group)
    if key not in table:
        known = ", ".join(written for written, _ in table.values()) or "none"
        asked = f"group {table[chain[-1]][0]!r} includes" if chain else "--group names"
        raise UsageError(
            f"{source}: {asked} the dependency group {group!r}, which [dependency-groups] does "
            "not define.",
            hint=f"Known groups: {known}.",
        )
    if key in chain:
        cycle = " -> ".join(table[k][0] for k in (*chain[chain.index(key) :], key))
        raise UsageError(
            f"{source}: the dependency groups include each other in a cycle ({cycle}).",
            hint="Remove one of the include-group entries; PEP 735 does not allow cycles.",
        )
    written, entries = table[key]
    for entry in entries:
        if isinstance(entry, str):
            yield entry, written
        elif (
            isinstance(entry, dict)
            and list(entry) == ["include-group"]
            and isinstance(entry["include-group"], str)
        ):
            yield from _group_entries(table, entry["include-group"], source, (*chain, key))
        else:
            raise _shape(
                source,
                f"[dependency-groups] {written}",
                f"has the entry {shorten(repr(entry))}, which is neither a requirement string "
                'nor an {include-group = "name"} table',
            )


def _shape(source: str, where: str, problem: str) -> UsageError:
    return UsageError(
        f"{source}: {where} {problem}.",
        hint="See the pyproject.toml specification (PEP 621) and PEP 735 for dependency groups.",
    )
