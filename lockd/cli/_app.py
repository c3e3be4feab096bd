"""The ``lockd`` application: its groups, the options commands share, and ``main``.

Every command module of this package registers on these objects; the rules are
the package's (see ``lockd/cli/__init__.py``).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from ..errors import LockdError
from ._params import install


class _Command(TyperCommand):
    """Help that names an argument with a word (``LOCKSET``), not its type (``<str>``).

    Options get their words from ``metavar``; typer prints an argument's type after
    its name whatever the metavar says. Parameters of plain types are coerced without
    pydantic (``_params``): ``lockd compile --check`` runs in every pre-commit hook.
    """

    def get_params(self, ctx: Any) -> list[Any]:
        return install(super().get_params(ctx))

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format_params(self, ctx, formatter)

    def invoke(self, ctx: Any) -> Any:
        _check_names(ctx.params)
        return super().invoke(ctx)


def _check_names(params: dict[str, Any]) -> None:
    """``--project`` and ``--deployment`` of every command, by the one rule (``names``)."""
    from ..names import check_name

    for label in ("project", "deployment"):
        value = params.get(label)
        if isinstance(value, str):
            check_name(label, value, where=f"--{label}", hint=f"Pass --{label} NAME on one line.")


class _Group(TyperGroup):
    """The same help and coercion for a command group (its own options: `lockd audit`)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return install(super().get_params(ctx))

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format_params(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def invoke(self, ctx: Any) -> Any:
        _check_names(ctx.params)
        return super().invoke(ctx)


def _format_params(command: TyperCommand | TyperGroup, ctx: Any, formatter: Any) -> None:
    arguments, options = [], []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        if param.param_type_name == "argument":
            name = param.metavar or (param.name or "").upper()
            arguments.append((name + ("..." if param.nargs != 1 else ""), record[1]))
        else:
            options.append(record)
    for title, rows in (("Arguments", arguments), ("Options", options)):
        if rows:
            with formatter.section(title):
                formatter.write_dl(rows)


app = typer.Typer(
    name="lockd",
    help="Dependency locks, CUDA verification, image digests and drift detection for ML.",
    no_args_is_help=True,
    cls=_Group,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rendering it with rich costs ~0.25 s per call
)
images_app = typer.Typer(
    cls=_Group,
    help="Resolve base image tags to digests; pin Dockerfiles; inspect and track images.",
)
db_app = typer.Typer(cls=_Group, help="Database maintenance.")


@app.callback(invoke_without_command=True)
def _root(
    show_version: Annotated[
        bool, typer.Option("--version", help="Print lockd's version and exit.", is_eager=True)
    ] = False,
) -> None:
    if show_version:
        from .. import __version__

        typer.echo(__version__)
        raise typer.Exit


app.add_typer(images_app, name="images")
app.add_typer(db_app, name="db")
audit_app = typer.Typer(
    cls=_Group,
    help="Audit reports (Markdown, HTML, JSON, CycloneDX SBOM); `verify` rechecks the hash chains.",
)
app.add_typer(audit_app, name="audit")
drift_app = typer.Typer(
    cls=_Group,
    help="Compare the record with reality; `summary` merges a period's reports (every shard's).",
)
app.add_typer(drift_app, name="drift")


class TableFormat(StrEnum):
    table = "table"
    json = "json"


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", metavar="URL", help="SQLAlchemy database URL (default: $LOCKD_DATABASE_URL)."
    ),
]
FormatOption = Annotated[TableFormat, typer.Option("--format", help="Output format.")]
OnlyProjectOption = Annotated[
    str | None, typer.Option("--project", metavar="NAME", help="Only this project.")
]
BuildArgOption = Annotated[
    list[str] | None,
    typer.Option(
        "--build-arg",
        metavar="NAME=VALUE",
        help="A Dockerfile ARG value, as `docker build --build-arg` (repeatable).",
    ),
]
PlatformOption = Annotated[
    str | None,
    typer.Option(
        "--platform",
        metavar="OS/ARCH",
        help="Target platform of the build (os/arch, e.g. linux/arm64) for TARGETPLATFORM, "
        "TARGETARCH, … (default: this machine's).",
    ),
]


def main() -> None:
    """Console entry point."""
    from ..heap import freeze_at_exit
    from ..processes import interrupted_by, stop_on_signals

    stop_on_signals()  # Ctrl-C and SIGTERM stop uv and pip-compile at once
    freeze_at_exit()
    try:
        # Standalone mode: click reports its own usage errors (exit 2) and exits; it
        # turns KeyboardInterrupt into exit 130 too.
        app()
    except LockdError as err:
        from ..report.console import print_error

        print_error(err)
        sys.exit(err.exit_code)
    except (KeyboardInterrupt, SystemExit):
        signum = interrupted_by()
        if signum is None:
            raise
        print("Interrupted; resolvers stopped, nothing was recorded.", file=sys.stderr)
        sys.exit(128 + signum)


@app.command(cls=_Command)
def version() -> None:
    """Print lockd's version."""
    from .. import __version__

    typer.echo(__version__)


def print_rows(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A rich table on a terminal; tab-separated lines (full digests, no wrapping) otherwise."""
    from ..report.console import make_console, printable

    if not sys.stdout.isatty():
        for row in (headers, *rows):
            typer.echo("\t".join(map(printable, row)))
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(*headers)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text: references are not markup
    make_console(soft_wrap=False).print(table)
