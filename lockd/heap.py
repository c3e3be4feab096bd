"""Python's cyclic garbage collector around lockd's short bursts of work.

A compile or an audit allocates in bursts (imports, parsed documents, metadata,
rendered rows) and frees nearly everything by reference count: the collector's
passes over the growing heap find no cycles and cost a compile ~0.15 s of CPU
(benchmarks/RESULTS.md, issue 14). At exit the interpreter's last collections
walk every object the imports made: freezing the heap first skips them.
"""

from __future__ import annotations

import atexit
import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The collector off while the block runs, on again after it (for a caller in the
    same process, such as the server or a test). Reference counting still frees."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def freeze_at_exit() -> None:
    """At interpreter exit, move every object out of the collector's sight before its
    final collections (0.15-0.4 s of a compile). Objects are still freed by reference
    count; nothing lockd relies on is finalised from a cycle."""
    atexit.register(gc.freeze)
