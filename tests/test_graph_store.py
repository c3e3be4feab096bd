"""The graph in the database: migration 0005 (SQLite and PostgreSQL), its rows, audit verify."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from sqlalchemy import inspect, text

from lockd.graph import Edge, Graph, Root
from lockd.lockset import Artifact, Lock, Lockset, Provenance, canonical_json
from lockd.store import Store
from lockd.store.migrate import current_revision, head_revision, upgrade

TARGET = "linux-x86_64-py311-cpu"
GRAPH = Graph.of(
    [
        Root("pandas", "pandas>=2.3", "-r requirements.in"),
        Root("numpy", "numpy<3", "-c c.txt", True),
    ],
    [Edge("pandas", "numpy", "numpy>=2.2"), Edge("requests", "pysocks", "pysocks", "socks")],
)


def _lockset(key: str, parent: str | None = None, graph: Graph | None = GRAPH) -> Lockset:
    arts = tuple(
        Artifact(n, "1", "https://pypi/simple", f"https://f/{n}.whl", f"{n}.whl", c * 64)
        for n, c in (("numpy", "a"), ("pandas", "b"), ("requests", "c"), ("pysocks", "d"))
    )
    return Lockset(
        project="p",
        inputs=(),
        requirements=("pandas>=2.3",),
        targets=(TARGET,),
        resolver="uv",
        resolver_version="0.13.9",
        indexes={"default": "https://pypi/simple"},
        cutoff="2026-01-01T00:00:00Z",
        input_key=key,
        provenance=Provenance("u", "h", "2026-01-01T00:00:00Z"),
        locks=(Lock(TARGET, arts, files={"x": "y"}, graph=graph),),
        parent=parent,
    )


def test_upgrade_from_0004_keeps_older_locksets_and_records_graphs(db_url: str) -> None:
    url = db_url
    old = Store(url, migrate=False)
    upgrade(old.engine, "0004")
    recorded = _lockset("k1", graph=None)
    # Written the way 0004's schema was, column by column (no dependencies table then).
    with old.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO projects (id, name, created_at) VALUES (1, 'p', '2026-01-01')")
        )
        conn.execute(
            text(
                "INSERT INTO locksets (id, hash, project_id, parent_hash, input_key, resolver, "
                'resolver_version, cutoff, created_at, "user", host, git_commit, status, targets, '
                "inputs, indexes, failures, document) VALUES (1, :hash, 1, NULL, 'k1', 'uv', "
                "'0.13.9', :cutoff, '2026-01-01 00:00:00', 'u', 'h', NULL, 'complete', "
                ":targets, '[]', :indexes, '[]', :document)"
            ),
            {
                "hash": recorded.hash,
                "cutoff": recorded.cutoff,
                "targets": f'["{TARGET}"]',
                "indexes": '{"default": "https://pypi/simple"}',
                "document": canonical_json(recorded.body()),
            },
        )
        conn.execute(
            text(
                "INSERT INTO locks (id, lockset_id, target, flavour, files) "
                "VALUES (1, 1, :t, NULL, :f)"
            ),
            {"t": TARGET, "f": '{"x": "y"}'},
        )
        for n, (name, c) in enumerate(
            (("numpy", "a"), ("pandas", "b"), ("requests", "c"), ("pysocks", "d")), start=1
        ):
            conn.execute(
                text(
                    'INSERT INTO artifacts (id, lock_id, name, version, "index", url, filename, '
                    "sha256, kind) VALUES (:id, 1, :n, '1', 'https://pypi/simple', :u, :f, :s, "
                    "'wheel')"
                ),
                {"id": n, "n": name, "u": f"https://f/{name}.whl", "f": f"{name}.whl", "s": c * 64},
            )
        if conn.dialect.name == "postgresql":  # rows given ids: move the id sequences past them
            for table in ("projects", "locksets", "locks", "artifacts"):
                conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                         f"(SELECT max(id) FROM {table}))")
                )  # fmt: skip
    assert "dependencies" not in inspect(old.engine).get_table_names()
    old.close()

    store = Store(url)  # opening upgrades to head
    assert current_revision(store.engine) == head_revision()
    assert "dependencies" in inspect(store.engine).get_table_names()
    assert store.get(recorded.hash[:8]) == recorded  # read, hashed and verified as before
    assert store.verify_chains().ok
    newer = _lockset("k2", parent=recorded.hash)
    store.record_lockset(newer)
    assert store.latest("p") == newer
    with store.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT kind, package, dependency, requirement, source, extra FROM dependencies "
                 "ORDER BY id")
        ).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [
        ("constraint", None, "numpy", "numpy<3", "-c c.txt", None),
        ("input", None, "pandas", "pandas>=2.3", "-r requirements.in", None),
        ("requires", "pandas", "numpy", "numpy>=2.2", None, None),
        ("requires", "requests", "pysocks", "pysocks", None, "socks"),
    ]
    assert store.verify_chains().ok
    store.close()


def test_audit_verify_catches_edited_and_orphaned_dependency_rows(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = Store(f"sqlite:///{path}")
    first = _lockset("k1")
    second = _lockset("k2", parent=first.hash)
    store.record_lockset(first)
    store.record_lockset(second)
    assert store.verify_chains().ok
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "UPDATE dependencies SET requirement = 'numpy>=1' WHERE package = 'pandas' AND "
            "lock_id = (SELECT id FROM locks WHERE lockset_id = 1)"
        )
        conn.commit()
    report = store.verify_chains()
    first_problem = report.first
    assert first_problem is not None
    assert (first_problem.ref, first_problem.change) == (first.hash, "altered")
    assert first_problem.detail == (
        f"target {TARGET}: dependency row requires pandas -> numpy (numpy>=1) is not in the "
        "document's graph"
    )
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "UPDATE dependencies SET requirement = 'numpy>=2.2' WHERE requirement = 'numpy>=1'"
        )
        conn.execute(
            "DELETE FROM dependencies WHERE kind = 'input' AND lock_id = "
            "(SELECT id FROM locks WHERE lockset_id = 2)"
        )
        conn.commit()
    problem = store.verify_chains().first
    assert problem is not None and problem.ref == second.hash
    assert problem.detail == (
        f"target {TARGET}: input -r requirements.in -> pandas (pandas>=2.3) of the document's "
        "graph is missing from its table"
    )
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "INSERT INTO dependencies (lock_id, kind, dependency, requirement, source) VALUES "
            "((SELECT id FROM locks WHERE lockset_id = 2), 'input', 'pandas', 'pandas>=2.3', "
            "'-r requirements.in')"
        )
        conn.execute(
            "DELETE FROM artifacts WHERE lock_id = (SELECT id FROM locks WHERE lockset_id = 1)"
        )
        conn.execute("DELETE FROM locks WHERE lockset_id = 1")
        conn.commit()
    orphans = store.verify_chains().orphans
    assert any("dependencies table" in o.detail for o in orphans)
    store.close()


def test_a_lock_without_a_graph_has_no_rows(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.record_lockset(replace(_lockset("k1"), locks=(Lock(TARGET, (), graph=None),)))
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dependencies")).scalar() == 0
    assert store.verify_chains().ok
    store.close()
