"""Reading the record: history, show, diff."""

from __future__ import annotations

from ..lockset import Lockset, diff_locksets
from ..store import Store


def history(database_url: str, project: str | None) -> list[dict[str, object]]:
    store = Store(database_url)
    try:
        return [s.to_dict() for s in store.history(project)]
    finally:
        store.close()


def show(database_url: str, ref: str) -> Lockset:
    store = Store(database_url)
    try:
        return store.get(ref)
    finally:
        store.close()


def diff(database_url: str, ref_a: str, ref_b: str) -> dict[str, object]:
    store = Store(database_url)
    try:
        a, b = store.get(ref_a), store.get(ref_b)
    finally:
        store.close()
    return diff_locksets(a, b)
