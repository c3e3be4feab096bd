"""Reading the record: history, show, diff, a project's latest lockset."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import NotFoundError
from ..lockset import diff_locksets

if TYPE_CHECKING:
    from ..drift import DriftReport
    from ..lockset import Lockset
    from ..store import Store


def _store(url: str) -> Store:
    from ..store import Store  # SQLModel is slow to import: only when a command needs it

    return Store(url)


def history(database_url: str, project: str | None) -> list[dict[str, object]]:
    store = _store(database_url)
    try:
        return [s.to_dict() for s in store.history(project)]
    finally:
        store.close()


def show(database_url: str, ref: str) -> tuple[Lockset, list[DriftReport]]:
    """A lockset and its drift reports (environments and images), newest first."""
    store = _store(database_url)
    try:
        lockset = store.get(ref)
        return lockset, [report for _, report in store.drift_reports_of(lockset.hash)]
    finally:
        store.close()


def diff(database_url: str, ref_a: str, ref_b: str) -> dict[str, object]:
    store = _store(database_url)
    try:
        a, b = store.get(ref_a), store.get(ref_b)
    finally:
        store.close()
    return diff_locksets(a, b)


def latest(database_url: str, project: str | None) -> Lockset:
    """The latest lockset of ``project`` (``None``: this directory's, or the only one)."""
    from .drift import default_project

    store = _store(database_url)
    try:
        name = project or default_project(store)
        found = store.latest(name)
    finally:
        store.close()
    if found is None:
        raise NotFoundError(
            f"No lockset recorded for project {name!r}.",
            hint="Run `lockd compile` first, or name the project with --project.",
        )
    return found
