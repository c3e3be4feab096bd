"""Build stages, ``ARG`` substitution and ``FROM`` references; pinning in place (pure).

``FROM`` sees the ``ARG``s declared before the first ``FROM`` and BuildKit's
automatic platform ARGs (``TARGETPLATFORM``, ``TARGETOS``, ``TARGETARCH``,
``TARGETVARIANT``, ``BUILDPLATFORM``, ``BUILDOS``, ``BUILDARCH``,
``BUILDVARIANT``: from ``--platform``, else the build machine), so
``FROM base-${TARGETARCH}`` names the stage ``base-amd64``. Substitution covers
``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR:+word}``, ``${VAR-word}`` and
``${VAR+word}``; ``--build-arg`` values replace declared defaults.

A reference that cannot be formed (an ARG without a value, a malformed line,
an invalid name) is kept as ``FromKind.UNRESOLVED`` with the reason, naming
the empty variable: callers decide whether that is an error (``compile``), a
"not pinned" row (``images pin``) or a finding (``lint``).

Pinning appends ``@sha256:…`` right after the text the reference came from:
the image word itself, the default of the one ``ARG`` it names, or the
``:-`` word. A reference assembled from several pieces (``python:${PY}``) has
no single such place and is left for a person to pin. Every other byte stays.
"""

from __future__ import annotations

import platform as _platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from lockd.errors import UsageError, excerpt, sentence

from ._dockerfile import DockerfileText, Instruction, split_instructions, words
from ._reference import parse_reference

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])(.*))?", re.DOTALL)
_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def build_machine_platform() -> str:
    """``linux/<arch>`` of this machine, as BuildKit fills ``BUILDPLATFORM``."""
    machine = _platform.machine().lower()
    return f"linux/{_ARCHES.get(machine, machine)}"


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """What a build would be given: ``--build-arg`` values and ``--platform``."""

    build_args: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None  # the target platform; None: the build machine's
    build_platform: str = field(default_factory=build_machine_platform)

    def platform_args(self) -> dict[str, str]:
        """BuildKit's automatic platform ARGs, defined in the global scope."""
        out: dict[str, str] = {}
        for prefix, value in (
            ("TARGET", self.platform or self.build_platform),
            ("BUILD", self.build_platform),
        ):
            os_, _, rest = value.partition("/")
            arch, _, variant = rest.partition("/")
            out.update(
                {
                    f"{prefix}PLATFORM": value,
                    f"{prefix}OS": os_,
                    f"{prefix}ARCH": arch,
                    f"{prefix}VARIANT": variant,
                }
            )
        return out


def parse_build_args(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``NAME=VALUE`` strings (``--build-arg``) as a mapping; ``UsageError`` if malformed."""
    out: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not _NAME.fullmatch(name):
            raise UsageError(
                f"--build-arg {excerpt(item)} is not NAME=VALUE.",
                hint="Write it as --build-arg BASE_IMAGE=python:3.11-slim.",
            )
        out[name] = value
    return out


class FromKind(StrEnum):
    """What a ``FROM`` names."""

    IMAGE = "image"
    STAGE = "stage"  # an earlier build stage, not an image
    SCRATCH = "scratch"  # the empty image, nothing to resolve
    UNRESOLVED = "unresolved"  # no usable reference: see FromInstruction.problem


@dataclass(frozen=True, slots=True)
class FromInstruction:
    """One ``FROM`` of a Dockerfile."""

    line: int  # 1-based line where the instruction starts
    image: str  # the image word as written, e.g. "${BASE}"
    reference: str  # after ARG substitution, e.g. "python:3.11-slim"
    kind: FromKind
    stage: str | None  # the AS name, lowercased
    platform: str | None  # the --platform value as written
    insert_at: int | None  # offset in the text where "@sha256:…" goes; None: not in place
    problem: str | None = None  # why an UNRESOLVED reference is unusable
    variables: tuple[str, ...] = ()  # the ARGs the image word uses

    @property
    def is_pinned(self) -> bool:
        """The reference already names a digest."""
        return self.kind is FromKind.IMAGE and "@" in self.reference

    @property
    def is_templated(self) -> bool:
        """Built from ARGs, not written out."""
        return bool(self.variables)

    @property
    def unpinnable(self) -> str | None:
        """Why lockd cannot put a digest into the file for this ``FROM``; ``None`` if it can."""
        if self.kind is FromKind.UNRESOLVED:
            return self.problem
        if self.kind is not FromKind.IMAGE or self.is_pinned or self.insert_at is not None:
            return None
        return (
            f"{self.image} is assembled from several pieces ({', '.join(self.variables)}): "
            "there is no single place to put the digest"
        )


@dataclass(frozen=True, slots=True)
class Stage:
    """A build stage: its ``FROM`` and the instructions up to the next one."""

    index: int
    source: FromInstruction
    instructions: tuple[Instruction, ...]  # after the FROM
    base: int | None  # index of the stage it builds on, if FROM names a stage

    @property
    def name(self) -> str:
        """The ``AS`` name, or the index as BuildKit numbers stages."""
        return self.source.stage or str(self.index)


@dataclass(frozen=True, slots=True)
class Dockerfile:
    """A parsed Dockerfile: instructions, global ARGs, stages and their ``FROM``s."""

    text: DockerfileText
    global_args: Mapping[str, str | None]  # as FROM lines see them (build args applied)
    stages: tuple[Stage, ...]
    preamble: tuple[Instruction, ...]  # instructions before the first FROM

    @property
    def froms(self) -> tuple[FromInstruction, ...]:
        """Every ``FROM``, in file order."""
        return tuple(stage.source for stage in self.stages)

    @property
    def final(self) -> Stage | None:
        """The stage a plain build produces: the last one."""
        return self.stages[-1] if self.stages else None

    def chain(self, stage: Stage) -> tuple[Stage, ...]:
        """``stage`` and the stages it builds on, the first image-based one last."""
        out = [stage]
        while out[-1].base is not None and out[-1].base not in {s.index for s in out}:
            out.append(self.stages[out[-1].base])
        return tuple(out)


@dataclass(frozen=True, slots=True)
class _Value:
    text: str
    end: int | None  # offset just after the file text this value is, verbatim; None: assembled
    empty: tuple[str, ...] = ()  # variables that expanded to nothing
    used: tuple[str, ...] = ()  # every variable referenced


def parse_dockerfile_stages(
    text: str, options: BuildOptions | None = None, *, source: str = "Dockerfile"
) -> Dockerfile:
    """The stages of ``text``; never raises (unusable ``FROM``s are ``UNRESOLVED``)."""
    options = options or BuildOptions()
    split = split_instructions(text, source)
    scope: dict[str, _Value | None] = {
        name: _Value(value, None) for name, value in options.platform_args().items()
    }
    stage_names: dict[str, int] = {}
    preamble: list[Instruction] = []
    stages: list[tuple[FromInstruction, list[Instruction], int | None]] = []
    for instruction in split.instructions:
        if instruction.keyword == "FROM":
            entry = _from(instruction, split, scope, stage_names)
            is_stage = entry.kind is FromKind.STAGE
            base = stage_names.get(entry.reference.lower()) if is_stage else None
            if entry.stage:
                stage_names.setdefault(entry.stage, len(stages))
            stages.append((entry, [], base))
        elif stages:
            stages[-1][1].append(instruction)
        else:
            preamble.append(instruction)
            if instruction.keyword == "ARG":
                for span in words(instruction.text):
                    _declare(instruction, split, span, scope, build_args=options.build_args)
    global_args = {
        name: value.text if value is not None else None
        for name, value in scope.items()
        if name not in options.platform_args()
    }
    return Dockerfile(
        split,
        global_args,
        tuple(Stage(i, f, tuple(body), base) for i, (f, body, base) in enumerate(stages)),
        tuple(preamble),
    )


def parse_dockerfile(
    text: str,
    *,
    build_args: Mapping[str, str] | None = None,
    source: str = "Dockerfile",
    options: BuildOptions | None = None,
) -> tuple[FromInstruction, ...]:
    """Every ``FROM`` of ``text``, in order (unusable ones ``UNRESOLVED``, with the reason)."""
    if options is None:
        options = BuildOptions(build_args=dict(build_args or {}))
    return parse_dockerfile_stages(text, options, source=source).froms


def unresolved_fix(entry: FromInstruction) -> str:
    """What a person does about an ``UNRESOLVED`` ``FROM``: its ARGs or its own text."""
    if entry.variables:
        return (
            f"give {', '.join(entry.variables)} a valid value (an ARG default before the first "
            "FROM, or --build-arg NAME=VALUE)"
        )
    return (
        "write FROM [--platform=<p>] <image> [AS <name>] with a valid reference: a lowercase "
        "repository, an optional :tag and an optional @sha256: digest of 64 hex digits"
    )


def require_resolved(froms: tuple[FromInstruction, ...], source: str) -> None:
    """``UsageError`` naming the first ``FROM`` whose reference cannot be formed."""
    for entry in froms:
        if entry.kind is FromKind.UNRESOLVED:
            fix = unresolved_fix(entry)
            raise UsageError(
                f"{source} line {entry.line}: {sentence(entry.problem or 'unusable FROM')}",
                hint=fix[0].upper() + fix[1:] + ".",
            )


def pin_dockerfile_text(
    text: str,
    digests: Mapping[str, str],
    *,
    build_args: Mapping[str, str] | None = None,
    options: BuildOptions | None = None,
) -> str:
    """``text`` with ``@digest`` after each pinnable reference found in ``digests``.

    ``digests`` maps a ``FROM``'s substituted reference to its digest. Already
    pinned references, stages and ``scratch`` are left alone; nothing else changes.
    """
    edits: dict[int, str] = {}
    for entry in parse_dockerfile(text, build_args=build_args, options=options):
        # insert_at is None for stages, scratch, pinned and assembled references.
        if entry.insert_at is not None and (digest := digests.get(entry.reference)):
            edits[entry.insert_at] = f"@{digest}"
    for offset in sorted(edits, reverse=True):
        text = text[:offset] + edits[offset] + text[offset:]
    return text


# -- ARG and FROM -------------------------------------------------------------


def _where(instruction: Instruction, split: DockerfileText) -> str:
    return f"{split.source} line {instruction.line}"


def _declare(
    instruction: Instruction,
    split: DockerfileText,
    span: tuple[int, int],
    scope: dict[str, _Value | None],
    *,
    build_args: Mapping[str, str],
) -> None:
    start, end = span
    word = instruction.text[start:end]
    name, eq, raw = word.partition("=")
    if not _NAME.fullmatch(name):
        return
    if name in build_args:
        scope[name] = _Value(build_args[name], None)  # --build-arg wins; not from the file
    elif not eq:
        scope.setdefault(name, None)
    else:
        base = len(instruction.raw) - len(instruction.text)  # text starts after the keyword
        value_start = start + len(name) + 1
        quote = raw[0] if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'" else None
        if quote == "'":  # single quotes: taken as they are, no substitution
            inner = raw[1:-1]
            scope[name] = _Value(inner, instruction.offsets[base + end - 2] + 1 if inner else None)
        else:
            first, last = (value_start + 1, end - 1) if quote else (value_start, end)
            try:
                value = _expand(instruction, split, base + first, base + last, scope)
            except UsageError:  # a substitution lockd cannot follow: kept as written
                value = _Value(raw, None)
            if not quote and ('"' in value.text or "'" in value.text):
                value = _Value(value.text.replace('"', "").replace("'", ""), None, value.empty)
            scope[name] = value


def _from(
    instruction: Instruction,
    split: DockerfileText,
    scope: Mapping[str, _Value | None],
    stages: Mapping[str, int],
) -> FromInstruction:
    raw = instruction.raw
    spans = words(raw)[1:]
    rest = [raw[a:b] for a, b in spans]
    platform = instruction.flag("platform")
    while rest and rest[0].startswith("--"):
        rest.pop(0)
        spans.pop(0)
    where = _where(instruction, split)
    if not rest or (len(rest) != 1 and (len(rest) != 3 or rest[1].lower() != "as")):
        return FromInstruction(
            instruction.line,
            " ".join(rest),
            "",
            FromKind.UNRESOLVED,
            None,
            platform,
            None,
            problem=f"{excerpt(raw.strip())} is not a FROM instruction lockd can read.",
        )
    stage = rest[2].lower() if len(rest) == 3 else None
    problem: str | None = None
    try:
        value = _expand(instruction, split, spans[0][0], spans[0][1], scope)
    except UsageError as err:
        value, problem = _Value("", None), err.message.removeprefix(f"{where}: ")
    reference = value.text.strip()
    kind, problem = _classify(rest[0], reference, value, stages, problem)
    insert_at = value.end if kind is FromKind.IMAGE and "@" not in reference else None
    return FromInstruction(
        instruction.line,
        rest[0],
        reference,
        kind,
        stage,
        platform,
        insert_at,
        problem=problem,
        variables=value.used,
    )


def _classify(
    image: str,
    reference: str,
    value: _Value,
    stages: Mapping[str, int],
    problem: str | None,
) -> tuple[FromKind, str | None]:
    """What a substituted ``FROM`` reference names, and why it is unusable if it is."""
    if problem is not None:
        return FromKind.UNRESOLVED, problem
    if reference.lower() == "scratch":
        return FromKind.SCRATCH, None
    if reference.lower() in stages:
        return FromKind.STAGE, None
    if not reference:
        return FromKind.UNRESOLVED, f"FROM {image} names no image: {_empty(value)}."
    try:
        parse_reference(reference)
    except UsageError as err:
        why = f"{err.message} ({_empty(value)})" if value.empty else err.message
        return FromKind.UNRESOLVED, why
    return FromKind.IMAGE, None


def _empty(value: _Value) -> str:
    names = ", ".join(value.empty) or "an ARG it uses"
    return f"{'ARG ' if value.empty else ''}{names} has no value"


def _expand(
    instruction: Instruction,
    split: DockerfileText,
    start: int,
    end: int,
    scope: Mapping[str, _Value | None],
) -> _Value:
    """Substitute ARGs in ``instruction.raw[start:end]``, tracking where the value came from."""
    text = instruction.raw
    parts: list[_Value] = []
    literal: list[str] = []
    literal_end = 0
    used: list[str] = []

    def flush() -> None:
        if literal:
            parts.append(_Value("".join(literal), instruction.offsets[literal_end - 1] + 1))
            literal.clear()

    def variable(name: str, value: _Value | None) -> _Value:
        used.extend((name, *(value.used if value else ())))
        if value is None or not value.text:
            return _Value("", None, (name,))
        return value

    pos = start
    while pos < end:
        char = text[pos]
        if char == split.escape and pos + 1 < end and text[pos + 1] == "$":
            literal.append("$")  # an escaped dollar is literal
            pos += 2
            literal_end = pos
            continue
        if char != "$":
            literal.append(char)
            pos += 1
            literal_end = pos
            continue
        if pos + 1 < end and text[pos + 1] == "{":
            close = _closing_brace(text, pos + 2, end)
            match = _BRACED.fullmatch(text, pos + 2, close) if close is not None else None
            if close is None or match is None:
                raise UsageError(
                    f"{_where(instruction, split)}: unsupported substitution in "
                    f"{excerpt(text[start:end])}.",
                    hint="lockd reads $VAR, ${VAR}, ${VAR:-word} and ${VAR:+word}.",
                )
            flush()
            value = _substitute(instruction, split, match, scope)
            used += [match[1], *value.used]
            parts.append(value)
            pos = close + 1
            continue
        name = _NAME.match(text, pos + 1, end)
        if name is None:
            literal.append(char)
            pos += 1
            literal_end = pos
            continue
        flush()
        parts.append(variable(name[0], scope.get(name[0])))
        pos = name.end()
    flush()
    empty = tuple(dict.fromkeys(n for part in parts for n in part.empty))
    names = tuple(dict.fromkeys(used))
    if len(parts) == 1:
        return _Value(parts[0].text, parts[0].end, empty, names)
    return _Value("".join(part.text for part in parts), None, empty, names)


def _substitute(
    instruction: Instruction,
    split: DockerfileText,
    match: re.Match[str],
    scope: Mapping[str, _Value | None],
) -> _Value:
    name, operator = match[1], match[2]
    value = scope.get(name)
    is_set = value is not None if operator in (None, "-", "+") else bool(value and value.text)
    if operator is None:
        return value if value is not None and value.text else _Value("", None, (name,))
    if operator.endswith("-"):
        if is_set and value is not None:
            return value
        return _expand(instruction, split, match.start(3), match.end(3), scope)
    if is_set:
        return _expand(instruction, split, match.start(3), match.end(3), scope)
    return _Value("", None)


def _closing_brace(text: str, pos: int, end: int) -> int | None:
    depth = 1
    while pos < end:
        if text[pos] == "{":
            depth += 1
        elif text[pos] == "}":
            depth -= 1
            if depth == 0:
                return pos
        pos += 1
    return None
