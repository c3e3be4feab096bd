"""Schema management: alembic revisions under the top-level ``migrations/``.

Every lockd command opens the database and upgrades it when needed, so many
processes may migrate one fresh database at once. On PostgreSQL they take
turns on an advisory lock held around alembic (whoever comes second finds the
schema current); on SQLite alembic's transaction takes the file's write lock
first thing (``BEGIN IMMEDIATE``), which does the same.

An empty SQLite file is not migrated but created at the head in one transaction
(the tables' own DDL, the revision stamped; a test keeps that equal to the
replayed revisions): importing alembic and replaying seven revisions cost a
cold compile ≈ 0.13 s of CPU in the thread that shares the cores with uv.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import (
    Column,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    func,
    inspect,
    select,
    text,
)

HEAD_TABLE = "alembic_version"
# The newest revision in migrations/versions; a test keeps it equal to alembic's
# head. Comparing against it avoids importing alembic on every open.
SCHEMA_HEAD = "0009"
# The advisory lock key of migrations (any fixed 64-bit number; chains use hashed keys).
MIGRATION_LOCK = 0x6C6F636B64  # "lockd"


def migrations_dir() -> Path:
    """``migrations/`` in a checkout, ``lockd/_migrations`` in an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_migrations", package.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("lockd's alembic migrations are missing from this installation")


def alembic_config(engine: Engine) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations_dir()))
    head = script.get_current_head()
    if head is None:  # pragma: no cover - a packaging mistake
        raise FileNotFoundError("lockd's alembic migrations have no head revision")
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision stamped in the database (``None``: none), read without taking
    the writers' turn (``engine.reads``): every command asks this when it opens the store."""
    from .engine import reads

    with reads(engine).connect() as conn:
        if not inspect(conn).has_table(HEAD_TABLE):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return row[0] if row else None


class SchemaRefusedError(Exception):
    """A database this lockd must not migrate; ``Store.upgrade`` says which and why."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(what)
        self.what, self.hint = what, hint


def upgrade(engine: Engine, revision: str = "head", *, replay: bool = False) -> bool:
    """Bring the schema to ``revision``; return whether anything ran.

    An empty SQLite database brought to the head is created there in one step,
    unless ``replay`` (tests of the revisions themselves). A database that a newer
    lockd upgraded, or an SQLite file of another program, is refused
    (``SchemaRefusedError``): never downgraded, never given lockd's tables.
    """
    found = current_revision(engine)
    if revision == "head" and found == SCHEMA_HEAD:
        return False
    _check_migratable(engine, found)
    if revision == "head" and not replay and create_at_head(engine):
        return True
    with _migration_lock(engine):
        if revision == "head" and current_revision(engine) == SCHEMA_HEAD:
            return False  # another process migrated while this one waited
        from alembic import command

        command.upgrade(alembic_config(engine), revision)  # type: ignore[arg-type]
    return True


def _check_migratable(engine: Engine, found: str | None) -> None:
    """``SchemaRefusedError`` for a revision this lockd does not know, or an SQLite file that
    holds tables but no lockd revision (someone else's database, reached by a mistyped
    ``--db``)."""
    if found is not None:
        from alembic.script import ScriptDirectory

        known = {r.revision for r in ScriptDirectory(str(migrations_dir())).walk_revisions()}
        if found not in known:
            from .. import __version__

            raise SchemaRefusedError(
                f"is at schema revision {found[:32]!r}, which this lockd ({__version__}) does "
                "not know: a newer lockd has upgraded it",
                "Use that lockd (or a newer one) with this database; lockd never downgrades "
                "a database.",
            )
        return
    if engine.dialect.name != "sqlite":
        return
    from .engine import reads

    with reads(engine).connect() as conn:  # one snapshot: the tables and the revision
        tables = conn.execute(
            text(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
            )
        ).scalars()
        names = [str(name) for name in tables]
        stamped = (
            conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            if HEAD_TABLE in names
            else None
        )
    if stamped is not None:  # another process created the database since `found` was read
        _check_migratable(engine, str(stamped))
        return
    names = [name for name in names if name != HEAD_TABLE]
    if names:
        shown = ", ".join(repr(name[:40]) for name in names[:3]) + (", …" if len(names) > 3 else "")
        raise SchemaRefusedError(
            f"is not a lockd database: it holds tables ({shown}) but no lockd schema "
            "revision, and lockd does not add its tables to another program's database",
            "Point --db (or LOCKD_DATABASE_URL) at a lockd database, or at a path where "
            "lockd may create a new one.",
        )


def create_at_head(engine: Engine) -> bool:
    """Create the head schema in an empty SQLite database; ``False`` (nothing done) for
    any other database, or one that holds anything at all.

    The transaction takes the file's write lock first (``BEGIN IMMEDIATE``): of two
    processes opening one new file, the second finds it created and current.
    """
    if engine.dialect.name != "sqlite":
        return False
    from sqlmodel import SQLModel

    from . import tables  # noqa: F401 - registers lockd's tables

    with engine.begin() as conn:
        if conn.execute(text("SELECT count(*) FROM sqlite_master")).scalar_one():
            return False
        SQLModel.metadata.create_all(conn, checkfirst=False)  # empty: nothing to ask
        version = _version_table()
        version.create(conn)
        conn.execute(version.insert().values(version_num=SCHEMA_HEAD))
    return True


def _version_table() -> Table:
    """alembic's own version table (``DefaultImpl.version_table_impl``)."""
    return Table(
        HEAD_TABLE,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{HEAD_TABLE}_pkc"),
    )


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """PostgreSQL: a session advisory lock on a connection of its own, held while alembic runs."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(select(func.pg_advisory_lock(MIGRATION_LOCK)))
        try:
            yield
        finally:
            conn.execute(select(func.pg_advisory_unlock(MIGRATION_LOCK)))
