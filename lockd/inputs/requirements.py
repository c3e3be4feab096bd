"""``requirements.in`` files with ``-r``/``-c`` includes -> requirement strings (pure parsing)."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from ..errors import UsageError
from ..urls import redact


@dataclass(frozen=True, slots=True)
class ParsedRequirements:
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    files: tuple[Path, ...]  # every file read, includes first-seen order


def parse_requirements_file(
    path: Path, read: Callable[[Path], str] | None = None
) -> ParsedRequirements:
    """Read ``path`` and its includes. ``read`` is injectable for tests."""
    reader = read or _read_text
    requirements: list[str] = []
    constraints: list[str] = []
    files: list[Path] = []

    def visit(file: Path, into: list[str], chain: tuple[Path, ...]) -> None:
        resolved = file.resolve()
        if resolved in chain:
            raise UsageError(
                f"{file} includes itself (via {' -> '.join(str(p) for p in chain)}).",
                hint="Remove the circular -r/-c include.",
            )
        if resolved not in files:
            files.append(resolved)
        for lineno, line in _logical_lines(reader(file)):
            where = f"{file}:{lineno}"
            words = shlex.split(line, posix=True)
            option = words[0]
            if option in {"-r", "--requirement", "-c", "--constraint"} or option.startswith(
                ("--requirement=", "--constraint=")
            ):
                name, _, inline = option.partition("=")
                target = inline or (words[1] if len(words) > 1 else "")
                if not target:
                    raise UsageError(f"{where}: {name} needs a file name.")
                included = (
                    (file.parent / target) if not Path(target).is_absolute() else Path(target)
                )
                kind = constraints if name in {"-c", "--constraint"} else into
                visit(included, kind, (*chain, resolved))
                continue
            if option.startswith("-"):
                raise UsageError(
                    f"{where}: the option {option!r} is not supported in lockd inputs.",
                    hint="Configure indexes with --index/--pytorch-index or lockd.toml; "
                    "editable and local installs cannot be locked with hashes.",
                )
            try:
                req = Requirement(line)
            except InvalidRequirement as exc:
                raise UsageError(
                    f"{where}: {line!r} is not a valid requirement ({exc}).",
                    hint="Write a PEP 508 requirement such as torch==2.6.0 or numpy>=1.26.",
                ) from None
            refuse_direct_reference(req, where)
            into.append(str(req))

    visit(path, requirements, ())
    return ParsedRequirements(tuple(requirements), tuple(constraints), tuple(files))


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Strip comments, join ``\\`` continuations; keep the first line number."""
    out: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        line = line.strip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            out.append((start, line))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"Input file {path} does not exist.") from None
    except OSError as exc:
        raise UsageError(f"Cannot read input file {path}: {exc.strerror}.") from None


def refuse_direct_reference(req: Requirement, where: str) -> None:
    """``name @ URL`` bypasses the indexes that lockd routes, records and re-checks."""
    if req.url:
        raise UsageError(
            f"{where}: {req.name} is given as a direct reference ({redact(req.url)}); lockd "
            "locks packages from indexes, where it can route, hash and re-check them.",
            hint="Publish the file to an index (a private one is fine: pass --index) and "
            "require it by name and version.",
        )
