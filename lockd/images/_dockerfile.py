"""Dockerfile ``FROM`` lines: parse them and pin them to digests (pure, text in, text out).

Handled as BuildKit reads a Dockerfile: the ``escape`` parser directive, line
continuations (with comment and empty lines inside them dropped), heredocs
(whose bodies are not instructions), case-insensitive instructions,
``--platform=``, ``AS name``, stage names used as images, ``scratch``, and
``ARG`` substitution (``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR:+word}``,
``${VAR-word}``, ``${VAR+word}``) with the ARGs declared before the first
``FROM`` — the only ones a ``FROM`` sees.

Pinning appends ``@sha256:…`` right after the text the reference came from:
the image word itself, the default of the one ``ARG`` it names, or the
``:-`` word. A reference assembled from several pieces (``python:${PY}``) has
no single such place and is left for a person to pin. Every other byte stays.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

from lockd.errors import UsageError

from ._reference import parse_reference

_DIRECTIVE = re.compile(r"#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(\S*)\s*")
_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])(.*))?", re.DOTALL)


class FromKind(StrEnum):
    """What a ``FROM`` names."""

    IMAGE = "image"
    STAGE = "stage"  # an earlier build stage, not an image
    SCRATCH = "scratch"  # the empty image, nothing to resolve


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

    @property
    def is_pinned(self) -> bool:
        """The reference already names a digest."""
        return self.kind is FromKind.IMAGE and "@" in self.reference


@dataclass(frozen=True, slots=True)
class _Value:
    text: str
    end: int | None  # offset just after the file text this value is, verbatim; None: assembled


@dataclass(frozen=True, slots=True)
class _Instruction:
    line: int
    text: str  # continuation lines joined
    offsets: tuple[int, ...]  # offset in the file of each character of text
    escape: str
    source: str

    @property
    def where(self) -> str:
        return f"{self.source} line {self.line}"


def parse_dockerfile(
    text: str, *, build_args: Mapping[str, str] | None = None, source: str = "Dockerfile"
) -> tuple[FromInstruction, ...]:
    """Every ``FROM`` of ``text``; ``UsageError`` naming the line when one is malformed."""
    build_args = build_args or {}
    scope: dict[str, _Value | None] = {}  # global ARGs; None = declared without a value
    stages: set[str] = set()
    found: list[FromInstruction] = []
    for instruction in _instructions(text, source):
        words = _words(instruction.text)
        keyword = instruction.text[words[0][0] : words[0][1]].upper()
        if keyword == "ARG" and not found:
            for start, end in words[1:]:
                _declare(instruction, start, end, scope, build_args)
        elif keyword == "FROM":
            entry = _from(instruction, words, scope, stages)
            if entry.stage:
                stages.add(entry.stage)
            found.append(entry)
    return tuple(found)


def pin_dockerfile_text(
    text: str, digests: Mapping[str, str], *, build_args: Mapping[str, str] | None = None
) -> str:
    """``text`` with ``@digest`` after each pinnable reference found in ``digests``.

    ``digests`` maps a ``FROM``'s substituted reference to its digest. Already
    pinned references, stages and ``scratch`` are left alone; nothing else changes.
    """
    edits: dict[int, str] = {}
    for entry in parse_dockerfile(text, build_args=build_args):
        # insert_at is None for stages, scratch, pinned and assembled references.
        if entry.insert_at is not None and (digest := digests.get(entry.reference)):
            edits[entry.insert_at] = f"@{digest}"
    for offset in sorted(edits, reverse=True):
        text = text[:offset] + edits[offset] + text[offset:]
    return text


# -- instructions -------------------------------------------------------------


def _instructions(text: str, source: str) -> Iterator[_Instruction]:
    """Logical instructions, continuation lines joined, each character's offset kept."""
    bom = 1 if text.startswith("\ufeff") else 0  # a UTF-8 BOM is kept, never parsed
    lines = re.findall(r"[^\n]*\n|[^\n]+", text[bom:])  # only \n ends a line, as in BuildKit
    starts = [bom]
    for line in lines:
        starts.append(starts[-1] + len(line))
    escape = _escape_directive(lines)
    index = 0
    while index < len(lines):
        if _is_blank_or_comment(lines[index]):
            index += 1
            continue
        first = index
        chars: list[str] = []
        offsets: list[int] = []
        while True:
            content = lines[index].rstrip("\r\n")
            body = content.rstrip(" \t")
            continued = body.endswith(escape)
            segment = body[:-1] if continued else content
            chars.extend(segment)
            offsets.extend(range(starts[index], starts[index] + len(segment)))
            index += 1
            if not continued:
                break
            while index < len(lines) and _is_blank_or_comment(lines[index]):
                index += 1  # BuildKit drops these inside a continuation
            if index >= len(lines):
                break
        joined = "".join(chars)
        if joined.strip():
            yield _Instruction(first + 1, joined, tuple(offsets), escape, source)
        index = _skip_heredocs(joined, lines, index)


def _escape_directive(lines: list[str]) -> str:
    # Parser directives are only read from the top, before any other line.
    for line in lines:
        match = _DIRECTIVE.fullmatch(line.rstrip("\r\n"))
        if not match:
            break
        if match[1].lower() == "escape" and match[2] in ("\\", "`"):
            return match[2]
    return "\\"


def _is_blank_or_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _skip_heredocs(instruction: str, lines: list[str], index: int) -> int:
    keyword = instruction.split(None, 1)[0].upper()
    if keyword not in ("RUN", "COPY", "ADD"):
        return index
    for match in _HEREDOC.finditer(instruction):
        strip_tabs, word = match[1] == "-", match[3]
        while index < len(lines):
            line = lines[index].rstrip("\r\n")
            index += 1
            if (line.lstrip("\t") if strip_tabs else line) == word:
                break
    return index


def _words(text: str) -> list[tuple[int, int]]:
    """Spans of whitespace-separated words; quotes keep their spaces inside one word."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    quote: str | None = None
    for pos, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
            start = pos if start is None else start
        elif char.isspace():
            if start is not None:
                spans.append((start, pos))
                start = None
        elif start is None:
            start = pos
    if start is not None:
        spans.append((start, len(text)))
    return spans


# -- ARG and FROM -------------------------------------------------------------


def _declare(
    instruction: _Instruction,
    start: int,
    end: int,
    scope: dict[str, _Value | None],
    build_args: Mapping[str, str],
) -> None:
    word = instruction.text[start:end]
    name, eq, raw = word.partition("=")
    if not _NAME.fullmatch(name):
        return
    if name in build_args:
        scope[name] = _Value(build_args[name], None)  # --build-arg wins; not from the file
    elif not eq:
        scope.setdefault(name, None)
    else:
        value_start = start + len(name) + 1
        quote = raw[0] if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'" else None
        if quote == "'":  # single quotes: taken as they are, no substitution
            inner = raw[1:-1]
            scope[name] = _Value(inner, instruction.offsets[end - 2] + 1 if inner else None)
        elif quote:
            scope[name] = _expand(instruction, value_start + 1, end - 1, scope)
        else:
            value = _expand(instruction, value_start, end, scope)
            if '"' in value.text or "'" in value.text:  # quotes inside vanish: not verbatim
                value = _Value(value.text.replace('"', "").replace("'", ""), None)
            scope[name] = value


def _from(
    instruction: _Instruction,
    words: list[tuple[int, int]],
    scope: Mapping[str, _Value | None],
    stages: set[str],
) -> FromInstruction:
    text = instruction.text
    where = instruction.where
    rest = [text[a:b] for a, b in words[1:]]
    spans = words[1:]
    platform: str | None = None
    while rest and rest[0].startswith("--"):
        flag, _, flag_value = rest.pop(0).partition("=")
        spans.pop(0)
        if flag.lower() == "--platform":
            platform = flag_value
    if not rest or (len(rest) != 1 and (len(rest) != 3 or rest[1].lower() != "as")):
        raise UsageError(
            f"{where}: {text.strip()!r} is not a FROM instruction lockd can read.",
            hint="Write it as FROM [--platform=<platform>] <image> [AS <name>].",
        )
    stage = rest[2].lower() if len(rest) == 3 else None
    value = _expand(instruction, spans[0][0], spans[0][1], scope)
    reference = value.text.strip()

    def entry(kind: FromKind, insert_at: int | None = None) -> FromInstruction:
        return FromInstruction(
            instruction.line, rest[0], reference, kind, stage, platform, insert_at
        )

    if reference.lower() == "scratch":
        return entry(FromKind.SCRATCH)
    if reference.lower() in stages:
        return entry(FromKind.STAGE)
    if not reference:
        raise UsageError(
            f"{where}: FROM {rest[0]} names no image: the ARG it uses has no value.",
            hint="Give the ARG a default before the first FROM, or pass it as a build arg.",
        )
    try:
        parse_reference(reference)
    except UsageError as err:
        raise UsageError(f"{where}: {err.message}", hint=err.hint) from None
    return entry(FromKind.IMAGE, None if "@" in reference else value.end)


def _expand(
    instruction: _Instruction, start: int, end: int, scope: Mapping[str, _Value | None]
) -> _Value:
    """Substitute ARGs in ``instruction.text[start:end]``, tracking where the value came from."""
    text = instruction.text
    parts: list[_Value] = []
    literal: list[str] = []
    literal_end = 0

    def flush() -> None:
        if literal:
            parts.append(_Value("".join(literal), instruction.offsets[literal_end - 1] + 1))
            literal.clear()

    pos = start
    while pos < end:
        char = text[pos]
        if char == instruction.escape and pos + 1 < end and text[pos + 1] == "$":
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
                    f"{instruction.where}: unsupported substitution in {text[start:end]!r}.",
                    hint="lockd reads $VAR, ${VAR}, ${VAR:-word} and ${VAR:+word}.",
                )
            flush()
            parts.append(_substitute(instruction, match, scope))
            pos = close + 1
            continue
        name = _NAME.match(text, pos + 1, end)
        if name is None:
            literal.append(char)
            pos += 1
            literal_end = pos
            continue
        flush()
        parts.append(scope.get(name[0]) or _Value("", None))
        pos = name.end()
    flush()
    if len(parts) == 1:
        return parts[0]
    return _Value("".join(part.text for part in parts), None)


def _substitute(
    instruction: _Instruction, match: re.Match[str], scope: Mapping[str, _Value | None]
) -> _Value:
    name, operator = match[1], match[2]
    value = scope.get(name)
    is_set = value is not None if operator in (None, "-", "+") else bool(value and value.text)
    if operator is None:
        return value or _Value("", None)
    if operator.endswith("-"):
        if is_set and value is not None:
            return value
        return _expand(instruction, match.start(3), match.end(3), scope)
    if is_set:
        return _expand(instruction, match.start(3), match.end(3), scope)
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
