"""Commands on locks: ``snapshot``, ``compile``, ``history``, ``show``, ``diff``, ``why``."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ._app import (
    BuildArgOption,
    DbOption,
    FormatOption,
    OnlyProjectOption,
    TableFormat,
    _Command,
    app,
)


@app.command("snapshot", cls=_Command)
def snapshot_(
    python: Annotated[
        Path | None,
        typer.Option(
            "--python",
            metavar="PATH",
            help="Interpreter to inspect (default: $VIRTUAL_ENV, else lockd's).",
        ),
    ] = None,
    no_system: Annotated[
        bool, typer.Option("--no-system", help="Skip OS packages, libraries, driver and CUDA.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", metavar="FILE", help="Write the JSON here (atomically)."),
    ] = None,
    output_format: FormatOption = TableFormat.json,
    post: Annotated[
        str | None,
        typer.Option(
            "--post",
            metavar="URL",
            help="Send it to a lockd server (URL) and print the drift report; token from "
            "$LOCKD_TOKEN.",
        ),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", metavar="NAME", help="--post: the project it belongs to."),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", metavar="TARGET", help="--post: the target it runs.")
    ] = None,
    deployment: Annotated[
        str | None,
        typer.Option("--deployment", metavar="NAME", help="--post: this deployment's name."),
    ] = None,
    lockset: Annotated[
        str | None,
        typer.Option(
            "--lockset", metavar="HASH", help="--post: compare with this lockset (default: newest)."
        ),
    ] = None,
) -> None:
    """Record what an environment really contains: dists, torch build, system, driver."""
    from ..snapshot import snapshot_to_json, summary_rows, take_snapshot, write_snapshot

    if post is not None:
        from ..app.post import PostRequest, check_post_request

        request = PostRequest(post, project or "", target or "", deployment or "", lockset)
        check_post_request(request)  # before the snapshot: a missing flag fails fast
    if python is None and post is None and not os.environ.get("VIRTUAL_ENV"):
        # (--post runs inside a deployment, where lockd is installed next to the application)
        typer.echo(
            f"note: no --python and no $VIRTUAL_ENV: this is the snapshot of the interpreter "
            f"lockd runs in ({sys.executable}); pass --python PATH if your application runs "
            "in another one.",
            err=True,
        )
    taken = take_snapshot(python, system=not no_system)
    if post is not None:
        from ..app.post import post_snapshot

        code, report, line = post_snapshot(taken, request)
        sys.stdout.write(report)
        typer.echo(line, err=True)
        raise typer.Exit(code)
    if output is not None:
        write_snapshot(taken, output)
    if output_format is TableFormat.table:
        from rich.table import Table
        from rich.text import Text

        from ..report.console import make_console

        table = Table(show_header=False, box=None)
        for label, value in summary_rows(taken):
            table.add_row(Text(label, style="bold"), Text(value))  # Text: no markup in paths
        make_console().print(table)
    elif output is None:
        typer.echo(snapshot_to_json(taken), nl=False)
    else:
        typer.echo(f"snapshot written to {output}", err=True)


class ResolverName(StrEnum):
    uv = "uv"
    pip_tools = "pip-tools"


@app.command("compile", cls=_Command)
def compile_(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="INPUT",
            help="requirements.in, pyproject.toml or environment.yml files.",
            show_default=False,
        ),
    ] = None,
    cuda: Annotated[
        list[str] | None,
        typer.Option(
            "--cuda",
            metavar="VARIANT",
            help="cpu, cu118, cu124, 12.4, rocm6.2, xpu, … (repeatable; default: cpu).",
        ),
    ] = None,
    platform: Annotated[
        list[str] | None,
        typer.Option(
            "--platform",
            metavar="PLATFORM",
            help="linux-x86_64, linux-aarch64, macos-arm64 or windows-x86_64 "
            "(repeatable; default: this machine's).",
        ),
    ] = None,
    python: Annotated[
        list[str] | None,
        typer.Option(
            "--python",
            metavar="X.Y",
            help="Python minor version, e.g. 3.11 (repeatable; default: this Python's).",
        ),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", metavar="NAME", help="Project name in the database."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", help="Directory for lock files (default: locks/)."),
    ] = None,
    resolver: Annotated[
        ResolverName | None,
        typer.Option("--resolver", help="The resolution backend (default: uv)."),
    ] = None,
    index: Annotated[
        str | None,
        typer.Option("--index", metavar="URL", help="Default index URL ($LOCKD_INDEX_URL)."),
    ] = None,
    pytorch_index: Annotated[
        str | None,
        typer.Option(
            "--pytorch-index",
            metavar="URL",
            help="PyTorch index base URL, or 'pypi' ($LOCKD_PYTORCH_INDEX).",
        ),
    ] = None,
    pytorch_family: Annotated[
        list[str] | None,
        typer.Option(
            "--pytorch-family",
            metavar="NAME",
            help="Another package routed to the PyTorch index (repeatable).",
        ),
    ] = None,
    extra: Annotated[
        list[str] | None,
        typer.Option(
            "--extra",
            metavar="NAME",
            help="pyproject optional-dependency group to include (repeatable).",
        ),
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            metavar="NAME",
            help="pyproject [dependency-groups] group to include (PEP 735, repeatable).",
        ),
    ] = None,
    glibc: Annotated[
        str | None,
        typer.Option(
            "--glibc",
            metavar="X.Y",
            help="glibc of Linux targets (manylinux tag), default 2.28.",
        ),
    ] = None,
    exclude_newer: Annotated[
        str | None,
        typer.Option(
            "--exclude-newer",
            metavar="TIME",
            help="Resolve as of this time (indexes with upload times only).",
        ),
    ] = None,
    upgrade: Annotated[
        bool,
        typer.Option("--upgrade", help="Move every pin to the newest version the inputs allow."),
    ] = False,
    upgrade_package: Annotated[
        list[str] | None,
        typer.Option(
            "--upgrade-package",
            metavar="NAME[==VER]",
            help="Move this package's pin (to VER if given); other pins stay (repeatable).",
        ),
    ] = None,
    allow_build: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-build",
            metavar="NAME",
            help="Let this package build from source, which runs its code (repeatable; "
            "'*' for every package).",
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Only check that the locks on disk are current: exit 0 if so, 1 if stale.",
        ),
    ] = False,
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial", help="Record the targets that resolved even if others failed."
        ),
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Resolve again even if nothing changed.")
    ] = False,
    conda_channel: Annotated[
        list[str] | None,
        typer.Option(
            "--conda-channel",
            metavar="CHANNEL",
            help="Conda channel (name, URL or file://) put before environment.yml's channels "
            "(repeatable).",
        ),
    ] = None,
    image: Annotated[
        list[str] | None,
        typer.Option(
            "--image",
            metavar="REF",
            help="Base image to resolve to a digest and record (repeatable).",
        ),
    ] = None,
    dockerfile: Annotated[
        Path | None,
        typer.Option(
            "--dockerfile",
            metavar="PATH",
            help="Record the digests of this Dockerfile's FROM images.",
        ),
    ] = None,
    build_arg: BuildArgOption = None,
    db: DbOption = None,
    output_format: FormatOption = TableFormat.table,
) -> None:
    """Resolve, verify and record per-target locks (platform x Python x accelerator)."""
    from ..app.compile import CompileFlags, build_lock_request
    from ..errors import UsageError
    from ..report import console

    if check and (upgrade or upgrade_package or refresh):
        raise UsageError(
            "--check only looks at the locks on disk; it cannot upgrade or refresh them.",
            hint="Drop --upgrade/--upgrade-package/--refresh, or drop --check.",
        )
    flags = CompileFlags(
        inputs=tuple(inputs or ()),
        cuda=tuple(cuda or ()),
        platforms=tuple(platform or ()),
        pythons=tuple(python or ()),
        project=project,
        out=out,
        resolver=resolver.value if resolver else None,
        index_url=index,
        pytorch_index=pytorch_index,
        pytorch_family=tuple(pytorch_family or ()),
        extras=tuple(extra or ()),
        groups=tuple(group or ()),
        db=db,
        allow_partial=allow_partial,
        refresh=refresh,
        exclude_newer=exclude_newer,
        glibc=glibc,
        images=tuple(image or ()),
        dockerfile=dockerfile,
        build_args=tuple(build_arg or ()),
        conda_channels=tuple(conda_channel or ()),
        upgrade=upgrade,
        upgrade_packages=tuple(upgrade_package or ()),
        allow_build=tuple(allow_build or ()),
    )
    request = build_lock_request(flags, Path.cwd())
    if check:
        from ..app.compile import check_locks

        verdict = check_locks(request)
        if output_format is TableFormat.json:
            console.print_json(verdict.to_dict())
        else:
            console.print_check(verdict)
        raise typer.Exit(0 if verdict.current else 1)
    from ..app.compile import compile_lockset
    from ..heap import collector_paused

    with collector_paused(), console.target_progress([t.id for t in request.targets]) as progress:
        result = compile_lockset(request, progress)
    if output_format is TableFormat.json:
        console.print_json(console.compile_json(result))
    else:
        console.print_compile(result)
    if result.failures:
        raise typer.Exit(3)


@app.command(cls=_Command)
def history(
    project: OnlyProjectOption = None,
    db: DbOption = None,
    output_format: FormatOption = TableFormat.table,
) -> None:
    """List recorded locksets, newest first."""
    from ..app import record as use_cases
    from ..report import console
    from ..settings import Settings

    url = db or Settings.from_env().database_url
    rows = use_cases.history(url, project)
    if output_format is TableFormat.json:
        console.print_json(rows)
    elif not rows:
        from ..urls import strip_credentials

        of = f" of project {project}" if project else ""
        typer.echo(
            f"No locksets{of} recorded yet in {strip_credentials(url)}; run `lockd compile`."
        )
    else:
        console.print_history(rows)


@app.command(cls=_Command)
def show(
    lockset: Annotated[
        str, typer.Argument(metavar="LOCKSET", help="Lockset hash or unique prefix.")
    ],
    db: DbOption = None,
    output_format: FormatOption = TableFormat.table,
) -> None:
    """Show one lockset: targets, artifacts, inputs, provenance."""
    from ..app import record as use_cases
    from ..report import console
    from ..settings import Settings

    found, reports = use_cases.show(db or Settings.from_env().database_url, lockset)
    if output_format is TableFormat.json:
        console.print_json({**found.to_dict(), "drift_reports": [r.to_dict() for r in reports]})
    else:
        console.print_lockset(found)
        console.print_drift_checks(reports)


@app.command(cls=_Command)
def diff(
    lockset_a: Annotated[str, typer.Argument(metavar="LOCKSET_A", help="Older lockset.")],
    lockset_b: Annotated[str, typer.Argument(metavar="LOCKSET_B", help="Newer lockset.")],
    db: DbOption = None,
    output_format: FormatOption = TableFormat.table,
) -> None:
    """Compare two locksets per target: added, removed, upgraded, downgraded, changed."""
    from ..app import record as use_cases
    from ..report import console
    from ..settings import Settings

    result = use_cases.diff(db or Settings.from_env().database_url, lockset_a, lockset_b)
    if output_format is TableFormat.json:
        console.print_json(result)
    else:
        console.print_diff(result)


# The lockset a reading command is about (`why`, `spread`; see app/record.chosen_lockset).
ChosenProjectOption = Annotated[
    str | None,
    typer.Option(
        "--project",
        metavar="NAME",
        help="The project's latest recorded lockset (default: locks/lockd.json here).",
    ),
]
ChosenLocksetOption = Annotated[
    str | None,
    typer.Option(
        "--lockset",
        metavar="HASH",
        help="A recorded lockset (hash or unique prefix), instead of locks/lockd.json "
        "or the project's latest.",
    ),
]


@app.command(cls=_Command)
def spread(
    project: ChosenProjectOption = None,
    lockset: ChosenLocksetOption = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Do not ask the indexes (their versions, Requires-Python, wheels): the lockset only.",
        ),
    ] = False,
    db: DbOption = None,
    output_format: FormatOption = TableFormat.table,
) -> None:
    """Where the targets of a lockset differ: each package not locked at one version on
    every target, and why (accelerator or other build, requirement, marker, requirer,
    index, Requires-Python, wheels; else unknown). Exit 0 whatever differs."""
    from ..app.spread import SpreadRequest
    from ..app.spread import spread as explain
    from ..report import console
    from ..settings import Settings

    answer = explain(
        SpreadRequest(
            database_url=db or Settings.from_env().database_url,
            cwd=Path.cwd(),
            project=project,
            lockset=lockset,
            offline=offline,
            environ=dict(os.environ),
        )
    )
    if output_format is TableFormat.json:
        console.print_json(answer.to_dict())
    else:
        console.print_spread(answer)


@app.command(cls=_Command)
def why(
    package: Annotated[str, typer.Argument(metavar="PACKAGE", help="A locked package.")],
    target: Annotated[
        str | None,
        typer.Option(
            "--target", metavar="TARGET", help="Only this target (default: every target)."
        ),
    ] = None,
    project: ChosenProjectOption = None,
    lockset: ChosenLocksetOption = None,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, help="Paths shown per target.")
    ] = 20,
    db: DbOption = None,
    output_format: FormatOption = TableFormat.table,
) -> None:
    """Why a package is locked: every path from a direct input to it, with the requirement
    that brought it in at each step."""
    from ..app.why import WhyRequest
    from ..app.why import why as explain
    from ..report import console
    from ..settings import Settings

    answer = explain(
        WhyRequest(
            package=package,
            database_url=db or Settings.from_env().database_url,
            cwd=Path.cwd(),
            project=project,
            lockset=lockset,
            target=target,
            limit=limit,
        )
    )
    if output_format is TableFormat.json:
        console.print_json(answer.to_dict())
    else:
        console.print_why(answer)
