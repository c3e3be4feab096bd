"""The hash of a project's latest lockset, read without SQLAlchemy (SQLite only).

``lockd compile`` is a no-op when the lockset on disk is current and is the one
the database recorded last. Opening the store for that question imports
SQLAlchemy and alembic and checks the schema: about a second. For the default
database, a SQLite file, this module asks it directly with the standard
library's ``sqlite3``, read-only; anything else (another database, a URL with
options, a missing or unreadable file, a schema without the tables) answers
``UNKNOWN`` and the caller opens the store as before.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

UNKNOWN = "unknown"  # the question needs the full store


def latest_hash(url: str, project: str) -> str | None:
    """The latest lockset hash of ``project``, ``None`` if it has none, or ``UNKNOWN``."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url or url == prefix or ":memory:" in url:
        return UNKNOWN
    path = Path(url.removeprefix(prefix))
    if not path.is_file():
        return UNKNOWN  # a new database: compile creates and migrates it
    try:
        # mode=ro: never creates, never writes; a WAL database others write is read
        # at its last committed state, as any reader sees it.
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
            row = db.execute(
                "SELECT l.hash FROM locksets AS l JOIN projects AS p ON l.project_id = p.id "
                "WHERE p.name = ? ORDER BY l.id DESC LIMIT 1",
                (project,),
            ).fetchone()
    except sqlite3.Error:
        return UNKNOWN
    return str(row[0]) if row else None
