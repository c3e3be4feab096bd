"""The database: alembic revisions match the SQLModel tables; records survive failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from lockd.errors import StoreError, UsageError
from lockd.lockset import Artifact, Lock, Lockset, Provenance
from lockd.store import Store
from lockd.store import tables as _tables  # noqa: F401 - registers the tables


def _lockset(project: str, key: str, parent: str | None = None) -> Lockset:
    art = Artifact("numpy", "2.1.0", "https://pypi/simple", "https://f/n.whl", "n.whl", "a" * 64)
    return Lockset(
        project=project,
        inputs=(),
        requirements=("numpy",),
        targets=("linux-x86_64-py311-cpu",),
        resolver="uv",
        resolver_version="0.13.9",
        indexes={"default": "https://pypi/simple"},
        cutoff="2026-01-01T00:00:00Z",
        input_key=key,
        provenance=Provenance("u", "h", "2026-01-01T00:00:00Z"),
        locks=(Lock("linux-x86_64-py311-cpu", (art,), files={"x": "y"}),),
        parent=parent,
    )


def test_migrations_match_the_models(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_record_and_read_back(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    first = _lockset("p", "k1")
    store.record_lockset(first)
    store.record_lockset(first)  # idempotent
    second = _lockset("p", "k2", parent=first.hash)
    store.record_lockset(second)
    assert store.latest("p") == second
    assert store.get(first.hash[:6]) == first
    assert [s.hash for s in store.history("p")] == [second.hash, first.hash]
    assert store.projects() == ["p"]
    with pytest.raises(UsageError):
        store.get("abc")


def test_unwritable_database_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="Cannot create the database directory"):
        Store(f"sqlite:///{blocker / 'sub' / 'db.sqlite'}")
