"""The service's commands: ``lockd serve`` and ``lockd tokens``.

Registered on ``cli.app`` like every command module here, with the same rules:
parse, call a use case, render, and heavy imports inside the commands.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from ._app import DbOption, FormatOption, TableFormat, _Command, _Group, app, print_rows

tokens_app = typer.Typer(
    cls=_Group, help="API tokens of `lockd serve` (stored as hashes; shown once)."
)
app.add_typer(tokens_app, name="tokens")


class LogLevel(StrEnum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"


@app.command(cls=_Command)
def serve(
    host: Annotated[
        str, typer.Option("--host", metavar="HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", min=1, max=65535, help="Port to listen on.")
    ] = 8080,
    db: DbOption = None,
    public_read: Annotated[
        bool,
        typer.Option(
            "--public-read",
            help="Let anyone read (API, dashboard); writes need tokens ($LOCKD_SERVE_PUBLIC_READ).",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, max=64, metavar="N", help="Server processes (one per CPU)."
        ),
    ] = 1,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", help="How much the server logs.")
    ] = LogLevel.info,
) -> None:
    """Serve the record: API under /api/v1, fleet snapshots, the dashboard at /."""
    from ..server.run import ServeRequest
    from ..server.run import serve as run_server
    from ..settings import Settings

    run_server(
        ServeRequest(
            database_url=db or Settings.from_env().database_url,
            host=host,
            port=port,
            public_read=public_read,
            workers=workers,
            log_level=log_level.value,
        )
    )


@tokens_app.command("create", cls=_Command)
def tokens_create(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="A name to know the token by (ci, fleet-eu, …).")
    ],
    scope: Annotated[str, typer.Option("--scope", metavar="SCOPE", help="read, ingest or admin.")],
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires", metavar="DURATION", help="Lifetime: 90d, 12h, 2w (default: none)."
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Create a token and print it once; only its hash is stored."""
    from ..app.tokens import NewToken, create
    from ..settings import Settings
    from ..store import Store
    from ..times import parse_duration

    lifetime = parse_duration(expires, "--expires") if expires else None
    store = Store(db or Settings.from_env().database_url)
    try:
        created = create(store, NewToken(name, scope, lifetime))
    finally:
        store.close()
    typer.echo(created.token)
    until = f", expires {created.expires_at}" if created.expires_at else ""
    typer.echo(
        f"token {created.name!r} (scope {created.scope}{until}) created; it is shown only now.",
        err=True,
    )


@tokens_app.command("list", cls=_Command)
def tokens_list(db: DbOption = None, output_format: FormatOption = TableFormat.table) -> None:
    """List tokens: name, scope, created, expires, state (never the token)."""
    from datetime import UTC, datetime

    from ..app.record import require_database
    from ..report.console import print_json
    from ..settings import Settings
    from ..store import Store

    url = db or Settings.from_env().database_url
    require_database(url)  # a mistyped --db lists nothing: said, not created
    store = Store(url)
    try:
        found = store.tokens()
    finally:
        store.close()
    now = datetime.now(UTC)
    rows = [info.to_dict(now) for info in found]
    if output_format is TableFormat.json:
        print_json(rows)
        return
    print_rows(
        ("name", "scope", "created", "expires", "state"),
        [
            (r["name"], r["scope"], r["created_at"], r["expires_at"] or "never", r["state"])
            for r in rows
        ],
    )


@tokens_app.command("revoke", cls=_Command)
def tokens_revoke(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The token's name.")],
    db: DbOption = None,
) -> None:
    """Revoke a token at once (it stays listed, as revoked)."""
    from ..app.record import require_database
    from ..settings import Settings
    from ..store import Store

    url = db or Settings.from_env().database_url
    require_database(url)
    store = Store(url)
    try:
        store.revoke_token(name)
    finally:
        store.close()
    typer.echo(f"token {name!r} revoked", err=True)
