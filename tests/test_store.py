"""The database on SQLite and PostgreSQL: alembic revisions match the SQLModel tables,
every migration upgrades real data, and appends to a chain are serialised."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlmodel import SQLModel

from lockd.drift import DriftReport, Finding
from lockd.errors import StoreError, UsageError
from lockd.images import OCI_INDEX, OCI_MANIFEST, PlatformDigest, ResolvedImage
from lockd.lockset import Artifact, Lock, Lockset, Provenance, canonical_json
from lockd.store import Store
from lockd.store import tables as _tables  # noqa: F401 - registers the tables
from tests.support.postgres import Postgres


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


def test_migrations_match_the_models(db_url: str) -> None:
    from lockd.store.migrate import upgrade

    store = Store(db_url, migrate=False)
    assert upgrade(store.engine, replay=True)  # every revision, even on an empty SQLite file
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    store.close()


def _sqlite_schema(path: Path) -> dict[str, object]:
    """Every table of a SQLite file as SQLite describes it: columns in order (type, not
    null, default, key), indexes (unique, origin, columns), foreign keys; the revision."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        schema: dict[str, object] = {}
        for table in sorted(tables):
            indexes = {
                name: (unique, origin, [c[2] for c in conn.execute(f"PRAGMA index_info('{name}')")])
                for _, name, unique, origin, _partial in conn.execute(
                    f"PRAGMA index_list('{table}')"
                )
            }
            schema[table] = {
                "columns": conn.execute(f"PRAGMA table_xinfo('{table}')").fetchall(),
                # auto-index names number the constraints in DDL order: compare their columns
                "indexes": sorted(
                    (("autoindex" if n.startswith("sqlite_autoindex") else n), *v)
                    for n, v in indexes.items()
                ),
                "foreign_keys": sorted(
                    row[2:] for row in conn.execute(f"PRAGMA foreign_key_list('{table}')")
                ),
            }
        schema["revision"] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        return schema
    finally:
        conn.close()


def test_a_new_sqlite_database_is_created_at_the_head_as_migrations_would_leave_it(
    tmp_path: Path,
) -> None:
    """An empty SQLite file gets the head schema in one step, identical to replaying
    every revision; one that holds anything else is never created over."""
    from lockd.store.migrate import SCHEMA_HEAD, current_revision, upgrade

    created = Store(f"sqlite:///{tmp_path / 'created.db'}")
    assert current_revision(created.engine) == SCHEMA_HEAD
    created.record_lockset(_lockset("p", "k1"))  # usable as created
    created.close()
    replayed = Store(f"sqlite:///{tmp_path / 'replayed.db'}", migrate=False)
    assert upgrade(replayed.engine, replay=True)
    replayed.close()
    assert _sqlite_schema(tmp_path / "created.db") == _sqlite_schema(tmp_path / "replayed.db")

    other = tmp_path / "other.db"  # not empty: never "created" over what is there (refused:
    with sqlite3.connect(other) as conn:  # see test_another_programs_sqlite_file_…)
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    with pytest.raises(StoreError, match="not a lockd database"):
        Store(f"sqlite:///{other}")
    with sqlite3.connect(other) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("notes",)]
    conn.close()


def test_a_new_sqlite_database_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    probe = (
        "import sys\n"
        "from lockd.store import Store\n"
        f"Store({url!r}).close()\n"
        "print('alembic' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_record_and_read_back(db_url: str) -> None:
    store = Store(db_url)
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
    store.close()


def test_unwritable_database_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="Cannot create the database directory"):
        Store(f"sqlite:///{blocker / 'sub' / 'db.sqlite'}")


def test_schema_head_constant_matches_alembic() -> None:
    from lockd.store.migrate import SCHEMA_HEAD, head_revision

    assert head_revision() == SCHEMA_HEAD


def test_upgrade_from_0002_keeps_the_locksets_and_adds_images(db_url: str) -> None:
    from sqlalchemy import inspect

    from lockd.store.migrate import current_revision, head_revision, upgrade

    url = db_url
    old = Store(url, migrate=False)
    upgrade(old.engine, "0002")
    recorded = _lockset("p", "k1")
    with old.engine.begin() as conn:  # 0002's schema: no images table then
        _insert_old_lockset(conn, recorded)
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
    platforms = rows[0][4] if isinstance(rows[0][4], list) else json.loads(rows[0][4])
    assert platforms[0]["digest"] == "sha256:" + "2" * 64  # PostgreSQL's json comes parsed
    store.close()


def test_upgrade_from_0003_adds_tracked_images_and_keeps_the_records(db_url: str) -> None:
    from sqlalchemy import inspect

    from lockd.store.migrate import current_revision, head_revision, upgrade

    url = db_url
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
    store.close()


def test_upgrade_from_0005_keeps_every_time_in_utc(db_url: str) -> None:
    """0006 turns PostgreSQL's zone-less timestamps into zoned ones, read as UTC (as written)."""
    from lockd.store.migrate import upgrade

    old = Store(db_url, migrate=False)
    upgrade(old.engine, "0005")
    recorded = replace(_lockset("p", "k1"), locks=(), targets=())
    report = DriftReport("p", recorded.hash, "2026-01-02T03:04:05Z", (), parent=None)
    with old.engine.begin() as conn:
        _insert_old_lockset(conn, recorded)
        conn.execute(
            text(
                "INSERT INTO drift_reports (hash, parent_hash, project_id, lockset_hash, status, "
                "checked_at, finding_count, document) VALUES (:hash, NULL, 1, :lockset, "
                "'clean', '2026-01-02 03:04:05.000000', 0, :document)"
            ),
            {
                "hash": report.hash,
                "lockset": recorded.hash,
                "document": canonical_json(report.body()),
            },
        )
        conn.execute(
            text(
                "INSERT INTO tracked_images (project_id, reference, target, created_at) "
                "VALUES (1, 'registry.example/app:prod', 't', '2026-01-03 00:00:00.000000')"
            )
        )
    old.close()
    store = Store(db_url)
    assert [h.created_at for h in store.history("p")] == ["2026-01-01T00:00:00Z"]
    assert [t.created_at for t in store.tracked_images("p")] == ["2026-01-03T00:00:00Z"]
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert [r.hash for r in store.drift_reports("p", since=since)] == [report.hash]
    assert store.drift_reports("p", since=since + timedelta(seconds=1)) == []
    chains = store.verify_chains()
    assert chains.ok, chains.problems  # the columns still say what the documents say
    store.close()


def _insert_old_lockset(conn: Connection, recorded: Lockset) -> None:
    """Project ``p`` (id 1) and its lockset, column by column, created 2026-01-01 00:00 UTC."""
    conn.execute(text("INSERT INTO projects (id, name, created_at) VALUES (1, 'p', '2026-01-01')"))
    conn.execute(
        text(
            "INSERT INTO locksets (hash, project_id, parent_hash, input_key, resolver, "
            'resolver_version, cutoff, created_at, "user", host, git_commit, status, targets, '
            "inputs, indexes, failures, document) VALUES (:hash, 1, NULL, :key, 'uv', "
            "'0.13.9', :cutoff, '2026-01-01 00:00:00', 'u', 'h', NULL, 'complete', "
            ":targets, '[]', :indexes, '[]', :document)"
        ),
        {
            "hash": recorded.hash,
            "key": recorded.input_key,
            "cutoff": recorded.cutoff,
            "targets": json.dumps(list(recorded.targets)),
            "indexes": json.dumps(recorded.indexes),
            "document": canonical_json(recorded.body()),
        },
    )


def test_a_lockset_whose_parent_is_no_longer_the_head_is_refused(db_url: str) -> None:
    store = Store(db_url)
    first = _lockset("p", "k1")
    store.record_lockset(first)
    stale = _lockset("p", "k2", parent=None)  # compiled before `first` was recorded
    with pytest.raises(StoreError) as caught:
        store.record_lockset(stale)
    assert caught.value.exit_code == 3
    assert caught.value.render() == (
        f"Another compile recorded lockset {first.hash[:12]} for project p (by u on h) after "
        f"this one started from an empty history; lockset {stale.hash[:12]} was not recorded "
        "and no lock file was changed. Run `lockd compile` again to chain a new lockset after "
        "it. Checkouts whose locks should keep separate histories (two branches) need separate "
        "project names (--project, or project = in lockd.toml)."
    )
    assert [s.hash for s in store.history("p")] == [first.hash]
    store.close()


LOCKSET = _lockset("p", "k1")


def _report(i: int) -> DriftReport:
    finding = Finding("missing", "t", f"pkg{i % 3}", "1", None)
    return DriftReport("p", LOCKSET.hash, "2026-01-01T00:00:00Z", (finding,))


def test_concurrent_writers_keep_one_chain(db_url: str) -> None:
    """Drift runs from cron and compiles from users append to one chain, never fork it.

    The reports are alike on purpose (same time, findings repeating): two writers that
    read the same head would compute the same hash, and one of them would be lost.
    """
    setup = Store(db_url)
    setup.record_lockset(LOCKSET)
    setup.close()

    def record(i: int) -> str:
        store = Store(db_url)
        try:
            return store.record_drift(_report(i)).hash
        finally:
            store.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        recorded = list(pool.map(record, range(24)))
    store = Store(db_url)
    reports = store.drift_reports("p")
    assert sorted(r.hash for r in reports) == sorted(recorded)
    parents = [r.parent for r in reports]
    assert parents[-1] is None
    assert parents[:-1] == [r.hash for r in reports[1:]]  # newest first: each chained to the next
    assert store.verify_chains().ok
    store.close()


def test_an_append_waits_for_the_chain_lock_and_chains_after_the_holder(
    postgres: Postgres,
) -> None:
    """The second writer waits on the advisory lock and then sees the first one's record."""
    from sqlmodel import Session

    from lockd.store import drift_reports
    from lockd.store.chain import Chain, Head, append

    with postgres.database() as url:
        store = Store(url)
        store.record_lockset(LOCKSET)
        inside, release = threading.Event(), threading.Event()

        def slow_write(session: Session, head: Head) -> DriftReport:
            inside.set()
            assert release.wait(30)
            return drift_reports.insert(session, head, _report(0))

        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(
                append, store.engine, "p", Chain.DRIFT_REPORTS, slow_write, what="first"
            )
            assert inside.wait(30)
            second = pool.submit(store.record_drift, _report(1))
            _wait_for_advisory_lock_waiter(url)
            assert not second.done()
            release.set()
            held, waited = first.result(timeout=30), second.result(timeout=30)
        assert held.parent is None
        assert waited.parent == held.hash
        store.close()


def _wait_for_advisory_lock_waiter(url: str) -> None:
    """Poll (with a deadline) until a backend waits on an advisory lock."""
    import psycopg

    deadline = time.monotonic() + 30
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'"
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.02)  # polling interval
    raise AssertionError("no writer ever waited on the chain's advisory lock")


def test_a_fork_made_by_editing_rows_is_caught(db_url: str) -> None:
    """Re-parent the head report onto an older one, rehashed consistently: still a fork."""
    store = Store(db_url)
    store.record_lockset(LOCKSET)
    first, second, third = (store.record_drift(_report(i)) for i in range(3))
    forked = replace(third, parent=first.hash)
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE drift_reports SET hash = :hash, parent_hash = :parent, "
                "document = :document WHERE hash = :old"
            ),
            {
                "hash": forked.hash,
                "parent": first.hash,
                "document": canonical_json(forked.body()),
                "old": third.hash,
            },
        )
    report = store.verify_chains()
    assert not report.ok
    assert [p.to_dict() for p in report.problems] == [
        {
            "project": "p",
            "record": "drift-report",
            "ref": forked.hash,
            "change": "forked",
            "detail": f"it names {first.hash[:12]} as its parent, which already has a "
            f"successor ({second.hash[:12]}): the chain forks here (two records appended to "
            "one parent, or a parent link edited)",
        }
    ]
    store.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@db.example/lockd", "postgresql+psycopg"),
        ("postgres://u@db.example/lockd", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db.example/lockd", "postgresql+psycopg"),
        ("sqlite:////var/lib/lockd/lockd.db", "sqlite"),
    ],
)
def test_plain_postgresql_urls_use_psycopg(url: str, expected: str) -> None:
    from lockd.store.engine import database_url

    assert database_url(url).drivername == expected


def test_serialisation_failures_are_retried_then_reported_once(postgres: Postgres) -> None:
    """A real SQLSTATE 40001 from the server: retried; one that never clears is one message."""
    from sqlmodel import Session

    from lockd.store import chain, drift_reports
    from lockd.store.chain import Chain, Head, append

    fail = "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'conflict'; END $$"
    with postgres.database() as url, Store(url) as store:
        store.record_lockset(LOCKSET)
        attempts: list[int] = []

        def flaky(session: Session, head: Head) -> DriftReport:
            attempts.append(1)
            if len(attempts) < 3:
                session.execute(text(fail))
            return drift_reports.insert(session, head, _report(0))

        stored = append(store.engine, "p", Chain.DRIFT_REPORTS, flaky, what="a report")
        assert len(attempts) == 3
        assert [r.hash for r in store.drift_reports("p")] == [stored.hash]

        def hopeless(session: Session, head: Head) -> None:
            attempts.append(1)
            session.execute(text(fail))

        attempts.clear()
        with pytest.raises(StoreError) as caught:
            append(store.engine, "p", Chain.DRIFT_REPORTS, hopeless, what="the drift report of p")
        assert len(attempts) == chain.ATTEMPTS
        assert caught.value.render() == (
            f"Could not record the drift report of p after {chain.ATTEMPTS} attempts: conflict. "
            "Nothing was recorded. Check that the database is reachable and writable, then run "
            "the command again."
        )
        assert len(store.drift_reports("p")) == 1


def test_only_transient_failures_are_retried(tmp_path: Path) -> None:
    """An integrity error is not retried: the same transaction would fail again."""
    import sqlite3

    from sqlalchemy.exc import IntegrityError, OperationalError

    from lockd.store.chain import retryable

    locked = OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
    duplicate = IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert retryable(locked)
    assert not retryable(duplicate)


def _cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    from tests.conftest import hermetic_env, run_lockd

    run = run_lockd(*args, cwd=tmp_path, env=hermetic_env(tmp_path), timeout=120)
    return run.returncode, run.output


def test_another_programs_sqlite_file_is_refused_never_migrated(tmp_path: Path) -> None:
    """A mistyped --db that names some other program's SQLite file: every command refuses it
    (exit 3, one paragraph) and the file keeps exactly its own tables."""
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    before = path.read_bytes()
    refused = r"not a lockd database: it holds tables \('users'\) but no lockd schema revision"
    with pytest.raises(StoreError, match=refused):
        Store(f"sqlite:///{path}")
    for command in (("history",), ("tokens", "list"), ("db", "upgrade")):
        code, output = _cli(tmp_path, *command, "--db", f"sqlite:///{path}")
        assert code == 3 and "not a lockd database" in output, (command, output)
        assert "Traceback" not in output
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no lock file, no WAL
    # an empty file is a new database, as before
    empty = tmp_path / "new.db"
    empty.touch()
    Store(f"sqlite:///{empty}").close()
    # two commands opening one new file at once: the one that read "no revision" before the
    # other created the schema finds lockd's tables, and its revision, not a foreign file
    from lockd.store.migrate import _check_migratable

    created = Store(f"sqlite:///{empty}", migrate=False)
    _check_migratable(created.engine, None)
    created.close()


def test_a_database_a_newer_lockd_upgraded_is_refused_in_one_paragraph(tmp_path: Path) -> None:
    path = tmp_path / "lockd.db"
    Store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfacef00d'")
    with pytest.raises(StoreError, match=r"'f00dfacef00d', which this lockd .* does not know"):
        Store(f"sqlite:///{path}")
    for command in (("history",), ("db", "upgrade")):
        code, output = _cli(tmp_path, *command, "--db", f"sqlite:///{path}")
        assert code == 3 and "a newer lockd has upgraded it" in output, (command, output)
        assert "Traceback" not in output and "never downgrades" in output
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("f00dfacef00d",)
        ]
