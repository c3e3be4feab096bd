"""Resolution backends behind one interface (``interface.Resolver``): ``uv``, ``pip-tools``.

Each backend is imported only when chosen, so that what only needs a resolver's
name and version (``lockd compile --check``) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from .interface import Resolver


def make_resolver(name: str) -> Resolver:
    if name == "uv":
        from ..resolvers.uv import UvResolver

        return UvResolver()
    if name == "pip-tools":
        from ..resolvers.piptools import PipToolsResolver

        return PipToolsResolver()
    raise UsageError(
        f"Unknown resolver {name!r}.", hint="Use --resolver uv or --resolver pip-tools."
    )
