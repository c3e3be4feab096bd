"""The lockd database: SQLModel tables behind repository functions."""

from .fleet import Deployment, DeploymentQuery, Posted, ProjectOverview, ReportQuery, ReportSummary
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
