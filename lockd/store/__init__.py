"""The lockd database: SQLModel tables behind repository functions."""

from .repository import LocksetSummary, Store

__all__ = ["LocksetSummary", "Store"]
