"""Database URLs and engines: which driver, and how each backend is set up.

SQLite runs in WAL mode with a busy timeout, and every transaction takes the
write lock up front (``BEGIN IMMEDIATE``), so a transaction that reads a chain
head and appends to it is atomic against any other writer of the file.
PostgreSQL is spoken to through psycopg 3 (``postgresql://`` URLs are mapped
to it), in UTC, with connections checked before use; appends there are
serialised by :mod:`lockd.store.chain`.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import stat
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlmodel import create_engine

from ..errors import ConfigError, StoreError, UsageError
from ..urls import strip_credentials

URL_HINT = "Use an SQLAlchemy URL such as sqlite:////path/lockd.db or postgresql://user@host/db."
# Extras of lockd that install a backend's driver.
DRIVER_EXTRAS = {"postgresql": "postgres"}
_READ_ONLY = "lockd_read_only"  # execution option of read_snapshot's connections
POOL_SIZE = 16  # PostgreSQL connections a process keeps open (see make_engine)
BUSY_TIMEOUT_MS = 30_000  # how long an SQLite writer waits for the others


def database_url(url: str) -> URL:
    """The URL as SQLAlchemy should load it: plain PostgreSQL URLs use psycopg 3.

    SQLAlchemy maps ``postgresql://`` to psycopg2, which lockd does not install,
    and does not know Heroku-style ``postgres://`` at all.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(
            f"Invalid database URL {strip_credentials(url)[:200]!r}.", hint=URL_HINT
        ) from None
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str) -> Engine:
    """An engine set up for lockd's access pattern (see the module docstring)."""
    parsed = database_url(url)
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if backend == "sqlite":
        _make_directory(parsed.database)
        connect_args["timeout"] = 30
        connect_args["factory"] = WriterLockedConnection
    elif backend == "postgresql":
        # The session's zone is UTC: times read back, and any value without a zone,
        # are never shifted into the server's local time zone.
        connect_args["options"] = "-c timezone=UTC"
        options["pool_pre_ping"] = True
        # Kept open between uses: a server process's request threads use up to this many
        # at once; past SQLAlchemy's default of 5, every connection returned was closed
        # and the next opened afresh (a PostgreSQL backend started, its statements
        # prepared again: a third of the database's CPU per ingested snapshot).
        options["pool_size"] = POOL_SIZE
    try:
        engine = create_engine(parsed, connect_args=connect_args, **options)
    except ImportError as exc:  # the URL's driver is not installed
        raise missing_driver(url, exc.name or str(exc)) from None
    except NoSuchModuleError:
        raise UsageError(
            f"Unknown database driver {parsed.drivername!r} in {strip_credentials(url)[:200]}.",
            hint=URL_HINT,
        ) from None
    except (SQLAlchemyError, ValueError) as exc:
        raise UsageError(
            f"Invalid database URL {strip_credentials(url)[:200]!r}: {reason(exc)}.",
            hint=URL_HINT,
        ) from None
    if backend == "sqlite":
        _immediate_transactions(engine)
    return engine


def missing_driver(url: str, module: str) -> ConfigError:
    backend = database_url(url).get_backend_name()
    extra = DRIVER_EXTRAS.get(backend)
    return ConfigError(
        f"The database URL {strip_credentials(url)[:200]} needs the Python module {module!r} "
        f"({backend}'s driver), which is not installed where lockd runs.",
        hint=f"Install lockd with its {extra} extra: pip install 'lockd[{extra}]'."
        if extra
        else f"Install {module} into lockd's environment, or use a sqlite:/// or "
        "postgresql:// URL.",
    )


def reason(exc: BaseException) -> str:
    """The database's own words: the driver's message, first line, bounded."""
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]


def missing_sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL when it does not exist (``None``: it does, or not SQLite).

    Commands that only read call it first, so a mistyped ``--db`` is said, not
    created as an empty database that then "verifies" or lists nothing.
    """
    parsed = database_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    path = Path(database)
    return None if path.exists() else path


def _make_directory(database: str | None) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.is_dir():  # SQLite would say "unable to open", or a reader see no records
        raise StoreError(
            f"The database {path} is a directory, not an SQLite file.",
            hint="Give --db / LOCKD_DATABASE_URL a file: sqlite:///path/to/lockd.db.",
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"Cannot create the database directory {path.parent}: {exc.strerror}."
        ) from None


def _immediate_transactions(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL is a lasting change to the file: not made to one that holds tables but no
        # lockd schema (another program's database, which lockd then refuses untouched).
        cursor.execute(
            "SELECT count(*), coalesce(sum(name IN ('alembic_version', 'locksets')), 0) "
            "FROM sqlite_master WHERE type = 'table'"
        )
        tables, ours = cursor.fetchone()
        if not tables or ours == 2:  # a new file, or lockd's
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        # pysqlite would BEGIN lazily, at the first write, after our reads of the
        # chain head: two writers could then both chain to the same parent.
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Connection) -> None:
        if connection.get_execution_options().get(_READ_ONLY):
            connection.exec_driver_sql("BEGIN")  # a reader: see read_snapshot
            return
        # Take the write lock up front: a transaction that reads the chain head
        # and appends to it is atomic against a concurrent compile or drift run.
        dbapi: Any = connection.connection.dbapi_connection
        turn = dbapi.wait_for_writers() if isinstance(dbapi, WriterLockedConnection) else None
        try:
            if turn is False:  # the writers' lock was not free in time: busy, at once
                connection.exec_driver_sql("PRAGMA busy_timeout=0")
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if turn:
                dbapi.writers_done()
            raise
        finally:
            if turn is False:
                connection.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


class WriterLockedConnection(sqlite3.Connection):
    """An SQLite connection whose write transactions take turns through a lock file first.

    SQLite's own wait for its write lock polls with sleeps of up to 100 ms: two processes
    writing in turn (the workers of ``lockd serve``, a compile beside a nightly drift)
    left each other waiting far longer than the writes took — 0.86 s at the 99th
    percentile of the server's posts where one post takes a few milliseconds. Here a
    writer first locks ``DATABASE-lockd-writers`` (``flock``: released by the kernel when
    a process dies, or when the connection is closed or collected), polling every
    millisecond or two; SQLite's lock is then free at once. Not free within the busy
    timeout (30 s), the transaction fails as busy at once (as SQLite's own wait would
    have after the same 30 s). Where the lock file cannot be made, or is not a regular
    file of this user (another user could hold it to stall every write), SQLite's own
    wait alone applies, as before.
    """

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        name = os.fsdecode(database) if isinstance(database, str | bytes | os.PathLike) else ""
        # In-memory and URI databases have no file of their own to put a lock beside.
        plain = name not in ("", ":memory:") and not kwargs.get("uri")
        # One lock per database file, however it was named (a link, a relative path).
        self._lock_path = f"{os.path.realpath(name)}-lockd-writers" if plain else None
        self._lock_fd: int | None = None
        self._close_fd: Callable[[], object] | None = None
        self._held = False

    def wait_for_writers(self, timeout: float | None = None) -> bool | None:
        """Take the writers' lock: ``True``; ``False`` when it was not free within
        ``timeout`` (default: the busy timeout); ``None`` when there is no lock file."""
        fd = self._lock_file()
        if fd is None:
            return None
        wait = BUSY_TIMEOUT_MS / 1000 if timeout is None else timeout
        deadline, pause = time.monotonic() + wait, 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 0.002)
                continue
            self._held = True
            return True

    def writers_done(self) -> None:
        if self._held and self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        self._held = False

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.writers_done()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.writers_done()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.writers_done()
            if self._close_fd is not None:
                self._close_fd()  # closes the lock file once
            self._lock_fd = self._close_fd = None

    def _lock_file(self) -> int | None:
        if self._lock_fd is None and self._lock_path is not None:
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
            try:
                fd = os.open(self._lock_path, flags, 0o644)
            except OSError:
                self._lock_path = None  # cannot be made here: SQLite's own wait only
                return None
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                os.close(fd)  # someone else's: SQLite's own wait only
                self._lock_path = None
                return None
            self._lock_fd = fd
            # A connection dropped without close() (a collected pool entry) still lets go.
            self._close_fd = weakref.finalize(self, os.close, fd)
        return self._lock_fd


def single_reads(engine: Engine) -> Engine:
    """``engine`` for reads of one statement each (the server's token and ingestion-state
    lookups, on every request). PostgreSQL: outside any transaction (autocommit; a
    statement sees one snapshot anyway), so neither a BEGIN nor a ROLLBACK costs a round
    trip. SQLite: as ``reads``, in a deferred transaction, never waiting for the write
    lock that every writing lockd transaction takes."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return reads(engine)


def reads(engine: Engine) -> Engine:
    """``engine`` for transactions that only read (the store's queries). SQLite: deferred,
    so a reader neither takes nor waits for the writers' turn (nor makes the lock file);
    PostgreSQL: as ``engine``."""
    if engine.dialect.name == "postgresql":
        return engine
    return engine.execution_options(**{_READ_ONLY: True})


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection that reads one consistent snapshot, without blocking writers.

    SQLite: a deferred transaction (WAL readers see the database as of their first
    read; ``BEGIN IMMEDIATE`` would hold the write lock for as long as the read lasts).
    PostgreSQL: a read-only ``REPEATABLE READ`` transaction.
    """
    options: dict[str, Any] = {_READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    with engine.connect().execution_options(**options) as conn, conn.begin():
        yield conn
