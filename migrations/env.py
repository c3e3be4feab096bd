"""Alembic environment: lockd passes its engine in ``config.attributes``.

On SQLite, a batch migration rebuilds a table (copy, drop, rename) that other
tables may refer to; SQLite's own recipe for that is to turn foreign keys off
for the rebuild (the pragma is a no-op inside a transaction, so it is set
before the migration's transaction begins) and to check every reference
before committing. Nothing is committed if a reference is left dangling.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` command line: take the URL from alembic.ini / -x url=
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(url)


def _migrate(connection: Connection) -> None:
    with connection.begin():
        context.configure(connection=connection, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        if connection.dialect.name == "sqlite":
            dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if dangling:
                from lockd.errors import StoreError

                table, row, parent, _ = dangling[0]
                raise StoreError(
                    f"Migrating the database left row {row} of table {table} referring to a "
                    f"missing row of {parent} ({len(dangling)} such rows). Nothing was changed."
                )


with engine.connect() as connection:
    if connection.dialect.name != "sqlite":
        _migrate(connection)
    else:
        raw = connection.connection.driver_connection
        raw.execute("PRAGMA foreign_keys=OFF")  # autocommit: before the transaction begins
        try:
            _migrate(connection)
        finally:
            raw.execute("PRAGMA foreign_keys=ON")
