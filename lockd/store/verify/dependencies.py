"""The dependency rows of a lock against the graph its lockset document records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from .records import FIELD_SEP, LockRecord


def dependencies_difference(row: LockRecord, graph: Mapping[str, Any] | None) -> str:
    """The dependency rows against the document's graph (none without one)."""
    try:
        documented = Counter(
            [
                (
                    "constraint" if r.get("constraint") else "input",
                    "",
                    r["package"],
                    r["requirement"],
                    r["source"],
                    "",
                )
                for r in (graph or {}).get("roots", [])
            ]
            + [
                ("requires", e["from"], e["to"], e["requirement"], "", e.get("extra") or "")
                for e in (graph or {}).get("edges", [])
            ]
        )
    except (KeyError, TypeError, AttributeError):
        return "its document's dependency graph lacks fields every graph has"
    stored = Counter(tuple(line.split(FIELD_SEP)[1:]) for line in row.dependency_lines)
    if stored == documented:
        return ""
    for values in stored - documented:
        return f"dependency row {_dependency(values)} is not in the document's graph"
    for values in documented - stored:
        return f"{_dependency(values)} of the document's graph is missing from its table"
    return "its dependency rows differ from the document's graph"


def _dependency(values: tuple[str, ...]) -> str:
    """``requires pandas -> numpy (numpy>=2.2)``, ``input -r requirements.in -> pandas (…)``."""
    kind, package, dependency, requirement, source, extra = (*values, *[""] * 6)[:6]
    through = f", extra {extra}" if extra else ""
    text = f"{kind} {package or source} -> {dependency} ({requirement}{through})"
    return text if len(text) <= 120 else text[:119] + "…"
