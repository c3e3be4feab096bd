"""pip requirement lines -> requirements, includes and the default index (pure parsing).

Requirements files (with ``-r``/``-c`` includes), the dependency strings of a
``pyproject.toml`` and the ``pip:`` section of an ``environment.yml`` share
one classifier. pip accepts forms lockd cannot lock: editable installs, VCS
and file URLs, local paths and wheels, ``--hash`` options, and
``--extra-index-url`` (how dependency confusion happens). Each is collected as
a :class:`Problem` with its file and line, so one run reports them all, in one
paragraph (:func:`problems_error`).

A ``-i``/``--index-url`` line names the default index (below the ``--index``
flag, ``LOCKD_INDEX_URL`` and ``index-url`` in the configuration).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from ..errors import UsageError
from ..graph import DirectInput
from ..lockset import InputFile
from ..urls import redact
from .files import read_input

SHOWN_CHARS = 80  # of a line echoed in a message

_LOCK_BY_NAME = (
    "lockd locks named releases from indexes, where it can route, hash and re-check them: "
    "publish the package to an index (a private one works, routed with an [[index]] table "
    "in lockd.toml) and require it by name and version."
)
_HINTS = {
    "form": _LOCK_BY_NAME,
    "hash": "Drop the --hash options: lockd computes, records and verifies the sha256 of every "
    "file itself.",
    "extra-index": "Route private packages explicitly instead: an [[index]] table with name, "
    "url and packages in lockd.toml takes those packages only from that index and nothing else "
    "from it; the PyTorch indexes are routed by --cuda and --pytorch-index.",
    "option": "Give indexes with --index, lockd.toml or a -i/--index-url line; lockd takes no "
    "other pip options from input files.",
    "syntax": "Write a PEP 508 requirement such as torch==2.6.0, numpy>=1.26 or "
    'tomli; python_version < "3.11".',
}
_COMMENT = re.compile(r"(^|\s+)#.*$")
_PER_REQUIREMENT_OPTION = re.compile(r"\s-")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^file:")
_VCS = re.compile(r"^(git|hg|svn|bzr)\+", re.IGNORECASE)
_ARCHIVES = (".whl", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar", ".zip")


@dataclass(frozen=True, slots=True)
class Problem:
    """A line (or include) lockd cannot take, where it is, and why."""

    where: str  # "requirements.in:3"
    reason: str
    kind: str = "form"  # picks the hint
    line: str = ""  # the line as written, shortened and without credentials
    hint: str = ""  # instead of the kind's

    def render(self) -> str:
        shown = f" `{self.line}`" if self.line else ""
        return f"{self.where}:{shown} {self.reason}"


@dataclass(frozen=True, slots=True)
class Include:
    target: str
    constraint: bool


@dataclass(frozen=True, slots=True)
class IndexUrl:
    url: str


Line = Requirement | Include | IndexUrl | Problem


@dataclass(frozen=True, slots=True)
class ParsedRequirements:
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    files: tuple[InputFile, ...]  # every file read, includes in first-seen order
    index_url: str | None = None
    problems: tuple[Problem, ...] = ()
    # each requirement and constraint with the file it is written in (``-r base.in``)
    direct: tuple[DirectInput, ...] = ()


def problems_error(problems: Sequence[Problem]) -> UsageError:
    """Every problem in one paragraph, with each kind's fix once."""
    problems = list(dict.fromkeys(problems))  # a file included twice reports once
    head = f"{len(problems)} problems in the inputs: " if len(problems) > 1 else ""
    hints = dict.fromkeys(p.hint or _HINTS.get(p.kind, "") for p in problems)
    return UsageError(
        head + "; ".join(p.render() for p in problems) + ".",
        hint=" ".join(h for h in hints if h) or None,
    )


def include_problem(where: str, err: UsageError) -> Problem:
    """A refused include (outside the project, not a regular file …) as a problem."""
    return Problem(where, err.message.rstrip("."), kind="include", hint=err.hint or "")


def parse_requirements_file(path: Path, root: Path) -> ParsedRequirements:
    """Read ``path`` and its includes (inside ``root`` only); problems are collected.

    Raises :class:`UsageError` only when ``path`` itself cannot be read.
    """
    requirements: list[str] = []
    constraints: list[str] = []
    direct: list[DirectInput] = []
    files: dict[Path, InputFile] = {}
    problems: list[Problem] = []
    index: list[tuple[str, str]] = []  # (url, where)

    def visit(file: Path, shown: str, constraint: bool, chain: tuple[Path, ...]) -> None:
        source = read_input(file, root, shown=shown)
        if source.path in chain:
            names = " -> ".join(files[p].path for p in (*chain, source.path) if p in files)
            raise UsageError(f"{names} is a circular -r/-c include.")
        files.setdefault(source.path, InputFile(source.relative, source.sha256))
        for lineno, line in logical_lines(source.text):
            where = f"{source.relative}:{lineno}"
            item = classify_line(line, where)
            if isinstance(item, Include):
                target = Path(item.target)
                included = target if target.is_absolute() else file.parent / target
                try:
                    visit(
                        included, item.target, constraint or item.constraint, (*chain, source.path)
                    )
                except UsageError as err:
                    problems.append(include_problem(where, err))
            elif isinstance(item, IndexUrl):
                index.append((item.url, where))
            elif isinstance(item, Problem):
                problems.append(item)
            else:
                (constraints if constraint else requirements).append(str(item))
                flag = "-c" if constraint else "-r"
                direct.append(DirectInput(str(item), f"{flag} {source.relative}", constraint))

    visit(path, str(path), False, ())
    problems += _index_conflicts(index)
    return ParsedRequirements(
        tuple(requirements),
        tuple(constraints),
        tuple(files.values()),
        index[0][0] if index else None,
        tuple(problems),
        tuple(dict.fromkeys(direct)),
    )


def parse_requirement_lines(lines: Iterable[tuple[str, str]]) -> ParsedRequirements:
    """``(where, line)`` pairs that cannot include files (environment.yml's ``pip:``)."""
    requirements: list[str] = []
    problems: list[Problem] = []
    index: list[tuple[str, str]] = []
    for where, line in lines:
        item = classify_line(line, where)
        if isinstance(item, Include):
            problems.append(
                Problem(
                    where,
                    "includes a file, which is not followed here; list the requirements",
                    "option",
                    shorten(line),
                )
            )
        elif isinstance(item, IndexUrl):
            index.append((item.url, where))
        elif isinstance(item, Problem):
            problems.append(item)
        else:
            requirements.append(str(item))
    problems += _index_conflicts(index)
    return ParsedRequirements(
        tuple(requirements), (), (), index[0][0] if index else None, tuple(problems)
    )


def classify_line(line: str, where: str) -> Line:
    """One logical line (comments and continuations already handled)."""
    shown = shorten(line)
    try:
        words = shlex.split(line, posix=True)
    except ValueError:
        return Problem(where, "has an unmatched quote", "syntax", shown)
    if line.startswith("-"):
        return _option(words, where, shown)
    option = _PER_REQUIREMENT_OPTION.search(line)
    if option is not None:
        tail = line[option.start() :]
        if "--hash" in tail:
            return Problem(where, "carries --hash options", "hash", shown)
        return Problem(where, "carries per-requirement pip options", "option", shown)
    return _requirement(line, where, shown)


def _requirement(line: str, where: str, shown: str) -> Line:
    form = _unlockable_form(line)
    if form is not None:
        return Problem(where, form, "form", shown)
    try:
        req = Requirement(line)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0].rstrip(".")
        return Problem(where, f"is not a valid requirement ({reason})", "syntax", shown)
    if req.url:
        return Problem(where, "is a direct reference", "form", shown)
    return req


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Strip comments, join ``\\`` continuations; keep the first line number."""
    out: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw).strip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            out.append((start, line))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def shorten(text: str) -> str:
    """A line as it may appear in a message: credentials removed, bounded length."""
    text = redact(text)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _option(words: list[str], where: str, shown: str) -> Line:
    word = words[0]
    if word.startswith("--"):
        name, eq, inline = word.partition("=")
        value = inline if eq else (words[1] if len(words) > 1 else "")
    else:
        name, inline = word[:2], word[2:]
        value = inline or (words[1] if len(words) > 1 else "")
    if name in {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url"}:
        return _option_value(name, value, where, shown)
    if name in {"-e", "--editable"}:
        return Problem(where, "is an editable install", "form", shown)
    if name == "--extra-index-url":
        return Problem(
            where,
            "adds an extra index: pip and uv then take a package from whichever index offers "
            "it, so a same-named upload to a public index can replace an internal package "
            "(dependency confusion)",
            "extra-index",
            shown,
        )
    return Problem(where, f"uses the pip option {name}, which lockd does not take", "option", shown)


def _option_value(name: str, value: str, where: str, shown: str) -> Line:
    """``-r``/``-c``/``-i`` and the file or URL they name."""
    if not value:
        return Problem(where, f"{name} needs a value", "option", shown)
    if name in {"-i", "--index-url"}:
        return _index_url(value, where, shown)
    if _URL.match(value):
        return Problem(
            where, "includes a URL; lockd reads includes only from the project", "option", shown
        )
    return Include(value, constraint=name in {"-c", "--constraint"})


def _index_url(value: str, where: str, shown: str) -> Line:
    if "${" in value:
        return Problem(
            where,
            "uses an environment variable; lockd does not expand them in input files (a file "
            "could send any variable to any host): give the credentials with LOCKD_INDEX_URL "
            "or --index",
            "option",
            shown,
        )
    if not _URL.match(value):
        return Problem(where, "is not an index URL (http://, https:// or file://)", "option", shown)
    return IndexUrl(value.rstrip("/"))


def _unlockable_form(line: str) -> str | None:
    """What pip would install from a URL or a path, which lockd cannot lock."""
    head = re.split(r"[\s;]", line, maxsplit=1)[0]
    if "@" in head and not _URL.match(head):
        return None  # "name@ url": a PEP 508 direct reference, reported by name
    bare = re.sub(r"\[[^\]]*\]$", "", head)  # ./pkg[extra]
    lower = bare.lower().split("#", 1)[0]
    if _VCS.match(bare):
        return "is a VCS URL, not a released file lockd can hash and re-check"
    if _URL.match(bare):
        return "is a wheel URL" if lower.endswith(".whl") else "is an archive URL"
    if lower.endswith(".whl"):
        return "is a wheel file"
    if bare in {".", ".."} or "/" in bare or "\\" in bare:
        return "is a local archive" if lower.endswith(_ARCHIVES) else "is a local directory"
    return None


def _index_conflicts(index: list[tuple[str, str]]) -> list[Problem]:
    first_url, first_where = index[0] if index else ("", "")
    return [
        Problem(
            where,
            f"sets the index {shorten(url)}, but {first_where} already set {shorten(first_url)}",
            "option",
        )
        for url, where in index[1:]
        if url != first_url
    ]
