"""Resolution + metadata -> graph: the edges that applied for one target (pure).

Whatever resolved the lock (uv, pip-compile, rattler), the edges come from what
the locked packages themselves declare, evaluated for the target:

* pip: each package's ``Requires-Dist``, parsed with ``packaging``; a line
  counts when its marker holds in the target's marker environment, with
  ``extra`` set to nothing or to an extra of the package that something
  requested (``requests[socks]`` turns on ``requests``'s ``socks`` lines, and
  those may request extras in turn, to a fixpoint) — the way pip and uv read
  them. A line naming a package that is not locked is not an edge (its marker
  excluded it for the resolver too).
* conda: each record's ``depends`` match specs, by package name.

Direct inputs become roots when they apply to the target and name a locked
package. Nothing here fetches metadata: the caller passes it in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence

from packaging.markers import Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .model import DirectInput, Edge, Graph, Root

Environment = Mapping[str, str]


def pip_graph(
    requires: Mapping[str, Sequence[str] | None],
    inputs: Iterable[DirectInput],
    environment: Environment,
) -> Graph:
    """The graph of one pip lock.

    ``requires``: every locked package (canonical name) -> its ``Requires-Dist``
    lines, or ``None`` when they could not be read. ``environment``: the target's
    PEP 508 marker values (``Target.marker_environment``).
    """
    locked = set(requires)
    active: dict[str, set[str]] = {name: set() for name in locked}  # requested extras
    roots: list[Root] = []
    for item in inputs:
        req = parse_requirement(item.requirement)
        if req is None:
            continue
        name = canonicalize_name(req.name)
        if name not in locked or not marker_holds(req.marker, environment, ""):
            continue
        roots.append(Root(name, str(req), item.source, item.constraint))
        if not item.constraint:
            active[name] |= {canonicalize_name(e) for e in req.extras}
    edges: set[Edge] = set()
    pending = deque(sorted(locked))
    while pending:
        parent: str = pending.popleft()
        for line in requires[parent] or ():
            req = parse_requirement(line)
            if req is None:
                continue
            child = canonicalize_name(req.name)
            through = _through(req.marker, environment, active[parent])
            if child not in locked or not through:
                continue
            if child != parent:  # a self-reference only turns on more of the package's extras
                edges.update(Edge(parent, child, str(req), extra) for extra in through)
            wanted = {canonicalize_name(e) for e in req.extras} - active[child]
            if wanted:
                active[child] |= wanted
                pending.append(child)
    unknown = (name for name, lines in requires.items() if lines is None)
    return Graph.of(roots, edges, unknown)


def conda_graph(
    depends: Mapping[str, Sequence[str]],
    inputs: Iterable[DirectInput],
    name_of: Callable[[str], str | None],
) -> Graph:
    """The graph of one conda lock: ``depends`` of every locked record (name -> match
    specs); ``name_of`` reads the package name of a match spec (``None``: unreadable)."""
    roots = []
    for item in inputs:
        name = name_of(item.requirement)
        if name is not None and name in depends:
            roots.append(Root(name, item.requirement, item.source, item.constraint))
    edges = []
    for parent, specs in depends.items():
        for spec in specs:
            child = name_of(spec)
            if child is not None and child in depends and child != parent:
                edges.append(Edge(parent, child, spec))
    return Graph.of(roots, edges)


def parse_requirement(text: str) -> Requirement | None:
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None  # a line pip and uv could not read either


def _through(marker: Marker | None, environment: Environment, extras: set[str]) -> list[str | None]:
    """``[None]`` when the line applies without an extra; else the requested extras it
    applies through (none: it does not apply)."""
    if marker_holds(marker, environment, ""):
        return [None]
    return [extra for extra in sorted(extras) if marker_holds(marker, environment, extra)]


def marker_holds(marker: Marker | None, environment: Environment, extra: str) -> bool:
    if marker is None:
        return True
    try:
        return marker.evaluate({**environment, "extra": extra})
    except (UndefinedComparison, UndefinedEnvironmentName):
        return False  # a comparison PEP 508 leaves undefined selects nothing
