"""Routed packages that arrive transitively, learned once per routing plan of a matrix.

uv honours index sources for direct dependencies only, so a routed package that
arrives transitively (``triton`` under a CUDA ``torch``) is promoted to a direct
dependency and its target resolved again: two uv runs. The targets of one
matrix that share a platform and a routing plan (same variant index, same
``[[index]]`` routes) nearly always need the same promotions, so the first of
them (the scout) learns them and the others declare them from their first run.
A follower that fails with its hints, or whose hints turn out needless (nothing
in its lock requires them), is resolved again without them, so a lock never
depends on what another target taught.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence

from ..graph import Graph


class Promotions:
    """The promotions each routing key's scout learned, shared between target threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._learned: dict[Hashable, frozenset[str]] = {}
        self._scouted: dict[Hashable, threading.Event] = {}

    def hints(self, key: Hashable | None) -> tuple[frozenset[str], bool]:
        """The names to promote up front, and whether the caller is ``key``'s scout.

        The first caller of a key is its scout and gets no hints; the others wait
        until the scout's resolution is done (scouts are started first, so a
        follower never waits for a scout that has not started). ``None``: a plan
        that routes nothing, so nothing to learn and no waiting.
        """
        if key is None:
            return frozenset(), False
        with self._lock:
            event = self._scouted.get(key)
            if event is None:
                self._scouted[key] = threading.Event()
                return frozenset(), True
        event.wait()
        with self._lock:
            return self._learned.get(key, frozenset()), False

    def learned(self, key: Hashable, names: frozenset[str]) -> None:
        """The scout's promotions (the first report counts: empty when it failed);
        releases the key's followers."""
        with self._lock:
            self._learned.setdefault(key, names)
            self._scouted[key].set()


def scouts_first(keys: Sequence[Hashable | None]) -> list[int]:
    """Indexes of ``keys``: the first of every key (and every ``None``), then the rest,
    each in order."""
    seen: set[Hashable] = set()
    scouts: list[int] = []
    followers: list[int] = []
    for i, key in enumerate(keys):
        (followers if key is not None and key in seen else scouts).append(i)
        seen.add(key)
    return scouts + followers


def needless(hints: frozenset[str], graph: Graph) -> bool:
    """Whether a hint is in the lock only because it was promoted (or cannot be told)."""
    if hints and graph.unknown:
        return True  # a package whose requirements are unknown might or might not need it
    return any(not graph.requirers(name) and not graph.inputs_of(name) for name in hints)
