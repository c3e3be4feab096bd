"""Why a pin moved between two locksets: the path that holds it, and the inputs that changed.

A moved, added or removed pin is explained with the graph of the lock that has
it (the newer one; the older one for a removed pin): the shortest path from a
direct input (``required by pandas>=2.3 via -r requirements.in``), every
requirement on it, and which of the direct inputs that lead to it changed
between the two locksets (``input changed: pandas -> pandas>=2.3``). A lock
recorded before lockd kept graphs explains nothing, and says nothing (pure).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .model import Graph
from .paths import DependencyPath, input_ancestors, shortest_path

MOVES = ("upgraded", "downgraded", "added", "removed")


@dataclass(frozen=True, slots=True)
class InputChange:
    """The direct requirements on one package name before and after."""

    name: str
    before: tuple[str, ...]
    after: tuple[str, ...]

    def describe(self) -> str:
        if not self.before:
            return ", ".join(self.after) + " added"
        if not self.after:
            return ", ".join(self.before) + " removed"
        return f"{', '.join(self.before)} -> {', '.join(self.after)}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "from": list(self.before), "to": list(self.after)}


def input_changes(before: Iterable[str], after: Iterable[str]) -> dict[str, InputChange]:
    """Direct requirements (and constraints) that differ, by package name."""
    old, new = _by_name(before), _by_name(after)
    return {
        name: InputChange(name, tuple(sorted(old.get(name, ()))), tuple(sorted(new.get(name, ()))))
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    }


def _by_name(requirements: Iterable[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for text in requirements:
        try:
            name = canonicalize_name(Requirement(text).name)
        except InvalidRequirement:
            continue
        out.setdefault(name, set()).add(text)
    return out


@dataclass(frozen=True, slots=True)
class Reason:
    """Why one package is in a lock, and which changed inputs lead to it."""

    path: DependencyPath | None  # shortest from a direct input; None: none found
    required_by: tuple[dict[str, str], ...]  # every requirement on it: inputs and packages
    inputs: tuple[InputChange, ...]  # changed direct inputs it can be reached from

    def describe(self) -> str:
        """``required by pandas>=2.3 via -r requirements.in; input changed: pandas -> …``."""
        parts = []
        if self.path is None:
            parts.append("no path from the direct inputs is recorded")
        elif len(self.path.hops) == 1:
            parts.append(f"{self.path.hops[0].requirement} in {self.path.source}")
        else:
            above = [hop.requirement for hop in reversed(self.path.hops[:-1])]
            parts.append("required by " + " via ".join([*above, self.path.source]))
        parts += [f"input changed: {change.describe()}" for change in self.inputs]
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.describe(),
            "path": self.path.to_dict() if self.path else None,
            "required_by": list(self.required_by),
            "inputs_changed": [change.name for change in self.inputs],
        }


def reason(graph: Graph, package: str, changes: Mapping[str, InputChange]) -> Reason:
    """Why ``package`` is in the lock ``graph`` describes."""
    required_by = [
        {"source": root.source, "requirement": root.requirement}
        for root in graph.inputs_of(package)
    ]
    required_by += [
        {"package": edge.parent, "requirement": edge.requirement}
        for edge in graph.requirers(package)
    ]
    leading = input_ancestors(graph, package)
    return Reason(
        shortest_path(graph, package),
        tuple(required_by),
        tuple(change for name, change in changes.items() if name in leading),
    )


def explain_moves(
    entry: Mapping[str, Any],
    before: Graph | None,
    after: Graph | None,
    changes: Mapping[str, InputChange],
) -> dict[str, Any]:
    """One target's ``diff_locksets`` entry with a ``why`` on each moved, added or removed
    pin that the graph of its lock can explain."""
    out = dict(entry)
    for kind in MOVES:
        graph = before if kind == "removed" else after
        if graph is None:
            continue
        out[kind] = [
            {**item, "why": reason(graph, item["name"], changes).to_dict()} for item in entry[kind]
        ]
    return out
