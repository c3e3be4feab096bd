"""``lockd drift`` (and ``drift summary``) and ``lockd schedule``."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._app import (
    DbOption,
    _Command,
    app,
    drift_app,
)

if TYPE_CHECKING:
    from ..drift import DriftReport
    from ..settings import Settings
    from ..shards import Shard


class DriftFormat(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"
    junit = "junit"


DriftFormatOption = Annotated[DriftFormat, typer.Option("--format", help="Output format.")]
OutputOption = Annotated[
    Path | None,
    typer.Option("-o", "--output", metavar="FILE", help="Write it to this file (atomically)."),
]


@drift_app.callback(invoke_without_command=True)
def drift(
    ctx: typer.Context,
    project: Annotated[
        str | None,
        typer.Option(
            "--project", metavar="NAME", help="Project to check (default: this directory's)."
        ),
    ] = None,
    lockset: Annotated[
        str | None,
        typer.Option(
            "--lockset", metavar="LOCKSET", help="Lockset hash or prefix (default: the latest)."
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", metavar="TARGET", help="Only this target.")
    ] = None,
    all_projects: Annotated[
        bool, typer.Option("--all", help="Every project's latest lockset (the nightly job).")
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            metavar="I/N",
            help="With --all: run shard I of N (1-based) of the checks. In a Kubernetes "
            "Indexed Job the shard comes from JOB_COMPLETION_INDEX and --shards/LOCKD_SHARDS.",
        ),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards", metavar="N", help="With --all: the number of shards ($LOCKD_SHARDS)."
        ),
    ] = None,
    python: Annotated[
        Path | None,
        typer.Option(
            "--python", metavar="PATH", help="Compare this live interpreter's environment."
        ),
    ] = None,
    snapshot: Annotated[
        Path | None,
        typer.Option(
            "--snapshot", metavar="FILE", help="Compare a snapshot file (lockd snapshot -o)."
        ),
    ] = None,
    rebuild: Annotated[
        bool | None,
        typer.Option(
            "--rebuild/--no-rebuild",
            help="Insist on rebuilding each target in a fresh venv, or never rebuild and only "
            "check that every locked file is still served (default: rebuild what this "
            "machine can build).",
        ),
    ] = None,
    creep: Annotated[
        bool, typer.Option("--creep/--no-creep", help="Re-resolve the loose inputs today.")
    ] = True,
    images: Annotated[
        bool, typer.Option("--images/--no-images", help="Re-resolve recorded base-image tags.")
    ] = True,
    image: Annotated[
        list[str] | None,
        typer.Option(
            "--image",
            metavar="REF",
            help="Check what this image contains instead of an environment (repeatable): "
            "REGISTRY/REPO:TAG, oci:DIR[:TAG] or docker-archive:FILE.",
        ),
    ] = None,
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            metavar="URL",
            help="Credentials for the recorded default index: its URL with user:token "
            "(as compile takes it; drift never checks another index).",
        ),
    ] = None,
    pytorch_index: Annotated[
        str | None,
        typer.Option(
            "--pytorch-index",
            metavar="URL",
            help="Credentials for the recorded PyTorch index, the same way.",
        ),
    ] = None,
    db: DbOption = None,
    output_format: DriftFormatOption = DriftFormat.table,
    output: OutputOption = None,
) -> None:
    """Compare the record with reality: rebuild or inspect, re-resolve, re-check images."""
    if ctx.invoked_subcommand is not None:
        return
    from ..app.drift import DriftOptions, exit_code, run_drift
    from ..errors import UsageError
    from ..report.drift import drift_progress
    from ..settings import Settings

    if python is not None and snapshot is not None:
        raise UsageError("Give either --python or --snapshot, not both.")
    if all_projects and (project or lockset or target or python or snapshot or image):
        raise UsageError(
            "--all checks every project's latest lockset and tracked images; drop the other "
            "selectors."
        )
    if image and (python or snapshot or rebuild):
        raise UsageError("--image checks an image; drop --python, --snapshot and --rebuild.")
    settings = Settings.from_env()
    if snapshot is not None:
        from ..snapshot import read_snapshot

        taken = read_snapshot(snapshot)  # a bad file fails before the database is opened
    if python is not None:
        from ..snapshot import take_snapshot

        # Taken once, before any work or record: a mistyped path or a program that is not
        # Python fails here (exit 2), and the environment is compared with the one target
        # of its Python, platform and torch, as a --snapshot file is.
        taken = take_snapshot(python)
    options = DriftOptions(
        database_url=db or settings.database_url,
        project=project,
        lockset=lockset,
        target=target,
        all_projects=all_projects,
        python=python,
        snapshot=taken if snapshot is not None or python is not None else None,
        rebuild=rebuild,
        creep=creep,
        images=images,
        concurrency=settings.concurrency,
        image_refs=tuple(image or ()),
        index_url=index,
        pytorch_index=pytorch_index,
        shard=_shard(all_projects, shard, shards, settings),
    )
    with drift_progress() as progress:
        reports = run_drift(options, progress)
    _write_drift(reports, output_format, output)
    raise typer.Exit(exit_code(reports))


def _shard(
    all_projects: bool, shard: str | None, shards: int | None, settings: Settings
) -> Shard | None:
    from ..errors import UsageError
    from ..shards import choose_shard

    if (shard is not None or shards is not None) and not all_projects:
        raise UsageError("--shard and --shards split the nightly run: add --all.")
    if not all_projects:
        return None
    count = shards if shards is not None else settings.shards
    return choose_shard(shard, count, settings.job_index)


def _write_drift(
    reports: list[DriftReport], output_format: DriftFormat, output: Path | None
) -> None:
    from ..report import drift as render

    if output_format is DriftFormat.table and output is None:
        render.print_drift_table(reports)
        return
    text = {
        DriftFormat.json: render.drift_json,
        DriftFormat.markdown: render.drift_markdown,
        DriftFormat.junit: render.drift_junit,
        DriftFormat.table: render.drift_markdown,
    }[output_format](reports)
    _write_text(text, output)


def _write_text(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        from ..lockfiles.files import write_atomic

        write_atomic(output, text.encode())


@drift_app.command("summary", cls=_Command)
def drift_summary(
    since: Annotated[
        str,
        typer.Option(
            "--since", metavar="TIME", help="A duration ago (24h, 90m, 7d) or an ISO date or time."
        ),
    ] = "24h",
    db: DbOption = None,
    output_format: DriftFormatOption = DriftFormat.table,
    output: OutputOption = None,
) -> None:
    """Merge every drift report of the period (all shards) into one result; exit 1 on drift."""
    from ..app.drift import exit_code
    from ..app.nightly import summarize
    from ..app.record import require_database
    from ..report import drift as render
    from ..settings import Settings
    from ..store import Store
    from ..times import parse_time

    url, start = db or Settings.from_env().database_url, parse_time(since, "--since")
    require_database(url)
    with Store(url) as store:
        summary = summarize(store, start)
    if output_format is DriftFormat.json:
        _write_text(render.summary_json(summary), output)
    else:
        _write_drift(summary.reports, output_format, output)
    raise typer.Exit(exit_code(summary.reports))


class Scheduler(StrEnum):
    cron = "cron"
    systemd = "systemd"
    k8s = "k8s"
    github = "github"


@app.command(cls=_Command)
def schedule(
    print_: Annotated[Scheduler, typer.Option("--print", help="Which recipe to print.")],
    shards: Annotated[
        int,
        typer.Option(
            "--shards",
            metavar="N",
            help="k8s, github: spread the run over N workers (an Indexed Job, a matrix).",
        ),
    ] = 1,
) -> None:
    """Print a ready recipe for the nightly `lockd drift --all` run."""
    from ..report.schedule import recipe

    sys.stdout.write(recipe(print_.value, shards))
