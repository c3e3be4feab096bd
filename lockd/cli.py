"""Thin typer layer: parse flags, build options, call a use case in ``app``, render, exit.

Imports of anything heavy happen inside the commands so that ``lockd --help``
stays fast. ``main`` is the single place that turns ``LockdError`` into a
message and an exit code.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .errors import EXIT_USAGE, LockdError

app = typer.Typer(
    name="lockd",
    help="Dependency locks, CUDA verification, image digests and drift detection for ML.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
images_app = typer.Typer(help="Resolve base image tags to digests; pin Dockerfiles.")
db_app = typer.Typer(help="Database maintenance.")
app.add_typer(images_app, name="images")
app.add_typer(db_app, name="db")


class TableFormat(StrEnum):
    table = "table"
    json = "json"


DbOption = Annotated[
    str | None,
    typer.Option("--db", help="SQLAlchemy database URL (default: $LOCKD_DATABASE_URL)."),
]
FormatOption = Annotated[TableFormat, typer.Option("--format", help="Output format.")]


def main() -> None:
    """Console entry point."""
    try:
        app(standalone_mode=False)
    except LockdError as err:
        from .report.console import print_error

        print_error(err)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("Interrupted; nothing was recorded.", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click's own usage errors
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(EXIT_USAGE)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise


@app.command()
def version() -> None:
    """Print lockd's version."""
    from . import __version__

    typer.echo(__version__)


