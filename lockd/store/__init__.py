"""The lockd database: SQLModel tables behind repository functions."""

from .repository import LocksetSummary, Store, TrackedImage

__all__ = ["LocksetSummary", "Store", "TrackedImage"]
