"""Schema management: alembic revisions under the top-level ``migrations/``.

Every lockd command opens the database and upgrades it when needed, so many
processes may migrate one fresh database at once. On PostgreSQL they take
turns on an advisory lock held around alembic (whoever comes second finds the
schema current); on SQLite alembic's transaction takes the file's write lock
first thing (``BEGIN IMMEDIATE``), which does the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, func, inspect, select, text

HEAD_TABLE = "alembic_version"
# The newest revision in migrations/versions; a test keeps it equal to alembic's
# head. Comparing against it avoids importing alembic on every open.
SCHEMA_HEAD = "0007"
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
    if not inspect(engine).has_table(HEAD_TABLE):
        return None
    with engine.connect() as conn:
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return row[0] if row else None


def upgrade(engine: Engine, revision: str = "head") -> bool:
    """Bring the schema to ``revision``; return whether anything ran."""
    if revision == "head" and current_revision(engine) == SCHEMA_HEAD:
        return False
    with _migration_lock(engine):
        if revision == "head" and current_revision(engine) == SCHEMA_HEAD:
            return False  # another process migrated while this one waited
        from alembic import command

        command.upgrade(alembic_config(engine), revision)  # type: ignore[arg-type]
    return True


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
