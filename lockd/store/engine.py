"""Database URLs and engines: which driver, and how each backend is set up.

SQLite runs in WAL mode with a busy timeout, and every transaction takes the
write lock up front (``BEGIN IMMEDIATE``), so a transaction that reads a chain
head and appends to it is atomic against any other writer of the file.
PostgreSQL is spoken to through psycopg 3 (``postgresql://`` URLs are mapped
to it), in UTC, with connections checked before use; appends there are
serialised by :mod:`lockd.store.chain`.
"""

from __future__ import annotations

from collections.abc import Iterator
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
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
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
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def single_reads(engine: Engine) -> Engine:
    """``engine`` for reads of one statement each (the server's token and ingestion-state
    lookups, on every request). PostgreSQL: outside any transaction (autocommit; a
    statement sees one snapshot anyway), so neither a BEGIN nor a ROLLBACK costs a round
    trip. SQLite: in a deferred transaction (see ``read_snapshot``), never waiting for
    the write lock that every other lockd transaction takes."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
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
