"""The lockd database: SQLModel tables behind repository functions.

Each name is imported from its module (and with it SQLAlchemy) on first use, so
that ``store.head`` can answer the no-op compile without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..lazy import export

if TYPE_CHECKING:
    from .fleet import (
        Deployment,
        DeploymentQuery,
        Posted,
        ProjectOverview,
        ReportQuery,
        ReportSummary,
    )
    from .repository import LocksetSummary, Recorded, Store, TrackedImage
    from .tokens import SCOPES, TokenInfo

__all__ = [
    "SCOPES",
    "Deployment",
    "DeploymentQuery",
    "LocksetSummary",
    "Posted",
    "ProjectOverview",
    "Recorded",
    "ReportQuery",
    "ReportSummary",
    "Store",
    "TokenInfo",
    "TrackedImage",
]

# name -> the module that defines it
_MODULES = {
    "SCOPES": "tokens",
    "Deployment": "fleet",
    "DeploymentQuery": "fleet",
    "LocksetSummary": "repository",
    "Posted": "fleet",
    "ProjectOverview": "fleet",
    "Recorded": "repository",
    "ReportQuery": "fleet",
    "ReportSummary": "fleet",
    "Store": "repository",
    "TokenInfo": "tokens",
    "TrackedImage": "repository",
}


def __getattr__(name: str) -> Any:
    return export(__name__, _MODULES, name, globals())
