"""Console output: errors on stderr, rich tables, JSON, progress on a TTY only."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import LockdError, named

if TYPE_CHECKING:
    from rich.console import Console

    from ..app.compile import CompileResult, LockCheck
    from ..app.pip import ProgressHook
    from ..app.spread import SpreadAnswer
    from ..app.why import WhyAnswer
    from ..drift import DriftReport
    from ..lockset import Lockset


# Piped output (a file, a CI log, grep) is not cut to 80 columns: tables take what they need.
PIPED_WIDTH = 4096

# What a terminal would act on rather than show (C0 controls but tab and newline, DEL, C1):
# names from a lock file, an image or a snapshot are shown as \x1b, never obeyed.
CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0))}


def printable(text: str) -> str:
    """``text`` with every control character a terminal would obey spelled out."""
    return text if text.isprintable() else text.translate(CONTROLS)


def make_console(stderr: bool = False, **options: Any) -> Console:
    """A rich console on stdout (or stderr): the terminal's width, or unbounded when piped;
    whatever text it is given is shown, never obeyed (``printable``)."""
    tty = (sys.stderr if stderr else sys.stdout).isatty()
    settings = {"highlight": False, "soft_wrap": True, "width": None if tty else PIPED_WIDTH}
    return _safe_console()(stderr=stderr, **{**settings, **options})


@lru_cache(maxsize=1)
def _safe_console() -> type[Console]:
    from rich.console import Console
    from rich.segment import Segment

    class SafeConsole(Console):
        """Styles and rich's own cursor controls pass; control characters in the text are
        spelled out, wherever the text came from (a table cell, markup, an error), and a
        link whose address holds one is dropped (it is written inside an escape sequence)."""

        def _render_buffer(self, buffer: Iterable[Segment]) -> str:
            return super()._render_buffer(_shown(segment) for segment in buffer)

    def _shown(segment: Segment) -> Segment:
        if segment.control:
            return segment
        style = segment.style
        if style is not None and style.link and not style.link.isprintable():
            style = style.update_link(None)
        return Segment(printable(segment.text), style)

    return SafeConsole


def print_error(err: LockdError) -> None:
    """Print one error paragraph to stderr, without a traceback."""
    from rich.markup import escape

    make_console(stderr=True).print(f"[bold red]error:[/] {escape(err.render())}")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def target_progress(targets: Sequence[str]) -> Iterator[ProgressHook | None]:
    """A rich progress bar over targets on a TTY (stderr); nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} targets"),
        TimeElapsedColumn(),
        console=make_console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("resolving", total=len(targets))

        def hook(target: str, event: str) -> None:
            if event == "start":
                progress.update(task, description=f"resolving {target}")
            else:
                progress.advance(task)

        yield hook


@contextmanager
def status_progress(label: str) -> Iterator[Callable[[str], None] | None]:
    """A spinner naming the current step on a TTY (stderr); nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.markup import escape

    with make_console(stderr=True).status(escape(label)) as status:
        yield lambda step: status.update(escape(f"{label}: {step}"))


def compile_json(result: CompileResult) -> dict[str, Any]:
    lockset = result.lockset
    return {
        "project": lockset.project,
        "lockset": lockset.hash,
        "parent": lockset.parent,
        "unrecorded_parent": result.unrecorded_parent,
        "status": "unchanged"
        if result.unchanged
        else ("partial" if lockset.failures else "compiled"),
        "targets": [
            {
                "target": lock.target,
                "flavour": lock.flavour,
                "packages": len(lock.packages()),
                "torch": lock.packages().get("torch"),
                "files": sorted(lock.files),
                "source_builds": lock.source_builds(),
            }
            for lock in lockset.locks
        ],
        "failures": [f.to_dict() for f in lockset.failures],
        "images": [
            {"reference": i["reference"], "digest": i["index_digest"]} for i in lockset.images
        ],
        "written": [str(p) for p in result.written],
        # per target, against the lockset that was on disk: which pins moved and which stayed
        "changes": dict(result.changes),
        "image_changes": dict(result.image_changes),
    }


def print_compile(result: CompileResult) -> None:
    lockset = result.lockset
    if result.unchanged:  # plain text, as print_check: rich takes longer to import
        sys.stdout.write(
            f"Nothing changed: inputs and matrix match lockset {lockset.hash[:12]} "
            "and its lock files (use --refresh to resolve again).\n"
        )
        return
    from rich.markup import escape
    from rich.table import Table

    console = make_console()
    table = Table(title=f"{lockset.project} · lockset {lockset.hash[:12]}")
    for column in ("target", "flavour", "packages", "torch"):
        table.add_column(column)
    for lock in lockset.locks:
        table.add_row(
            lock.target,
            lock.flavour or "-",
            str(len(lock.packages())),
            lock.packages().get("torch", "-"),
        )
    for failure in lockset.failures:
        table.add_row(failure.target, "[red]failed[/]", "-", "-")
    console.print(table)
    for failure in lockset.failures:
        console.print(f"[red]failed[/] {escape(named(failure.message, failure.target))}")
    for image in lockset.images:
        console.print(f"image {escape(image['reference'])} @ {image['index_digest']}")
    for target, entry in result.changes.items():
        console.print(f"{escape(target)}: {escape(pin_changes(entry))}")
    for line in image_change_lines(result.image_changes):
        console.print(escape(line))
    for lock in lockset.locks:
        if builds := lock.source_builds():
            console.print(f"{escape(lock.target)}: {escape(_source_build_note(builds))}")
    console.print(f"Recorded lockset {lockset.hash} ({len(result.written)} files written).")
    if result.unrecorded_parent:
        console.print(
            f"Note: the database held no lockset of {escape(lockset.project)}, though "
            f"lockd.json named {result.unrecorded_parent[:12]}: this lockset starts a new chain "
            "here (use --db with the database that recorded the old one to continue its chain)."
        )


def image_change_lines(changes: Mapping[str, Any]) -> list[str]:
    """Base images that are no longer recorded, or moved, since the lockset on disk."""
    lines = [
        f"image {i['reference']} dropped (was {i['digest']}): it is no longer recorded with "
        "the locks; compile with the same --image or --dockerfile to keep it"
        for i in changes.get("removed", ())
    ]
    lines += [
        f"image {i['reference']} moved: {i['from']} -> {i['to']}"
        for i in changes.get("changed", ())
    ]
    return lines


def pin_changes(entry: dict[str, Any]) -> str:
    """One target's ``diff_locksets`` entry as a sentence: what moved, what stayed."""
    if "status" in entry:
        return "new target" if entry["status"] == "only-in-b" else "target dropped"
    parts = [f"{i['name']} {i['from']} -> {i['to']}{_why(i)}" for i in entry["upgraded"]]
    parts += [
        f"{i['name']} {i['from']} -> {i['to']} (downgraded{_why(i, ';')})"
        for i in entry["downgraded"]
    ]
    parts += [f"{i['name']} {i['version']} added{_why(i)}" for i in entry["added"]]
    parts += [f"{i['name']} {i['version']} removed{_why(i)}" for i in entry["removed"]]
    parts += [f"{i['name']} {i['version']} {i['what']} changed" for i in entry["changed"]]
    kept = len(entry["kept"])
    if not parts:
        return f"all {kept} pins kept"
    return "; ".join(parts) + f"; {kept} other pin{'' if kept == 1 else 's'} kept"


def _why(item: dict[str, Any], joiner: str = "") -> str:
    """`` (required by pandas>=2.3 via -r requirements.in)`` when the diff explains the pin."""
    why = item.get("why")
    if not why:
        return ""
    return f"{joiner} {why['reason']}" if joiner else f" ({why['reason']})"


def _source_build_note(builds: dict[str, str]) -> str:
    names = ", ".join(f"{name} {version}" for name, version in builds.items())
    return f"installs {names} from source (sdist only): installing runs its build code"


def print_check(check: LockCheck) -> None:
    """``lockd compile --check``: current, or what is stale. Plain text: a pre-commit
    hook runs this on every commit, and rich takes longer to import than the check."""
    if check.current:
        lines = [
            f"Locks are current: lockset {(check.lockset or '')[:12]} in {check.manifest} "
            "matches the inputs and configuration."
        ]
    else:
        lines = [f"Locks are stale ({check.manifest}):"]
        lines += [f"  - {reason}" for reason in check.stale]
        lines.append("Run `lockd compile` to bring them up to date.")
    # the reasons quote lockd.json (a pull request's): shown, never obeyed
    sys.stdout.write("\n".join(map(printable, lines)) + "\n")


def print_history(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="locksets")
    for column in (
        "lockset",
        "project",
        "created",
        "targets",
        "resolver",
        "status",
        "drift",
        "parent",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["hash"][:12],
            row["project"],
            row["created_at"],
            str(len(row["targets"])),
            row["resolver"],
            row["status"],
            row.get("drift") or "not checked",
            (row["parent"] or "-")[:12],
        )
    make_console().print(table)


def _image_rows(lockset: Lockset) -> list[tuple[str, str, str, str]]:
    """Per base image: its index (or single manifest) digest, then each platform's
    digest with the targets that run it."""
    from ..errors import UsageError
    from ..images import ResolvedImage
    from ..targets import Platform, parse_target_id

    platforms: dict[str, Platform] = {}
    for target in lockset.targets:
        try:
            platforms[target] = parse_target_id(target).platform
        except UsageError:
            continue
    rows = []
    for record in lockset.images:
        image = ResolvedImage.from_dict(record)
        rows.append(
            (image.reference, "index" if image.is_index else "manifest", image.index_digest, "")
        )
        users: dict[str, list[str]] = {}
        for target, platform in platforms.items():
            try:
                users.setdefault(image.for_platform(platform).digest, []).append(target)
            except LockdError:  # no image for that platform (macOS, Windows, or not built)
                continue
        rows += [
            ("", p.oci_platform, p.digest, " ".join(users.pop(p.digest, [])))
            for p in image.platforms
        ]
    return rows


def print_lockset(lockset: Lockset) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    console = make_console()
    prov = lockset.provenance
    console.print(f"[bold]lockset[/] {lockset.hash}")
    console.print(f"project {lockset.project} · parent {lockset.parent or '-'}")
    console.print(
        f"created {prov.created_at} by {prov.user}@{prov.host}"
        + (f" at git {prov.git_commit[:12]}" if prov.git_commit else "")
        + (" (with uncommitted changes)" if prov.git_dirty else "")
    )
    console.print(
        f"resolver {lockset.resolver} {lockset.resolver_version} · cut-off {lockset.cutoff}"
    )
    console.print("indexes " + ", ".join(f"{k}={v}" for k, v in sorted(lockset.indexes.items())))
    console.print("inputs " + ", ".join(f"{i.path} ({i.sha256[:12]})" for i in lockset.inputs))
    if allowed := lockset.extra.get("allow_build"):
        console.print(f"allow-build {escape(', '.join(map(str, allowed)))}")
    for lock in lockset.locks:
        table = Table(title=f"{lock.target} · {lock.flavour or 'no torch'}")
        for column in ("package", "version", "index", "file", "sha256"):
            table.add_column(column)
        for a in lock.artifacts:
            table.add_row(a.name, a.version, a.index, a.filename, a.sha256[:16])
        console.print(table)
        if builds := lock.source_builds():
            console.print(f"[yellow]{escape(_source_build_note(builds))}[/]")
    if lockset.images:
        images = Table(title="base images")
        for column in ("image", "platform", "digest", "targets"):
            images.add_column(column)
        for row in _image_rows(lockset):
            images.add_row(*(Text(cell) for cell in row))  # Text: references are not markup
        console.print(images)
    for failure in lockset.failures:
        console.print(f"[red]failed[/] {escape(named(failure.message, failure.target))}")


def print_drift_checks(reports: Sequence[DriftReport]) -> None:
    """The drift reports of one lockset, images with their digests."""
    from rich.table import Table
    from rich.text import Text

    console = make_console()
    if not reports:
        console.print("no drift check yet")
        return
    table = Table(title="drift checks")
    for column in ("checked", "status", "findings", "what"):
        table.add_column(column)
    for report in reports:
        image = report.image
        what = (
            f"image {image.get('reference')} {image.get('digest') or ''} ({image.get('target')})"
            if image
            else ", ".join(report.checks) or "-"
        )
        table.add_row(report.checked_at, report.status, str(len(report.findings)), Text(what))
    console.print(table)


def print_diff(result: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{result['a'][:12]} -> {result['b'][:12]}")
    for column in ("target", "change", "package", "detail"):
        table.add_column(column)
    for target, entry in result["targets"].items():
        if "status" in entry:
            table.add_row(target, entry["status"], "-", "-")
            continue
        kept = len(entry.get("kept", ()))
        kinds = ("added", "removed", "upgraded", "downgraded", "changed")
        if kept or not any(entry[kind] for kind in kinds):  # no "kept | 0 packages" row
            table.add_row(target, "kept", f"{kept} package{'' if kept == 1 else 's'}", "same pin")
        for kind in kinds:
            for item in entry[kind]:
                table.add_row(target, kind, item["name"], Text(_pin_detail(kind, item)))
    for change in result.get("inputs", ()):
        before, after = ", ".join(change["from"]) or "-", ", ".join(change["to"]) or "-"
        table.add_row("inputs", "changed", change["name"], Text(f"{before} -> {after}"))
    for kind, items in result.get("images", {}).items():
        for item in items:
            reference = escape(item["reference"])  # "[::1]:5000/app" is not markup
            if kind != "changed":
                table.add_row("image", kind, reference, _short(item["digest"]))
                continue
            table.add_row("image", kind, reference, _moved(item))
            for platform, change in item["platforms"].items():
                table.add_row("image", kind, f"{reference} {platform}", _moved(change))
    make_console().print(table)


def _pin_detail(kind: str, item: dict[str, Any]) -> str:
    if kind in {"upgraded", "downgraded"}:
        return f"{item['from']} -> {item['to']}{_why(item)}"
    if kind == "changed":
        return f"{item['what']}: {item.get('files') or item.get('to')}"
    return f"{item['version']}{_why(item)}"


def _short(digest: str | None) -> str:
    return digest[:19] if digest else "-"  # "sha256:" and 12 hex digits, as docker shows


def _moved(change: dict[str, Any]) -> str:
    return f"{_short(change['from'])} -> {_short(change['to'])}"


def print_spread(answer: SpreadAnswer) -> None:
    """``lockd spread``: a row per cause for each target that does not lock a package's
    highest release (or another build of it, or nothing), then how many packages agree.
    Names are never cut; the cause wraps."""
    from rich.table import Table
    from rich.text import Text

    console = make_console()
    count = len(answer.targets)
    head = f"lockset {answer.lockset[:12]} of {answer.project}"
    failed = f" (failed: {', '.join(answer.failed)})" if answer.failed else ""
    if not answer.targets:
        console.print(Text(f"Nothing to compare: {head} has no two targets of one kind{failed}."))
        return
    if not answer.packages:
        console.print(
            Text(
                f"Every package of {head} is locked at the same version on all {count} "
                f"targets ({answer.same} packages){failed}."
            )
        )
        return
    rows = [(p.name, r) for p in answer.packages for r in p.reasons]
    table = Table(title=f"spread · {head}")
    for column, cells in (
        ("package", [name for name, _ in rows]),
        ("target", [r.target for _, r in rows]),
        ("locked", [r.version or "—" for _, r in rows]),
        ("instead of", [r.instead_of or "locked elsewhere" for _, r in rows]),
    ):
        widest = max(len(printable(cell)) for cell in (column, *cells))
        table.add_column(column, no_wrap=True, min_width=min(widest, 40))
    table.add_column("why", ratio=1, min_width=30)
    shown = None
    for name, reason in rows:
        table.add_row(
            Text(name if name != shown else ""),
            Text(reason.target),
            Text(reason.version or "—"),
            Text(reason.instead_of or ("—" if reason.version else "locked elsewhere")),
            Text(f"{reason.kind}: {reason.text}"),  # names and requirements are not markup
        )
        shown = name
    console.print(table)
    differ = len(answer.packages)
    notes = [
        f"{differ} package{' differs' if differ == 1 else 's differ'} across {count} targets; "
        f"{answer.same} {'is' if answer.same == 1 else 'are'} the same on every one{failed}."
    ]
    if answer.offline:
        notes.append("The index was not asked (--offline).")
    elif answer.unread:
        notes.append(f"Not read: {', '.join(answer.unread)} (see the causes above).")
    console.print(Text(" ".join(notes)))


def print_why(answer: WhyAnswer) -> None:
    """``lockd why``: per target (targets with the same answer together), every path from
    a direct input to the package, shortest first, and how many were left out."""
    from rich.table import Table
    from rich.text import Text

    groups: dict[str, list[str]] = {}
    for item in answer.targets:
        groups.setdefault(json.dumps(item.to_dict() | {"target": ""}, sort_keys=True), []).append(
            item.target
        )
    table = Table(title=f"why {answer.package} · lockset {answer.lockset[:12]} of {answer.project}")
    for column in ("targets", "version", "path from a direct input"):
        table.add_column(column)
    for targets in groups.values():
        item = next(t for t in answer.targets if t.target == targets[0])
        paths = item.paths
        rows = [path.describe() for path in paths.shown] or ["no path from the direct inputs"]
        if paths.left_out:
            more = f"{paths.left_out}" if paths.complete else f"at least {paths.left_out}"
            rows.append(f"… and {more} more (--limit to show more)")
        if item.unknown:
            rows.append("requirements not read (sdists): " + ", ".join(item.unknown))
        for n, row in enumerate(rows):
            first = n == 0
            table.add_row(
                Text(", ".join(targets) if first else ""),
                item.version if first else "",
                Text(row),  # requirement texts and file names are not markup
            )
    make_console().print(table)
    if answer.absent:
        make_console().print(f"not in {', '.join(answer.absent)}")
