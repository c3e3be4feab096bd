"""``lockd images``: resolve tags, pin Dockerfiles, inspect and track images."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import clipped, sentence
from ._app import (
    BuildArgOption,
    DbOption,
    FormatOption,
    OnlyProjectOption,
    PlatformOption,
    TableFormat,
    _Command,
    images_app,
    print_rows,
)

if TYPE_CHECKING:
    from ..store import TrackedImage


@images_app.command("resolve", cls=_Command)
def images_resolve(
    references: Annotated[
        list[str], typer.Argument(metavar="REF", help="Image references, e.g. python:3.11-slim.")
    ],
    output_format: FormatOption = TableFormat.table,
) -> None:
    """Resolve image tags to digests: the index and each platform's manifest."""
    from ..images import RegistryOptions, resolve_images
    from ..report.console import print_json

    images = resolve_images(references, RegistryOptions.from_env())
    if output_format is TableFormat.json:
        print_json({"images": [image.to_dict() for image in images]})
        return
    rows: list[tuple[str, ...]] = []
    for image in images:
        kind = "index" if image.is_index else "manifest"
        rows.append((image.reference, kind, image.index_digest))
        rows += [("", p.oci_platform, p.digest) for p in image.platforms]
    print_rows(("image", "platform", "digest"), rows)


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
    from ..errors import EXIT_DRIFT
    from ..images import (
        BuildOptions,
        RegistryClient,
        RegistryOptions,
        parse_build_args,
        pin_dockerfile,
    )
    from ..images._reference import MAX_REFERENCE
    from ..report.console import print_json

    options = BuildOptions(parse_build_args(build_arg or ()), platform)
    with RegistryClient(RegistryOptions.from_env()) as client:
        result = pin_dockerfile(dockerfile, client.resolve, write=write, options=options)
    if output_format is TableFormat.json:
        print_json(result.to_dict())
    else:
        rows: list[tuple[str, ...]] = [
            (
                str(e.instruction.line),
                clipped(e.instruction.image, MAX_REFERENCE),
                clipped(e.pinned_reference or "", MAX_REFERENCE),
                str(e.status).replace("-", " "),
            )
            for e in result.entries
        ]
        print_rows(("line", "from", "pinned", "status"), rows)
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
    from ..images import InspectRequest, RegistryOptions, VerifiedLayers, inspect_image
    from ..report import image as render

    if output is not None and output_format is InspectFormat.table:
        from ..errors import UsageError

        raise UsageError("-o writes json or cyclonedx.", hint="Add --format json or cyclonedx.")
    request = InspectRequest(
        reference, platform, RegistryOptions.from_env(), VerifiedLayers.from_env()
    )
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
        from ..lockfiles.files import write_atomic

        write_atomic(output, text.encode())


_TrackedTarget = Annotated[
    str, typer.Option("--target", metavar="ID", help="The lockset target the image ships.")
]
_TrackedProject = Annotated[
    str | None,
    typer.Option("--project", metavar="NAME", help="Project (default: this directory's)."),
]


@images_app.command("track", cls=_Command)
def images_track(
    reference: Annotated[str, typer.Argument(metavar="REF", help="The image to check nightly.")],
    target: _TrackedTarget,
    project: _TrackedProject = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check/--no-check",
            help="Read the image's manifest for the target's platform first (a missing tag "
            "fails now, not every night).",
        ),
    ] = True,
    db: DbOption = None,
    output_format: FormatOption = TableFormat.table,
) -> None:
    """Track an image: `lockd drift --all` checks it against its project's latest lockset."""
    from ..app.image_drift import TrackRequest, track_image
    from ..settings import Settings

    request = TrackRequest(
        db or Settings.from_env().database_url, reference, target, project, check=check
    )
    added, tracked = track_image(request)
    if output_format is TableFormat.table:
        typer.echo(
            f"{reference} {'now tracked' if added else 'was already tracked'} for {target}.",
            err=True,
        )
    _print_tracked(tracked, output_format, {"added": added})


@images_app.command("untrack", cls=_Command)
def images_untrack(
    reference: Annotated[str, typer.Argument(metavar="REF", help="A tracked image.")],
    target: _TrackedTarget,
    project: _TrackedProject = None,
    db: DbOption = None,
    output_format: FormatOption = TableFormat.table,
) -> None:
    """Stop checking an image nightly (its drift reports stay on the record)."""
    from ..app.image_drift import TrackRequest, untrack_image
    from ..settings import Settings

    request = TrackRequest(db or Settings.from_env().database_url, reference, target, project)
    tracked = untrack_image(request)
    if output_format is TableFormat.table:
        typer.echo(f"{reference} is no longer tracked for {target}.", err=True)
    _print_tracked(tracked, output_format)


@images_app.command("tracked", cls=_Command)
def images_tracked(
    project: OnlyProjectOption = None,
    db: DbOption = None,
    output_format: FormatOption = TableFormat.table,
) -> None:
    """List the images `lockd drift --all` checks, per project."""
    from ..app.image_drift import tracked
    from ..settings import Settings

    _print_tracked(tracked(db or Settings.from_env().database_url, project), output_format)


def _print_tracked(
    tracked: list[TrackedImage], output_format: TableFormat, extra: dict[str, object] | None = None
) -> None:
    if output_format is TableFormat.json:
        from ..report.console import print_json

        print_json({**(extra or {}), "tracked": [t.to_dict() for t in tracked]})
        return
    print_rows(
        ("project", "image", "target", "since"),
        [(t.project, t.reference, t.target, t.created_at) for t in tracked],
    )
