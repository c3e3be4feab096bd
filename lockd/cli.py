"""Thin typer layer: parse flags, build options, call a use case in ``app``, render, exit.

Imports of anything heavy happen inside the commands so that ``lockd --help``
stays fast. ``main`` is the single place that turns ``LockdError`` into a
message and an exit code.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from .errors import LockdError, clipped, sentence


class _Command(TyperCommand):
    """Help that names an argument with a word (``LOCKSET``), not its type (``<str>``).

    Options get their words from ``metavar``; typer prints an argument's type after
    its name whatever the metavar says.
    """

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format_params(self, ctx, formatter)


class _Group(TyperGroup):
    """The same help for a command group that takes options itself (`lockd audit`)."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format_params(self, ctx, formatter)
        self.format_commands(ctx, formatter)


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


if TYPE_CHECKING:
    from .drift import DriftReport
    from .settings import Settings
    from .shards import Shard

app = typer.Typer(
    name="lockd",
    help="Dependency locks, CUDA verification, image digests and drift detection for ML.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rendering it with rich costs ~0.25 s per call
)
images_app = typer.Typer(
    help="Resolve base image tags to digests; pin Dockerfiles; inspect and track images."
)
db_app = typer.Typer(help="Database maintenance.")
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
    from .processes import interrupted_by, stop_on_signals

    stop_on_signals()  # Ctrl-C and SIGTERM stop uv and pip-compile at once
    try:
        # Standalone mode: click reports its own usage errors (exit 2) and exits; it
        # turns KeyboardInterrupt into exit 130 too.
        app()
    except LockdError as err:
        from .report.console import print_error

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
    from . import __version__

    typer.echo(__version__)


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
    from .snapshot import snapshot_to_json, summary_rows, take_snapshot, write_snapshot

    if post is not None:
        from .app.post import PostRequest, check_post_request

        request = PostRequest(post, project or "", target or "", deployment or "", lockset)
        check_post_request(request)  # before the snapshot: a missing flag fails fast
    taken = take_snapshot(python, system=not no_system)
    if post is not None:
        from .app.post import post_snapshot

        code, report, line = post_snapshot(taken, request)
        if report:
            sys.stdout.write(report)
        typer.echo(line, err=True)
        raise typer.Exit(code)
    if output is not None:
        write_snapshot(taken, output)
    if output_format is TableFormat.table:
        from rich.table import Table
        from rich.text import Text

        from .report.console import make_console

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
    from .app.compile import CompileFlags, build_lock_request
    from .errors import UsageError
    from .report import console

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
        from .app.compile import check_locks

        verdict = check_locks(request)
        if output_format is TableFormat.json:
            console.print_json(verdict.to_dict())
        else:
            console.print_check(verdict)
        raise typer.Exit(0 if verdict.current else 1)
    from .app.compile import compile_lockset

    with console.target_progress([t.id for t in request.targets]) as progress:
        result = compile_lockset(request, progress)
    if output_format is TableFormat.json:
        console.print_json(console.compile_json(result))
    else:
        console.print_compile(result)
    if result.failures:
        raise typer.Exit(3)


@app.command(cls=_Command)
def history(
    project: Annotated[
        str | None, typer.Option("--project", metavar="NAME", help="Only this project.")
    ] = None,
    db: DbOption = None,
    output_format: FormatOption = TableFormat.table,
) -> None:
    """List recorded locksets, newest first."""
    from .app import record as use_cases
    from .report import console
    from .settings import Settings

    rows = use_cases.history(db or Settings.from_env().database_url, project)
    if output_format is TableFormat.json:
        console.print_json(rows)
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
    from .app import record as use_cases
    from .report import console
    from .settings import Settings

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
    from .app import record as use_cases
    from .report import console
    from .settings import Settings

    result = use_cases.diff(db or Settings.from_env().database_url, lockset_a, lockset_b)
    if output_format is TableFormat.json:
        console.print_json(result)
    else:
        console.print_diff(result)


@app.command(cls=_Command)
def why(
    package: Annotated[str, typer.Argument(metavar="PACKAGE", help="A locked package.")],
    target: Annotated[
        str | None,
        typer.Option(
            "--target", metavar="TARGET", help="Only this target (default: every target)."
        ),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            metavar="NAME",
            help="The project's latest recorded lockset (default: locks/lockd.json here).",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, help="Paths shown per target.")
    ] = 20,
    db: DbOption = None,
    output_format: FormatOption = TableFormat.table,
) -> None:
    """Why a package is locked: every path from a direct input to it, with the requirement
    that brought it in at each step."""
    from .app.why import WhyRequest
    from .app.why import why as explain
    from .report import console
    from .settings import Settings

    answer = explain(
        WhyRequest(
            package=package,
            database_url=db or Settings.from_env().database_url,
            cwd=Path.cwd(),
            project=project,
            target=target,
            limit=limit,
        )
    )
    if output_format is TableFormat.json:
        console.print_json(answer.to_dict())
    else:
        console.print_why(answer)


@images_app.command("resolve", cls=_Command)
def images_resolve(
    references: Annotated[
        list[str], typer.Argument(metavar="REF", help="Image references, e.g. python:3.11-slim.")
    ],
    output_format: FormatOption = TableFormat.table,
) -> None:
    """Resolve image tags to digests: the index and each platform's manifest."""
    from .images import RegistryOptions, resolve_images
    from .report.console import print_json

    images = resolve_images(references, RegistryOptions.from_env())
    if output_format is TableFormat.json:
        print_json({"images": [image.to_dict() for image in images]})
        return
    rows: list[tuple[str, ...]] = []
    for image in images:
        kind = "index" if image.is_index else "manifest"
        rows.append((image.reference, kind, image.index_digest))
        rows += [("", p.oci_platform, p.digest) for p in image.platforms]
    _print_image_rows(("image", "platform", "digest"), rows)


@images_app.command("pin", cls=_Command)
def images_pin(
    dockerfile: Annotated[
        Path, typer.Argument(metavar="DOCKERFILE", help="The Dockerfile whose FROM lines to pin.")
    ],
    write: Annotated[
        bool, typer.Option("--write", help="Rewrite the FROM lines in place (atomically).")
    ] = False,
    build_arg: BuildArgOption = None,
    platform: PlatformOption = None,
    output_format: FormatOption = TableFormat.table,
) -> None:
    """Show a Dockerfile's FROM lines pinned to digests; --write rewrites the file.

    Exits 1 when a FROM cannot be pinned in place (the table says why and how to fix it).
    """
    from .errors import EXIT_DRIFT
    from .images import (
        BuildOptions,
        RegistryClient,
        RegistryOptions,
        parse_build_args,
        pin_dockerfile,
    )
    from .report.console import print_json

    options = BuildOptions(parse_build_args(build_arg or ()), platform)
    with RegistryClient(RegistryOptions.from_env()) as client:
        result = pin_dockerfile(dockerfile, client.resolve, write=write, options=options)
    if output_format is TableFormat.json:
        print_json(result.to_dict())
    else:
        rows: list[tuple[str, ...]] = [
            (
                str(e.instruction.line),
                clipped(e.instruction.image, 80),
                clipped(e.pinned_reference or "", 160),
                str(e.status).replace("-", " "),
            )
            for e in result.entries
        ]
        _print_image_rows(("line", "from", "pinned", "status"), rows)
        for entry in result.not_pinned:
            typer.echo(
                f"{dockerfile} line {entry.instruction.line}: not pinned: "
                f"{sentence(entry.reason or '')} Fix: {sentence(entry.fix or '')}",
                err=True,
            )
        if result.written:
            typer.echo(f"{dockerfile} rewritten with digests.", err=True)
        elif result.changed:
            typer.echo(f"Run again with --write to pin {dockerfile}.", err=True)
    if result.not_pinned:
        raise typer.Exit(EXIT_DRIFT)


class InspectFormat(StrEnum):
    table = "table"
    json = "json"
    cyclonedx = "cyclonedx"


@images_app.command("inspect", cls=_Command)
def images_inspect(
    reference: Annotated[
        str,
        typer.Argument(
            metavar="REF", help="REGISTRY/REPO:TAG[@DIGEST], oci:DIR[:TAG] or docker-archive:FILE."
        ),
    ],
    platform: Annotated[
        str | None,
        typer.Option(
            "--platform",
            metavar="OS/ARCH",
            help="The platform of a multi-platform image (default: this one).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", metavar="FILE", help="Write here (atomically), not stdout."),
    ] = None,
    output_format: Annotated[
        InspectFormat, typer.Option("--format", help="Output format.")
    ] = InspectFormat.table,
) -> None:
    """What an image really contains (read without a runtime): snapshot, sizes, SBOM."""
    from .images import InspectRequest, RegistryOptions, inspect_image
    from .report import image as render

    if output is not None and output_format is InspectFormat.table:
        from .errors import UsageError

        raise UsageError("-o writes json or cyclonedx.", hint="Add --format json or cyclonedx.")
    request = InspectRequest(reference, platform, RegistryOptions.from_env())
    with render.step_progress("reading") as progress:
        inspection = inspect_image(request, progress)
    if output_format is InspectFormat.table:
        render.print_inspection(inspection)
        return
    if output_format is InspectFormat.cyclonedx:
        text = render.render_image_sbom(inspection)
    else:
        import json

        text = json.dumps(inspection.to_dict(), indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        from .lockfiles.files import write_atomic

        write_atomic(output, text.encode())


@images_app.command("track", cls=_Command)
def images_track(
    reference: Annotated[str, typer.Argument(metavar="REF", help="The image to check nightly.")],
    target: Annotated[
        str, typer.Option("--target", metavar="ID", help="The lockset target the image ships.")
    ],
    project: Annotated[
        str | None,
        typer.Option("--project", metavar="NAME", help="Project (default: this directory's)."),
    ] = None,
    db: DbOption = None,
    output_format: FormatOption = TableFormat.table,
) -> None:
    """Track an image: `lockd drift --all` checks it against its project's latest lockset."""
    from .app.image_drift import TrackRequest, track_image
    from .report.console import print_json
    from .settings import Settings

    request = TrackRequest(db or Settings.from_env().database_url, reference, target, project)
    added, tracked = track_image(request)
    if output_format is TableFormat.json:
        print_json({"added": added, "tracked": [t.to_dict() for t in tracked]})
        return
    typer.echo(
        f"{reference} {'now tracked' if added else 'was already tracked'} for {target}.", err=True
    )
    _print_image_rows(
        ("project", "image", "target", "since"),
        [(t.project, t.reference, t.target, t.created_at) for t in tracked],
    )


def _print_image_rows(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A rich table on a terminal; tab-separated lines (full digests, no wrapping) otherwise."""
    if not sys.stdout.isatty():
        for row in (headers, *rows):
            typer.echo("\t".join(row))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*headers)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text: references are not markup
    Console().print(table)


@db_app.command("upgrade", cls=_Command)
def db_upgrade(db: DbOption = None) -> None:
    """Create or upgrade the database schema to the latest revision."""
    from .settings import Settings
    from .store import Store
    from .store.migrate import current_revision

    store = Store(db or Settings.from_env().database_url, migrate=False)
    try:
        ran = store.upgrade()
        typer.echo(
            f"database at revision {current_revision(store.engine)}{'' if ran else ' (already current)'}"
        )
    finally:
        store.close()


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
    from .app.drift import DriftOptions, exit_code, run_drift
    from .errors import UsageError
    from .report.drift import drift_progress
    from .settings import Settings

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
        from .snapshot import read_snapshot

        taken = read_snapshot(snapshot)  # a bad file fails before the database is opened
    options = DriftOptions(
        database_url=db or settings.database_url,
        project=project,
        lockset=lockset,
        target=target,
        all_projects=all_projects,
        python=python,
        snapshot=taken if snapshot is not None else None,
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
    from .errors import UsageError
    from .shards import choose_shard

    if (shard is not None or shards is not None) and not all_projects:
        raise UsageError("--shard and --shards split the nightly run: add --all.")
    if not all_projects:
        return None
    count = shards if shards is not None else settings.shards
    return choose_shard(shard, count, settings.job_index)


def _write_drift(
    reports: list[DriftReport], output_format: DriftFormat, output: Path | None
) -> None:
    from .report import drift as render

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
        from .lockfiles.files import write_atomic

        write_atomic(output, text.encode())


@drift_app.command("summary", cls=_Command)
def drift_summary(
    since: Annotated[
        str,
        typer.Option("--since", metavar="PERIOD", help="24h, 90m, 7d, or an ISO time."),
    ] = "24h",
    db: DbOption = None,
    output_format: DriftFormatOption = DriftFormat.table,
    output: OutputOption = None,
) -> None:
    """Merge every drift report of the period (all shards) into one result; exit 1 on drift."""
    from .app.drift import exit_code
    from .app.nightly import parse_since, summarize
    from .report import drift as render
    from .settings import Settings
    from .store import Store

    with Store(db or Settings.from_env().database_url) as store:
        summary = summarize(store, parse_since(since))
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
    from .report.schedule import recipe

    sys.stdout.write(recipe(print_.value, shards))


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
        str | None, typer.Option("--since", metavar="TIME", help="From this ISO date or time on.")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", metavar="TIME", help="Up to this ISO date (inclusive) or time."),
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
    from .app import audit as use_cases
    from .errors import EXIT_DRIFT, UsageError
    from .settings import Settings

    url = db or Settings.from_env().database_url
    verified = True
    if output_format is AuditFormat.cyclonedx:
        text = use_cases.sbom(use_cases.SbomRequest(url, project, lockset, target))
    elif lockset or target:
        raise UsageError(
            "--lockset and --target choose what a CycloneDX SBOM describes.",
            hint="Add --format cyclonedx, or use --project/--since/--until to narrow a report.",
        )
    else:
        report = use_cases.audit_report(use_cases.AuditRequest(url, project, since, until))
        text = use_cases.render_report(report, output_format.value)
        verified = report.chain.ok
        if not verified and report.chain.first is not None:
            typer.echo(f"hash chain broken: {report.chain.first.describe()}", err=True)
    if output is None:
        sys.stdout.write(text)
    else:
        from .lockfiles.files import write_atomic

        write_atomic(output, text.encode())
        typer.echo(f"{output_format.value} written to {output}", err=True)
    if not verified:
        raise typer.Exit(EXIT_DRIFT)


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
    from .app import audit as use_cases
    from .errors import EXIT_DRIFT
    from .report.audit_model import chain_lines
    from .report.console import print_json
    from .settings import Settings

    url = db or Settings.from_env().database_url
    report = use_cases.verify_chains(use_cases.VerifyRequest(url, project, Path.cwd()))
    if output_format is TableFormat.json:
        print_json(report.to_dict())
    else:
        for line in chain_lines(report):
            typer.echo(line)
    if not report.ok:
        raise typer.Exit(EXIT_DRIFT)


class LintFormat(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"


class FailOn(StrEnum):
    error = "error"
    warning = "warning"
    info = "info"


@app.command(cls=_Command)
def lint(
    dockerfiles: Annotated[
        list[Path], typer.Argument(metavar="DOCKERFILE", help="Dockerfiles to check.")
    ],
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            metavar="NAME",
            help="Check against this project's latest lockset (default: ./locks/lockd.json "
            "if there is one).",
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target", metavar="TARGET", help="The lockset target the Dockerfiles build."
        ),
    ] = None,
    build_arg: BuildArgOption = None,
    platform: PlatformOption = None,
    fail_on: Annotated[
        FailOn, typer.Option("--fail-on", help="Exit 1 for findings of this level or worse.")
    ] = FailOn.warning,
    db: DbOption = None,
    output_format: Annotated[
        LintFormat, typer.Option("--format", help="text, json, or SARIF 2.1.0.")
    ] = LintFormat.text,
) -> None:
    """Check Dockerfiles: digests, locks and hashes, CUDA and Python against the lock, root,
    health checks, secrets. Exits 1 when a finding reaches --fail-on."""
    from .app.lint import LintRequest, lint_files
    from .errors import EXIT_DRIFT
    from .images import BuildOptions, parse_build_args
    from .lint import Severity
    from .report.lint import lint_json, lint_sarif, lint_text_report
    from .settings import Settings

    request = LintRequest(
        paths=tuple(dockerfiles),
        database_url=db or Settings.from_env().database_url,
        cwd=Path.cwd(),
        project=project,
        target=target,
        options=BuildOptions(parse_build_args(build_arg or ()), platform),
    )
    reports = lint_files(request)
    threshold = Severity(fail_on.value)
    if output_format is LintFormat.sarif:
        sys.stdout.write(lint_sarif(reports))
    elif output_format is LintFormat.json:
        sys.stdout.write(lint_json(reports, threshold))
    else:
        sys.stdout.write(lint_text_report(reports, threshold))
    if any(report.failing(threshold) for report in reports):
        raise typer.Exit(EXIT_DRIFT)


@app.command("dockerfile", cls=_Command)
def dockerfile_(
    target: Annotated[
        str, typer.Option("--target", metavar="TARGET", help="The lockset target to build.")
    ],
    project: Annotated[
        str | None,
        typer.Option("--project", metavar="NAME", help="Project (default: this directory's)."),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            metavar="REF",
            help="Runtime base image, resolved and pinned now (default: the one recorded "
            "with the lockset).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            help="Write the Dockerfile here and its .dockerignore beside it (default: stdout).",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Write the production Dockerfile for a target: its lock with hashes, a pinned base,
    non-root, health check, OCI and lockd labels."""
    from .app.dockerfile import DockerfileRequest, dockerignore_path, generate_dockerfile
    from .settings import Settings

    request = DockerfileRequest(
        target=target,
        database_url=db or Settings.from_env().database_url,
        cwd=Path.cwd(),
        project=project,
        base=base,
    )
    generated = generate_dockerfile(request)
    if not generated.python_known:
        typer.echo(
            f"note: the Python of {generated.spec.base_name} could not be told (no version in "
            "its tag, no PYTHON_VERSION in its config); check it matches the target.",
            err=True,
        )
    if output is None:
        sys.stdout.write(generated.dockerfile)
        return
    from .lockfiles.files import write_atomic

    ignore = dockerignore_path(output)
    write_atomic(output, generated.dockerfile.encode())
    if ignore.exists() and not ignore.read_text(errors="replace").startswith(
        "# Generated by lockd"
    ):
        typer.echo(f"{ignore} exists and was not written by lockd: left as it is.", err=True)
    else:
        write_atomic(ignore, generated.dockerignore.encode())
    typer.echo(f"wrote {output} and {ignore}", err=True)


# The service's commands (serve, tokens) live in their own module, registered on ``app``.
from . import cli_serve  # noqa: E402, F401
