"""``lockd audit`` (and ``audit verify``) and ``lockd db``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, TypeVar

import typer

from ._app import (
    DbOption,
    FormatOption,
    TableFormat,
    _Command,
    audit_app,
    db_app,
)

T = TypeVar("T")


@db_app.command("upgrade", cls=_Command)
def db_upgrade(db: DbOption = None) -> None:
    """Create or upgrade the database schema to the latest revision."""
    from ..settings import Settings
    from ..store import Store
    from ..store.migrate import current_revision

    store = Store(db or Settings.from_env().database_url, migrate=False)
    try:
        ran = store.upgrade()
        typer.echo(
            f"database at revision {current_revision(store.engine)}{'' if ran else ' (already current)'}"
        )
    finally:
        store.close()


class AuditFormat(StrEnum):
    markdown = "markdown"
    html = "html"
    json = "json"
    cyclonedx = "cyclonedx"


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    project: Annotated[
        str | None,
        typer.Option("--project", metavar="NAME", help="Only this project (default: all)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="TIME", help="From this ISO date or time on, or a duration ago (7d)."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            metavar="TIME",
            help="Up to this ISO date (inclusive) or time, or a duration ago.",
        ),
    ] = None,
    lockset: Annotated[
        str | None,
        typer.Option(
            "--lockset",
            metavar="LOCKSET",
            help="cyclonedx: the lockset (default: the project's latest).",
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target", metavar="TARGET", help="cyclonedx: one target (default: all in one BOM)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", metavar="FILE", help="Write here (atomically), not stdout."),
    ] = None,
    db: DbOption = None,
    output_format: Annotated[
        AuditFormat, typer.Option("--format", help="Report format.")
    ] = AuditFormat.markdown,
) -> None:
    """Report every lockset, artifact, image and drift finding; exit 1 if a hash chain is broken."""
    if ctx.invoked_subcommand is not None:
        return
    from ..app import audit as use_cases
    from ..errors import EXIT_DRIFT, UsageError
    from ..report.audit_model import Period
    from ..settings import Settings

    url = db or Settings.from_env().database_url
    if output_format is AuditFormat.cyclonedx:
        text = use_cases.sbom(use_cases.SbomRequest(url, project, lockset, target))
        _write(output, output_format, lambda out: out.write(text.encode()))
        return
    if lockset or target:
        raise UsageError(
            "--lockset and --target choose what a CycloneDX SBOM describes.",
            hint="Add --format cyclonedx, or use --project/--since/--until to narrow a report.",
        )
    # A second process renders while this one reads and checks, where there is a core for it.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    processes = 2 if (cores or 1) > 1 else 1
    window = Period.parse(since, until)
    request = use_cases.AuditRequest(url, project, window.since, window.until, processes)
    chain = _write(
        output,
        output_format,
        lambda out: use_cases.write_report(request, output_format.value, out),
    )
    if not chain.ok:
        if chain.first is not None:
            typer.echo(f"hash chain broken: {chain.first.describe()}", err=True)
        raise typer.Exit(EXIT_DRIFT)


def _write(output: Path | None, output_format: AuditFormat, write: Callable[[IO[bytes]], T]) -> T:
    """What ``write`` writes, to stdout or (atomically: never half-written) to ``output``."""
    if output is None:
        result = write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return result
    from ..lockfiles.files import write_atomic_streamed

    result = write_atomic_streamed(output, write)
    typer.echo(f"{output_format.value} written to {output}", err=True)
    return result


@audit_app.command("verify", cls=_Command)
def audit_verify(
    project: Annotated[
        str | None,
        typer.Option("--project", metavar="NAME", help="Only this project (default: all)."),
    ] = None,
    db: DbOption = None,
    output_format: FormatOption = TableFormat.table,
) -> None:
    """Recompute every hash chain and cross-check the rows, and compare them with locks/ and git
    when run in a project directory; exit 1 at an altered or removed record."""
    from ..app import audit as use_cases
    from ..errors import EXIT_DRIFT
    from ..report.audit_model import chain_lines
    from ..report.console import print_json
    from ..settings import Settings

    url = db or Settings.from_env().database_url
    report = use_cases.verify_chains(use_cases.VerifyRequest(url, project, Path.cwd()))
    if output_format is TableFormat.json:
        print_json(report.to_dict())
    else:
        for line in chain_lines(report):
            typer.echo(line)
    if not report.ok:
        raise typer.Exit(EXIT_DRIFT)
