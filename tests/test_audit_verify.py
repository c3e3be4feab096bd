"""`lockd audit verify`: rows edited with plain SQL are caught, and the right record is named."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from lockd.store import Store
from lockd.store.verify import LocksetRecord, Records, check_chains
from tests.test_audit import Seed, build_seed, run_lockd, sha


@pytest.fixture
def seed(tmp_path: Path) -> Seed:
    return build_seed(tmp_path / "lockd.db")


@contextmanager
def sql(seed: Seed) -> Iterator[sqlite3.Connection]:
    """Plain sqlite3, as someone tampering with the file would use it (no foreign keys)."""
    with closing(sqlite3.connect(seed.path)) as conn:
        yield conn
        conn.commit()


def lockset_id(conn: sqlite3.Connection, digest: str) -> int:
    return int(conn.execute("SELECT id FROM locksets WHERE hash = ?", (digest,)).fetchone()[0])


def verify(seed: Seed, tmp_path: Path) -> dict:  # type: ignore[type-arg]
    run = run_lockd(tmp_path, "audit", "verify", "--db", seed.url, "--format", "json")
    assert run.returncode == 1, run.output
    assert "Traceback" not in run.output
    return json.loads(run.stdout)  # type: ignore[no-any-return]


def test_an_intact_database_verifies(seed: Seed, tmp_path: Path) -> None:
    run = run_lockd(tmp_path, "audit", "verify", "--db", seed.url)
    assert run.returncode == 0, run.output
    assert "verified 2 projects: 4 locksets and 2 drift reports" in run.stdout
    as_json = run_lockd(tmp_path, "audit", "verify", "--db", seed.url, "--format", "json")
    doc = json.loads(as_json.stdout)
    assert doc["verified"] is True and doc["first_problem"] is None
    heads = {p["project"]: p["head_lockset"] for p in doc["projects"]}
    assert heads == {"ml-model": seed.ml[2], "web": seed.web}


def test_an_edited_artifact_hash_is_caught(seed: Seed, tmp_path: Path) -> None:
    with sql(seed) as conn:
        conn.execute(
            "UPDATE artifacts SET sha256 = ? WHERE name = 'numpy' AND lock_id IN "
            "(SELECT id FROM locks WHERE lockset_id = ?)",
            ("0" * 64, lockset_id(conn, seed.ml[1])),
        )
    doc = verify(seed, tmp_path)
    first = doc["first_problem"]
    assert (first["record"], first["ref"], first["change"]) == ("lockset", seed.ml[1], "altered")
    assert "numpy" in first["detail"] and "sha256" in first["detail"]
    assert "0" * 64 in first["detail"]
    # the text output names it too, and exit 1 is EXIT_DRIFT
    run = run_lockd(tmp_path, "audit", "verify", "--db", seed.url)
    assert run.returncode == 1
    assert f"first altered or removed record: lockset {seed.ml[1]}" in run.stdout


def test_an_edited_document_is_caught(seed: Seed, tmp_path: Path) -> None:
    with sql(seed) as conn:
        (document,) = conn.execute(
            "SELECT document FROM locksets WHERE hash = ?", (seed.ml[0],)
        ).fetchone()
        edited = document.replace('"user":"alice"', '"user":"mallory"')
        assert edited != document
        conn.execute("UPDATE locksets SET document = ? WHERE hash = ?", (edited, seed.ml[0]))
    first = verify(seed, tmp_path)["first_problem"]
    assert (first["ref"], first["change"]) == (seed.ml[0], "altered")
    assert "no longer matches its hash" in first["detail"]


def test_a_rehashed_document_is_caught_by_its_child(seed: Seed, tmp_path: Path) -> None:
    """Document and hash rewritten together: the next lockset's parent link breaks."""
    with sql(seed) as conn:
        (document,) = conn.execute(
            "SELECT document FROM locksets WHERE hash = ?", (seed.ml[0],)
        ).fetchone()
        edited = document.replace('"user":"alice"', '"user":"mallory"')
        new_hash = sha(edited)
        conn.execute(
            "UPDATE locksets SET document = ?, hash = ?, user = 'mallory' WHERE hash = ?",
            (edited, new_hash, seed.ml[0]),
        )
    first = verify(seed, tmp_path)["first_problem"]
    assert (first["ref"], first["change"]) == (seed.ml[0], "removed")
    assert seed.ml[1] in first["detail"]  # the child that still points at the original


def test_a_column_that_contradicts_the_document_is_caught(seed: Seed, tmp_path: Path) -> None:
    with sql(seed) as conn:
        conn.execute("UPDATE locksets SET git_commit = 'feedface' WHERE hash = ?", (seed.web,))
    first = verify(seed, tmp_path)["first_problem"]
    assert (first["project"], first["ref"], first["change"]) == ("web", seed.web, "altered")
    assert "git_commit" in first["detail"]


def test_a_deleted_middle_lockset_is_named(seed: Seed, tmp_path: Path) -> None:
    with sql(seed) as conn:
        middle = lockset_id(conn, seed.ml[1])
        lock_ids = "SELECT id FROM locks WHERE lockset_id = ?"
        conn.execute(f"DELETE FROM artifacts WHERE lock_id IN ({lock_ids})", (middle,))  # noqa: S608
        conn.execute("DELETE FROM locks WHERE lockset_id = ?", (middle,))
        conn.execute("DELETE FROM locksets WHERE id = ?", (middle,))
    doc = verify(seed, tmp_path)
    first = doc["first_problem"]
    assert (first["record"], first["ref"], first["change"]) == ("lockset", seed.ml[1], "removed")
    assert seed.ml[2] in first["detail"]
    # named once, although a drift report also checked it
    assert [p["ref"] for p in doc["projects"][0]["problems"]].count(seed.ml[1]) == 1


def test_a_deleted_row_leaves_orphans_that_are_reported(seed: Seed, tmp_path: Path) -> None:
    """Only the lockset row deleted (sqlite3 does not enforce foreign keys by default)."""
    with sql(seed) as conn:
        newest = lockset_id(conn, seed.ml[2])
        conn.execute("DELETE FROM locksets WHERE id = ?", (newest,))
    doc = verify(seed, tmp_path)
    # the newest lockset has no child, but its drift report and its lock rows give it away
    problems = [(p["record"], p["ref"], p["change"]) for p in doc["projects"][0]["problems"]]
    assert ("lockset", seed.ml[2], "removed") in problems
    assert ("lockset", f"id {newest}", "removed") in [
        (p["record"], p["ref"], p["change"]) for p in doc["orphans"]
    ]


def test_an_edited_image_digest_is_caught(seed: Seed, tmp_path: Path) -> None:
    with sql(seed) as conn:
        conn.execute("UPDATE images SET index_digest = ?", ("sha256:" + "0" * 64,))
    first = verify(seed, tmp_path)["first_problem"]
    assert (first["ref"], first["change"]) == (seed.ml[2], "altered")
    assert "image python:3.11-slim" in first["detail"] and "index_digest" in first["detail"]


def test_an_edited_drift_report_is_caught(seed: Seed, tmp_path: Path) -> None:
    with sql(seed) as conn:
        (document,) = conn.execute(
            "SELECT document FROM drift_reports WHERE hash = ?", (seed.drift[1],)
        ).fetchone()
        conn.execute(
            "UPDATE drift_reports SET document = ? WHERE hash = ?",
            (document.replace('"cpu-wheel"', '"version-creep"'), seed.drift[1]),
        )
    first = verify(seed, tmp_path)["first_problem"]
    assert (first["record"], first["ref"], first["change"]) == (
        "drift-report",
        seed.drift[1],
        "altered",
    )


def test_a_drift_status_column_edit_is_caught(seed: Seed, tmp_path: Path) -> None:
    with sql(seed) as conn:
        conn.execute("UPDATE drift_reports SET status = 'clean' WHERE hash = ?", (seed.drift[1],))
    first = verify(seed, tmp_path)["first_problem"]
    assert first["ref"] == seed.drift[1]
    assert "column status" in first["detail"]


def test_a_deleted_drift_report_breaks_the_drift_chain(seed: Seed, tmp_path: Path) -> None:
    with sql(seed) as conn:
        conn.execute("DELETE FROM drift_reports WHERE hash = ?", (seed.drift[0],))
    first = verify(seed, tmp_path)["first_problem"]
    assert (first["record"], first["ref"], first["change"]) == (
        "drift-report",
        seed.drift[0],
        "removed",
    )


def test_reports_state_a_broken_chain_and_exit_1(seed: Seed, tmp_path: Path) -> None:
    with sql(seed) as conn:
        conn.execute("UPDATE artifacts SET version = '9.9' WHERE id = 1")
    out = tmp_path / "audit.md"
    run = run_lockd(tmp_path, "audit", "--db", seed.url, "-o", str(out))
    assert run.returncode == 1, run.output
    assert "hash chain broken: lockset " + seed.ml[0] in run.stderr
    assert "**Hash chains BROKEN.**" in out.read_text()  # the report is still written
    as_json = run_lockd(tmp_path, "audit", "--db", seed.url, "--format", "json")
    assert json.loads(as_json.stdout)["summary"]["chain_verified"] is False


def test_checker_orders_problems_along_the_chain(seed: Seed) -> None:
    """Pure checker: two edits, the earlier record comes first."""
    store = Store(seed.url)
    try:
        records = store.chain_records("ml-model")
    finally:
        store.close()

    def tamper(record: LocksetRecord) -> LocksetRecord:
        return LocksetRecord(
            record.id,
            record.project,
            record.hash,
            record.parent_hash,
            record.document + " ",
            record.columns,
            record.locks,
        )

    edited = Records(
        (records.locksets[0], tamper(records.locksets[1]), tamper(records.locksets[2])),
        records.drift_reports,
    )
    report = check_chains(edited)
    assert not report.ok
    assert [p.ref for p in report.problems] == [seed.ml[1], seed.ml[2]]
    assert report.first is not None and report.first.ref == seed.ml[1]
    assert check_chains(records).ok


def test_a_report_with_only_information_is_clean_and_verifies(seed: Seed, tmp_path: Path) -> None:
    from lockd.drift import DriftReport, Finding

    store = Store(seed.url)
    try:
        info = Finding(
            "system-lib-missing",
            "linux-x86_64-py311-cu124",
            "libibverbs.so.1",
            "resolvable",
            "not found",
            severity="info",
            detail="plugin nvidia/cu13/lib/libcufile_rdma.so.1 would need it; no import loads them",
        )
        stored = store.record_drift(
            DriftReport("ml-model", seed.ml[2], "2026-03-16T03:00:00Z", (info,))
        )
    finally:
        store.close()
    assert stored.status == "clean"
    run = run_lockd(tmp_path, "audit", "verify", "--db", seed.url, "--format", "json")
    assert run.returncode == 0, run.output
    with sql(seed) as conn:
        status = conn.execute("SELECT status FROM drift_reports WHERE hash = ?", (stored.hash,))
        assert status.fetchone() == ("clean",)


def test_stored_lock_files_are_checked_against_the_document(tmp_path: Path) -> None:
    """The server hands out the stored lock files: an edited content, sha256 column or name,
    or a deleted file, is a lockset altered (found by a reviewer: verify said all clean)."""
    from tests.support.serve import fleet_lockset, lock_files

    url = f"sqlite:///{tmp_path / 'files.db'}"
    store = Store(url)
    lockset, files = lock_files(fleet_lockset("vision"))
    assert len(files) >= 2
    store.record_lockset(lockset, files)
    store.close()
    assert run_lockd(tmp_path, "audit", "verify", "--db", url).returncode == 0
    path = str(tmp_path / "files.db")
    with closing(sqlite3.connect(path)) as conn:
        original = conn.execute("SELECT * FROM lock_files ORDER BY id LIMIT 1").fetchone()
    name = original[2]
    for edit, said in (
        ("UPDATE lock_files SET content = content || 'evil==1.0' WHERE id = ?", "stored content"),
        ("UPDATE lock_files SET sha256 = '0000' WHERE id = ?", "in the lock_files table"),
        ("UPDATE lock_files SET name = 'other.txt' WHERE id = ?", "'other.txt', a file it does"),
        ("DELETE FROM lock_files WHERE id = ?", "missing from the lock_files table"),
    ):
        with closing(sqlite3.connect(path)) as conn:
            conn.execute(edit, (original[0],))
            conn.commit()
        run = run_lockd(tmp_path, "audit", "verify", "--db", url, "--format", "json")
        assert run.returncode == 1, (edit, run.output)
        first = json.loads(run.stdout)["first_problem"]
        assert (first["record"], first["ref"], first["change"]) == (
            "lockset",
            lockset.hash,
            "altered",
        )
        assert said in first["detail"], first["detail"]
        assert name in first["detail"] or "other.txt" in first["detail"]
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("DELETE FROM lock_files WHERE id = ?", (original[0],))
            marks = ", ".join("?" * len(original))
            conn.execute(f"INSERT INTO lock_files VALUES ({marks})", original)  # noqa: S608
            conn.commit()
    assert run_lockd(tmp_path, "audit", "verify", "--db", url).returncode == 0


def test_an_older_schema_is_refused_not_migrated(tmp_path: Path) -> None:
    """Verification never migrates what it examines: a migration rewrites the evidence."""
    from lockd.store.migrate import SCHEMA_HEAD, current_revision, upgrade

    older = f"{int(SCHEMA_HEAD) - 1:04d}"
    store = Store(f"sqlite:///{tmp_path / 'old.db'}", migrate=False)
    upgrade(store.engine, older, replay=True)
    run = run_lockd(tmp_path, "audit", "verify", "--db", store.url)
    assert run.returncode == 3, run.output
    assert f"is at schema revision {older}; this lockd reads {SCHEMA_HEAD}" in run.stderr
    assert "Traceback" not in run.output
    assert current_revision(store.engine) == older
    store.close()
