"""The dependency graph of one lock as data: roots, edges, and what could not be read (pure).

A *root* is a direct input that applies to the target: the requirement as the
user wrote it (normalised by ``packaging``), the file and section it came from
(``-r requirements.in``, ``pyproject.toml (extra: train)``), and the package it
names; a ``-c`` constraint is kept as a root that brings nothing in. An *edge*
is a requirement of one locked package on another that applied for the target
(its ``Requires-Dist`` line, or a conda record's ``depends`` entry), with the
extra of the parent it applied through. Packages whose own requirements could
not be read (an sdist whose metadata needs a build) are listed as ``unknown``:
the graph says it does not know, rather than that they need nothing.

The document is versioned (``lockd.graph/1``); an unknown version is refused
with a clear error rather than misread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..fields import Fields

GRAPH_FORMAT = "lockd.graph/1"


@dataclass(frozen=True, slots=True)
class DirectInput:
    """A requirement as an input file states it, before it is matched to a target."""

    requirement: str
    source: str  # "-r requirements.in", "pyproject.toml (group: dev)", "environment.yml"
    constraint: bool = False  # -c: limits a version, brings nothing in


@dataclass(frozen=True, slots=True, order=True)
class Root:
    """A direct input that applies to the target, and the locked package it names."""

    package: str
    requirement: str
    source: str
    constraint: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "package": self.package,
            "requirement": self.requirement,
            "source": self.source,
        }
        if self.constraint:
            out["constraint"] = True
        return out


@dataclass(frozen=True, slots=True, order=True)
class Edge:
    """``parent`` requires ``child`` by ``requirement`` (through ``extra`` of the parent)."""

    parent: str
    child: str
    requirement: str
    extra: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "from": self.parent,
            "to": self.child,
            "requirement": self.requirement,
        }
        if self.extra is not None:
            out["extra"] = self.extra
        return out


@dataclass(frozen=True, slots=True)
class Graph:
    """Why each package of one lock is there. Built sorted, so its JSON is canonical."""

    roots: tuple[Root, ...] = ()
    edges: tuple[Edge, ...] = ()
    unknown: tuple[str, ...] = ()  # packages whose own requirements could not be read

    @classmethod
    def of(cls, roots: Iterable[Root], edges: Iterable[Edge], unknown: Iterable[str] = ()) -> Graph:
        """A graph in canonical order, without duplicates."""
        return cls(
            tuple(sorted(set(roots))), tuple(sorted(set(edges))), tuple(sorted(set(unknown)))
        )

    def requirers(self, package: str) -> tuple[Edge, ...]:
        """The edges into ``package`` (other packages that require it)."""
        return tuple(e for e in self.edges if e.child == package)

    def inputs_of(self, package: str) -> tuple[Root, ...]:
        """The direct inputs naming ``package``, constraints included."""
        return tuple(r for r in self.roots if r.package == package)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": GRAPH_FORMAT,
            "roots": [r.to_dict() for r in self.roots],
            "edges": [e.to_dict() for e in self.edges],
            "unknown": list(self.unknown),
        }

    @classmethod
    def from_dict(cls, data: object) -> Graph:
        return cls.read(Fields(data, "graph"))

    @classmethod
    def read(cls, fields: Fields) -> Graph:
        """Read a recorded graph; the document may come from anyone (a pull request)."""
        fields.check_format(GRAPH_FORMAT, "dependency graph")
        roots = tuple(
            Root(
                r.text("package"),
                r.text("requirement"),
                r.text("source"),
                bool(r.optional_bool("constraint")),
            )
            for r in fields.objects("roots")
        )
        edges = tuple(
            Edge(e.text("from"), e.text("to"), e.text("requirement"), e.optional_text("extra"))
            for e in fields.objects("edges")
        )
        # As recorded, not re-sorted: the lockset hash is computed over this order.
        return cls(roots, edges, fields.texts("unknown", required=False))
