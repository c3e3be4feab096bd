"""The database: alembic revisions match the SQLModel tables; records survive failures."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from lockd.errors import StoreError, UsageError
from lockd.images import OCI_INDEX, OCI_MANIFEST, PlatformDigest, ResolvedImage
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


def test_schema_head_constant_matches_alembic() -> None:
    from lockd.store.migrate import SCHEMA_HEAD, head_revision

    assert head_revision() == SCHEMA_HEAD


def test_upgrade_from_0002_keeps_the_locksets_and_adds_images(tmp_path: Path) -> None:
    from sqlalchemy import inspect, text

    from lockd.lockset import canonical_json
    from lockd.store.migrate import current_revision, head_revision, upgrade

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    old = Store(url, migrate=False)
    upgrade(old.engine, "0002")
    recorded = _lockset("p", "k1")
    # Written the way 0002's schema was, column by column (no images table then).
    with old.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO projects (id, name, created_at) VALUES (1, 'p', '2026-01-01')")
        )
        conn.execute(
            text(
                "INSERT INTO locksets (hash, project_id, parent_hash, input_key, resolver, "
                "resolver_version, cutoff, created_at, user, host, git_commit, status, targets, "
                "inputs, indexes, failures, document) VALUES (:hash, 1, NULL, 'k1', 'uv', "
                "'0.13.9', :cutoff, '2026-01-01 00:00:00', 'u', 'h', NULL, 'complete', "
                ":targets, '[]', :indexes, '[]', :document)"
            ),
            {
                "hash": recorded.hash,
                "cutoff": recorded.cutoff,
                "targets": '["linux-x86_64-py311-cpu"]',
                "indexes": '{"default": "https://pypi/simple"}',
                "document": canonical_json(recorded.body()),
            },
        )
    assert "images" not in inspect(old.engine).get_table_names()
    old.close()

    store = Store(url)  # opening upgrades to head
    assert current_revision(store.engine) == head_revision()
    assert "images" in inspect(store.engine).get_table_names()
    assert store.get(recorded.hash[:8]) == recorded
    image = ResolvedImage(
        reference="python:3.11-slim",
        registry="docker.io",
        repository="library/python",
        tag="3.11-slim",
        index_digest="sha256:" + "1" * 64,
        media_type=OCI_INDEX,
        platforms=(PlatformDigest("linux", "arm64", "v8", "sha256:" + "2" * 64, OCI_MANIFEST),),
        resolved_at=datetime(2026, 1, 2, tzinfo=UTC),
    ).to_dict()
    newer = replace(_lockset("p", "k2", parent=recorded.hash), images=(image,))
    store.record_lockset(newer)
    assert store.latest("p") == newer
    with store.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT l.hash, i.reference, i.registry, i.index_digest, i.platforms "
                 "FROM images i JOIN locksets l ON l.id = i.lockset_id")
        ).all()  # fmt: skip
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (newer.hash, "python:3.11-slim", "docker.io", "sha256:" + "1" * 64)
    ]
    assert json.loads(rows[0][4])[0]["digest"] == "sha256:" + "2" * 64


def test_upgrade_from_0003_adds_tracked_images_and_keeps_the_records(tmp_path: Path) -> None:
    from sqlalchemy import inspect

    from lockd.store.migrate import current_revision, head_revision, upgrade

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    old = Store(url, migrate=False)
    upgrade(old.engine, "0003")  # the schema as 0003 left it, built by its own revisions
    old.record_lockset(_lockset("p", "k1"))
    assert "tracked_images" not in inspect(old.engine).get_table_names()
    old.close()

    store = Store(url)  # opening upgrades to head
    assert current_revision(store.engine) == head_revision()
    assert [s.hash for s in store.history("p")] == [_lockset("p", "k1").hash]
    assert store.track_image("p", "registry.example/app:prod", "linux-x86_64-py311-cpu")
    assert not store.track_image("p", "registry.example/app:prod", "linux-x86_64-py311-cpu")
    assert [(t.project, t.reference, t.target) for t in store.tracked_images()] == [
        ("p", "registry.example/app:prod", "linux-x86_64-py311-cpu")
    ]
    assert store.tracked_images("other") == []


def test_a_lockset_whose_parent_is_no_longer_the_head_is_refused(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    first = _lockset("p", "k1")
    store.record_lockset(first)
    stale = _lockset("p", "k2", parent=None)  # computed before `first` was recorded
    with pytest.raises(StoreError, match="Another run recorded lockset"):
        store.record_lockset(stale)
    assert [s.hash for s in store.history("p")] == [first.hash]


def test_concurrent_writers_keep_one_chain(tmp_path: Path) -> None:
    """Drift runs from cron and compiles from users append to one chain, never fork it."""
    from concurrent.futures import ThreadPoolExecutor

    from lockd.drift import DriftReport, Finding

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    Store(url).record_lockset(_lockset("p", "k1"))

    def record(i: int) -> None:
        store = Store(url)
        try:
            finding = Finding("missing", "t", f"pkg{i}", "1", None)
            store.record_drift(
                DriftReport("p", "lockset", f"2026-01-01T00:00:{i:02d}Z", (finding,))
            )
        finally:
            store.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(record, range(24)))
    reports = Store(url).drift_reports("p")
    assert len(reports) == 24
    parents = [r.parent for r in reports]
    hashes = [r.hash for r in reports]
    assert parents[-1] is None
    assert parents[:-1] == hashes[1:]  # newest first: each one's parent is the next older
