"""Schema management: alembic revisions under the top-level ``migrations/``."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect

HEAD_TABLE = "alembic_version"
# The newest revision in migrations/versions; a test keeps it equal to alembic's
# head. Comparing against it avoids importing alembic on every open.
SCHEMA_HEAD = "0005"


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
        from sqlalchemy import text

        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return row[0] if row else None


def upgrade(engine: Engine, revision: str = "head") -> bool:
    """Bring the schema to ``revision``; return whether anything ran."""
    from alembic import command

    if revision == "head" and current_revision(engine) == SCHEMA_HEAD:
        return False
    command.upgrade(alembic_config(engine), revision)  # type: ignore[arg-type]
    return True
