"""Reading a graph: every path from a direct input to a package, and pip-compile's ``via``.

Paths are simple (no package twice), so cycles (``a`` requires ``b`` requires
``a``) end where they close. Their number can grow exponentially with the
graph; counting stops after ``MAX_COUNTED`` paths (or ``MAX_STEPS`` steps of
the search), and the answer then says it is a lower bound.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from .model import Edge, Graph, Root

MAX_COUNTED = 10_000
MAX_STEPS = 200_000


@dataclass(frozen=True, slots=True)
class Hop:
    """One package on a path, and the requirement that brought it in."""

    package: str
    requirement: str
    extra: str | None = None  # of the previous package, when the requirement needs one

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"package": self.package, "requirement": self.requirement}
        if self.extra is not None:
            out["extra"] = self.extra
        return out


@dataclass(frozen=True, slots=True)
class DependencyPath:
    """From a direct input (``source``) down to the package asked about (the last hop)."""

    source: str
    hops: tuple[Hop, ...]

    def describe(self) -> str:
        """``-r requirements.in > pandas>=2.3 > numpy>=1.26``."""
        return " > ".join([self.source, *(hop.requirement for hop in self.hops)])

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "hops": [hop.to_dict() for hop in self.hops]}


@dataclass(frozen=True, slots=True)
class Paths:
    """The paths to one package: the shortest ``shown`` ones, and how many there are."""

    package: str
    shown: tuple[DependencyPath, ...]
    total: int
    complete: bool  # False: the count stopped at a limit and is a lower bound

    @property
    def left_out(self) -> int:
        return self.total - len(self.shown)

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "paths": [path.to_dict() for path in self.shown],
            "total": self.total,
            "total_is_exact": self.complete,
            "left_out": self.left_out,
        }


def paths_to(graph: Graph, package: str, *, limit: int = 20) -> Paths:
    """Every simple path from a direct input to ``package``, shortest first."""
    into = _into(graph)
    inputs: dict[str, list[Root]] = {}
    for root in graph.roots:
        if not root.constraint:
            inputs.setdefault(root.package, []).append(root)
    useful = reachable_from_inputs(graph)
    found: list[DependencyPath] = []
    steps = 0
    complete = True
    # Depth-first, backwards from the package; ``trail`` holds the hops below the node.
    stack: list[tuple[str, tuple[Hop, ...], frozenset[str]]] = [(package, (), frozenset())]
    while stack:
        steps += 1
        if len(found) >= MAX_COUNTED or steps > MAX_STEPS:
            complete = False
            break
        node, trail, seen = stack.pop()
        seen = seen | {node}
        for root in inputs.get(node, ()):
            found.append(DependencyPath(root.source, (Hop(node, root.requirement), *trail)))
        for edge in reversed(into.get(node, ())):
            if edge.parent in useful and edge.parent not in seen:
                hop = Hop(node, edge.requirement, edge.extra)
                stack.append((edge.parent, (hop, *trail), seen))
    ordered = sorted(found, key=lambda p: (len(p.hops), p.describe()))
    return Paths(package, tuple(ordered[:limit]), len(found), complete)


def reachable_from_inputs(graph: Graph) -> frozenset[str]:
    """The packages some direct input leads to (constraints bring nothing in)."""
    children: dict[str, list[str]] = {}
    for edge in graph.edges:
        children.setdefault(edge.parent, []).append(edge.child)
    queue = deque(r.package for r in graph.roots if not r.constraint)
    seen: set[str] = set()
    while queue:
        name = queue.popleft()
        if name in seen:
            continue
        seen.add(name)
        queue.extend(children.get(name, ()))
    return frozenset(seen)


def shortest_path(graph: Graph, package: str) -> DependencyPath | None:
    """One shortest path from a direct input to ``package`` (breadth-first), if any."""
    into = _into(graph)
    inputs = {r.package: r for r in sorted(graph.roots) if not r.constraint}
    queue: deque[tuple[str, tuple[Hop, ...]]] = deque([(package, ())])
    seen = {package}
    while queue:
        node, trail = queue.popleft()
        if node in inputs:
            root = inputs[node]
            return DependencyPath(root.source, (Hop(node, root.requirement), *trail))
        for edge in into.get(node, ()):
            if edge.parent not in seen:
                seen.add(edge.parent)
                queue.append((edge.parent, (Hop(node, edge.requirement, edge.extra), *trail)))
    return None


def input_ancestors(graph: Graph, package: str) -> frozenset[str]:
    """The direct inputs (by package name) from which ``package`` can be reached."""
    into = _into(graph)
    inputs = {r.package for r in graph.roots if not r.constraint}
    queue, seen = deque([package]), {package}
    while queue:
        for edge in into.get(queue.popleft(), ()):
            if edge.parent not in seen:
                seen.add(edge.parent)
                queue.append(edge.parent)
    return frozenset(seen & inputs)


def _into(graph: Graph) -> dict[str, list[Edge]]:
    """Package -> the edges into it."""
    out: dict[str, list[Edge]] = {}
    for edge in graph.edges:
        out.setdefault(edge.child, []).append(edge)
    return out


def via(graph: Graph, package: str) -> list[str]:
    """What pip-compile writes after ``# via``: the inputs naming the package (``-r
    requirements.in``, ``-c constraints.txt``), then the packages that require it."""
    sources = sorted({r.source for r in graph.inputs_of(package)})
    parents = sorted({e.parent for e in graph.requirers(package)})
    return sources + parents
