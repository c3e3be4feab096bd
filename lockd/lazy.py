"""A package's public names imported from their modules on first use (start-up time).

``lockd compile --check`` and the no-op compile run in pre-commit hooks: a package
face (``lockd.store``, ``lockd.images``) that imported every module at once would
bring SQLAlchemy or httpx into paths that need one small module of it.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from importlib import import_module
from typing import Any


def export(
    package: str, modules: Mapping[str, str], name: str, namespace: MutableMapping[str, Any]
) -> Any:
    """``name`` from ``package``'s private module ``modules[name]``, kept in ``namespace``
    (the package's globals) so that later lookups do not come here."""
    module = modules.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", package), name)
    namespace[name] = value
    return value
