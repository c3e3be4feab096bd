"""Snapshot contents stored once by hash: ingestion, the readers, ``audit verify``, and
migrations 0008 (from a 0007 schema built in code) and 0009 (lz4, from 0008) on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import inspect, text

from lockd.app.fleet import Fleet, Ingestion, parse_posted
from lockd.drift import DriftReport
from lockd.lockset import canonical_json
from lockd.store import Posted, Store
from lockd.store.snapshots import snapshot_content
from tests.support.serve import TARGET, fleet_lockset, lock_files, snapshot_doc


def _count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608


def _body(taken_at: str, **changes: bool) -> bytes:
    return json.dumps({**snapshot_doc(**changes), "taken_at": taken_at}).encode()


def test_a_snapshot_posted_again_is_stored_once(db_url: str) -> None:
    store = Store(db_url)
    lockset, files = lock_files(fleet_lockset("vision"))
    store.record_lockset(lockset, files)
    fleet = Fleet(store, stale_after=timedelta(hours=1))
    for deployment, taken_at in (("d1", "2026-11-30T10:00:00Z"), ("d2", "2026-11-30T10:05:00Z")):
        fleet.ingest(Ingestion("vision", TARGET, deployment), _body(taken_at))
    fleet.ingest(Ingestion("vision", TARGET, "d1"), _body("2026-11-30T10:10:00Z", cpu_torch=True))
    assert (_count(store, "snapshots"), _count(store, "snapshot_documents")) == (3, 2)
    # d2 again: its baseline's content, named without being encoded again
    fleet.ingest(Ingestion("vision", TARGET, "d2"), _body("2026-11-30T10:15:00Z"))
    assert (_count(store, "snapshots"), _count(store, "snapshot_documents")) == (4, 2)

    # Each snapshot reads back whole, with its own time; the CLI's baseline likewise.
    _, first = store.ingestion_state("vision", Posted("d1", TARGET))
    _, second = store.ingestion_state("vision", Posted("d2", TARGET))
    assert first is not None and second is not None
    as_posted = parse_posted(_body("2026-11-30T10:00:00Z")).to_dict()
    key = snapshot_content(as_posted)[0]
    assert first.content == second.content == key
    assert store.snapshot(first.id) == (as_posted, key)
    assert store.snapshot(second.id) == ({**as_posted, "taken_at": "2026-11-30T10:15:00Z"}, key)
    assert store.baseline_snapshot("vision", TARGET) is None  # deployments' are their own
    assert store.verify_chains().ok  # a baseline named again is what its report compared
    store.close()


def test_upgrade_from_0007_stores_each_snapshot_content_once(db_url: str) -> None:
    from lockd.store.migrate import current_revision, head_revision, upgrade

    old = Store(db_url, migrate=False)
    upgrade(old.engine, "0007")
    report = DriftReport("vision", "l", "2026-11-30T10:00:00Z", (), checks=(f"live:{TARGET}",))
    clean = snapshot_doc()
    documents = [  # as 0007 stored them: the whole snapshot, once per post
        {**clean, "taken_at": "2026-11-30T09:00:00Z"},
        {**clean, "taken_at": "2026-11-30T10:00:00Z"},
        {**snapshot_doc(cpu_torch=True), "taken_at": "2026-11-30T10:00:00Z"},
    ]
    utc = "+00" if old.engine.dialect.name == "postgresql" else ""
    with old.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO projects (id, name, created_at) VALUES (1, 'vision', '2026-01-01')")
        )
        conn.execute(
            text(
                "INSERT INTO drift_reports (id, hash, parent_hash, project_id, lockset_hash, "
                "status, checked_at, finding_count, document) VALUES (1, :hash, NULL, 1, 'l', "
                "'clean', :checked, 0, :document)"
            ),
            {
                "hash": report.hash,
                "checked": f"2026-11-30 10:00:00{utc}",
                "document": canonical_json(report.body()),
            },
        )
        for n, document in enumerate(documents, 1):
            conn.execute(
                text(
                    "INSERT INTO snapshots (id, drift_report_id, target, taken_at, document, "
                    "deployment) VALUES (:id, 1, :target, :taken, :document, 'd1')"
                ),
                {
                    "id": n,
                    "target": TARGET,
                    "taken": document["taken_at"].replace("T", " ").rstrip("Z") + utc,
                    "document": canonical_json(document),
                },
            )
        conn.execute(
            text(
                "INSERT INTO deployments (id, project_id, target, name, lockset_hash, first_seen, "
                "last_seen, last_status, finding_kinds, finding_count, last_report_hash, "
                "baseline_snapshot_id) VALUES (1, 1, :target, 'd1', 'l', :first, :last, 'clean', "
                "'[]', 0, :hash, 2)"
            ),
            {
                "target": TARGET,
                "hash": report.hash,
                "first": f"2026-11-30 09:00:00{utc}",
                "last": f"2026-11-30 10:00:00{utc}",
            },
        )
    old.close()

    store = Store(db_url)  # opening upgrades to head
    assert current_revision(store.engine) == head_revision()
    assert (_count(store, "snapshots"), _count(store, "snapshot_documents")) == (3, 2)
    assert "document" not in {c["name"] for c in inspect(store.engine).get_columns("snapshots")}
    for n, document in enumerate(documents, 1):
        assert store.snapshot(n) == (document, snapshot_content(document)[0])
    baseline = (2, snapshot_content(documents[1])[0])
    assert store.ingestion_state("vision", Posted("d1", TARGET))[1] == baseline
    with store.engine.connect() as conn:
        keys = conn.execute(text("SELECT hash FROM snapshot_documents ORDER BY hash")).scalars()
        assert list(keys) == sorted({snapshot_content(d)[0] for d in documents})
    assert not [p for p in store.verify_chains().problems if p.record == "snapshot"]

    from alembic import command

    from lockd.store.migrate import alembic_config

    command.downgrade(alembic_config(store.engine), "0007")  # type: ignore[arg-type]
    # and back: each row has its whole document again
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT document FROM snapshots ORDER BY id")).scalars()
        assert [json.loads(d) for d in rows] == documents
    store.close()


def test_audit_verify_catches_an_edited_snapshot_content(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    lockset, files = lock_files(fleet_lockset("vision"))
    store.record_lockset(lockset, files)
    report = Fleet(store).ingest(Ingestion("vision", TARGET, "d1"), _body("2026-11-30T10:00:00Z"))
    assert store.verify_chains().ok
    with store.engine.begin() as conn:  # what someone editing the file would do
        conn.execute(
            text("UPDATE snapshot_documents SET document = replace(document, '2.6.0', '2.6.1')")
        )
    (problem,) = store.verify_chains().problems
    key = snapshot_content(parse_posted(_body("2026-11-30T10:00:00Z")).to_dict())[0]
    assert (problem.project, problem.record, problem.ref, problem.change) == (
        "vision",
        "snapshot",
        key,
        "altered",
    )
    assert f"drift report {report.hash}" in problem.detail
    assert not store.verify_chains("vision").ok and store.verify_chains("other").ok
    store.close()


def test_the_report_vouches_for_which_snapshot_it_compared(db_url: str) -> None:
    """Each stored content is intact, but a ``snapshots`` row names another one, another
    time, or is gone: the report's document records what it compared, so the chain says so."""
    store = Store(db_url)
    lockset, files = lock_files(fleet_lockset("vision"))
    store.record_lockset(lockset, files)
    fleet = Fleet(store)
    clean = fleet.ingest(Ingestion("vision", TARGET, "d1"), _body("2026-11-30T10:00:00Z"))
    drifted = fleet.ingest(
        Ingestion("vision", TARGET, "d1"), _body("2026-11-30T10:10:00Z", cpu_torch=True)
    )
    key = snapshot_content(parse_posted(_body("2026-11-30T10:00:00Z")).to_dict())[0]
    assert clean.to_dict()["compared"] == {
        TARGET: {"sha256": key, "taken_at": "2026-11-30T10:00:00Z"}
    }
    assert store.verify_chains().ok
    utc = "+00" if store.engine.dialect.name == "postgresql" else ""
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM snapshots ORDER BY id DESC LIMIT 1")).mappings()
        original = dict(row.one())
    columns = ", ".join(original)
    restore = f"INSERT INTO snapshots ({columns}) VALUES (:{', :'.join(original)})"  # noqa: S608 - the table's own column names
    for edit, said in (
        ("UPDATE snapshots SET document_hash = :clean WHERE id = :id", f"content {key[:12]}"),
        ("UPDATE snapshots SET taken_at = :earlier WHERE id = :id", "taken 2026-11-30T09:00"),
        ("DELETE FROM snapshots WHERE id = :id", "has no row in the snapshots table"),
    ):
        with store.engine.begin() as conn:  # as someone editing the database would
            conn.execute(
                text(edit), {"clean": key, "earlier": f"2026-11-30 09:00:00{utc}", **original}
            )
        (problem,) = store.verify_chains().problems
        assert (problem.record, problem.ref, problem.change) == (
            "drift-report",
            drifted.hash,
            "altered",
        )
        assert TARGET in problem.detail and said in problem.detail, problem.detail
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM snapshots WHERE id = :id"), original)
            conn.execute(text(restore), original)
        assert store.verify_chains().ok, edit
    store.close()


def test_the_cli_baseline_reads_one_report_however_many_are_clean(tmp_path: Path) -> None:
    """``baseline_snapshot`` finds the newest clean snapshot of the target with LIMIT 1 and
    never gathers every clean report of the project first: the work SQLite does (its
    virtual machine's steps) does not grow with the number of clean reports."""
    from sqlmodel import Session

    from lockd.store import drift_reports

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    lockset, files = lock_files(fleet_lockset("vision"))
    store.record_lockset(lockset, files)

    def post(count: int, start: int) -> None:  # clean local checks, each with its snapshot
        for n in range(start, start + count):
            taken_at = f"2026-11-30T{10 + n // 60:02d}:{n % 60:02d}:00Z"
            snapshot = json.loads(_body(taken_at))
            checks = (f"rebuild:{TARGET}",)
            store.record_drift(
                DriftReport(
                    "vision",
                    lockset.hash,
                    taken_at,
                    (),
                    checks=checks,
                    snapshots={TARGET: snapshot},
                )
            )

    def steps() -> tuple[int, object]:
        counted = [0]
        with store.engine.connect() as conn, Session(bind=conn) as session:
            raw = conn.connection.driver_connection
            raw.set_progress_handler(lambda: counted.__setitem__(0, counted[0] + 1) or 0, 1)
            found = drift_reports.baseline_snapshot(session, "vision", TARGET)
            raw.set_progress_handler(None, 1)
        return counted[0], found

    post(10, 0)
    few, found = steps()
    post(300, 10)
    many, newest = steps()
    assert found is not None and newest is not None
    assert newest["taken_at"] == "2026-11-30T15:09:00Z"  # the 310th check's, the newest
    assert many <= few + 50, (few, many)
    store.close()


def test_upgrade_from_0008_compresses_new_contents_with_lz4(db_url: str) -> None:
    """Migration 0009: PostgreSQL writes new snapshot contents with lz4 (the ones stored
    before stay pglz and read back the same); SQLite has nothing to change."""
    from lockd.store.migrate import current_revision, head_revision, upgrade

    old = Store(db_url, migrate=False)
    upgrade(old.engine, "0008")
    before = canonical_json({"dists": [f"pkg{i}" for i in range(5000)]})  # past TOAST's 2 KB
    after = canonical_json({"dists": [f"lib{i}" for i in range(5000)]})
    with old.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO snapshot_documents (hash, document) VALUES ('a', :d)"), {"d": before}
        )
    old.close()
    store = Store(db_url)  # migrates
    assert current_revision(store.engine) == head_revision() == "0009"
    with store.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO snapshot_documents (hash, document) VALUES ('b', :d)"), {"d": after}
        )
        rows = conn.execute(text("SELECT hash, document FROM snapshot_documents")).all()
        assert sorted((str(h), str(d)) for h, d in rows) == [("a", before), ("b", after)]
        if store.engine.dialect.name == "postgresql":
            methods = conn.execute(
                text(
                    "SELECT hash, pg_column_compression(document) FROM snapshot_documents "
                    "ORDER BY hash"
                )
            ).all()
            assert [tuple(m) for m in methods] == [("a", "pglz"), ("b", "lz4")]
    store.close()
