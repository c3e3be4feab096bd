"""SQLite writers take turns through a lock file before SQLite's own write lock
(``store.engine.WriterLockedConnection``): a writer waiting on another is let in when
the other finishes, not after SQLite's sleeps of up to 100 ms."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from lockd.store import Store
from lockd.store.engine import WriterLockedConnection


def _dbapi(store: Store, conn: object) -> WriterLockedConnection:
    raw = conn.connection.dbapi_connection  # type: ignore[attr-defined]
    assert isinstance(raw, WriterLockedConnection)
    return raw


def test_writers_wait_for_each_other_through_the_lock_file(tmp_path: Path) -> None:
    db = tmp_path / "lockd.db"
    first, second = Store(f"sqlite:///{db}"), Store(f"sqlite:///{db}")
    lock = Path(f"{db}-lockd-writers")
    with second.engine.connect() as waiting:
        with first.engine.begin() as writing:  # BEGIN IMMEDIATE: holds the writers' lock
            writing.execute(text("CREATE TABLE t (x INTEGER)"))
            assert lock.is_file()
            assert _dbapi(second, waiting).wait_for_writers(timeout=0.05) is False
        # committed: the lock is free at once
        assert _dbapi(second, waiting).wait_for_writers(timeout=0.05) is True
        _dbapi(second, waiting).writers_done()
    with first.engine.connect() as conn, conn.begin():
        conn.execute(text("INSERT INTO t VALUES (1)"))
        conn.rollback()  # a rollback lets the others in too
        assert _dbapi(second, conn).wait_for_writers(timeout=0.05) is True
        _dbapi(second, conn).writers_done()
    first.close()
    second.close()


def test_a_killed_writer_leaves_no_lock_behind(tmp_path: Path) -> None:
    db = tmp_path / "lockd.db"
    store = Store(f"sqlite:///{db}")  # opened (and migrated) before the writer below holds
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from sqlalchemy import text
                from lockd.store import Store
                store = Store("sqlite:///{db}")
                with store.engine.begin() as conn:
                    conn.execute(text("CREATE TABLE held (x INTEGER)"))
                    print("holding", flush=True)
                    time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with store.engine.connect() as conn:
            assert _dbapi(store, conn).wait_for_writers(timeout=0.05) is False
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait()
            assert _dbapi(store, conn).wait_for_writers(timeout=5) is True  # the kernel let go
            _dbapi(store, conn).writers_done()
        with store.engine.begin() as conn:  # and SQLite's own lock went with the process
            conn.execute(text("CREATE TABLE after (x INTEGER)"))
        store.close()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


@pytest.mark.parametrize("taken_by", ["a directory", "a fifo", "another user"])
def test_without_a_lock_file_of_our_own_writes_go_on_as_before(
    tmp_path: Path, taken_by: str
) -> None:
    """Where the lock file cannot be made, or is not a regular file of this user (another
    user could hold it to stall every write), SQLite's own wait is in charge; nothing
    fails."""
    db = tmp_path / "lockd.db"
    lock = Path(f"{db}-lockd-writers")
    if taken_by == "a directory":
        lock.mkdir()
    elif taken_by == "a fifo":
        os.mkfifo(lock)
    else:
        if os.geteuid() != 0:
            pytest.skip("giving a file to another user needs root")
        lock.touch()
        os.chown(lock, os.geteuid() + 1000, -1)
    store = Store(f"sqlite:///{db}")
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        assert _dbapi(store, conn).wait_for_writers(timeout=0.01) is None
    store.close()


def test_a_writer_that_cannot_get_its_turn_fails_as_busy_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the busy timeout spent on the writers' lock, SQLite is not waited for again."""
    from sqlalchemy.exc import OperationalError

    from lockd.store import engine

    monkeypatch.setattr(engine, "BUSY_TIMEOUT_MS", 200)
    db = tmp_path / "lockd.db"
    holder, waiter = Store(f"sqlite:///{db}"), Store(f"sqlite:///{db}")
    with holder.engine.begin() as held:
        held.execute(text("CREATE TABLE t (x INTEGER)"))
        started = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"), waiter.engine.begin():
            pass
        assert time.monotonic() - started < 10  # not the lock's wait and SQLite's again
    with waiter.engine.begin() as conn:  # and the busy timeout is back for the next one
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 200
    holder.close()
    waiter.close()


def test_a_connection_collected_without_close_lets_the_others_in(tmp_path: Path) -> None:
    import gc
    import sqlite3

    db = tmp_path / "lockd.db"
    first = sqlite3.connect(db, factory=WriterLockedConnection)
    assert first.wait_for_writers(timeout=0.01) is True
    second = sqlite3.connect(db, factory=WriterLockedConnection)
    assert second.wait_for_writers(timeout=0.01) is False
    del first
    gc.collect()
    assert second.wait_for_writers(timeout=0.01) is True
    second.close()


def test_the_stores_reads_neither_take_nor_wait_for_the_writers_turn(tmp_path: Path) -> None:
    """A dashboard page or ``lockd history`` reads while a compile or a drift run writes: the
    read begins deferred, sees the last commit and never queues behind the writer (nor makes
    the lock file, of a database it only reads)."""
    db = tmp_path / "lockd.db"
    Store(f"sqlite:///{db}").close()  # created (and migrated) first
    lock = Path(f"{db}-lockd-writers")
    lock.unlink(missing_ok=True)
    reader = Store(f"sqlite:///{db}")  # opening checks the schema revision: a read too
    assert reader.history() == [] and reader.projects() == []
    assert not lock.exists()  # opening and reading made no lock file
    writer = Store(f"sqlite:///{db}", migrate=False)
    with writer.engine.begin() as writing:  # holds the writers' lock, and SQLite's
        writing.execute(text("INSERT INTO projects (name, created_at) VALUES ('p', '2026-12-01')"))
        started = time.monotonic()
        assert reader.projects() == []  # the last commit, at once
        opened = Store(f"sqlite:///{db}")  # what `lockd history` does while a compile writes
        assert opened.history() == []
        assert time.monotonic() - started < 1.0
        opened.close()
    assert reader.projects() == ["p"]
    reader.close()
    writer.close()
