"""Dockerfile instructions, read as BuildKit reads them (pure, text in, data out).

Parser directives at the top (``# syntax=``, ``# escape=``, ``# check=``);
line continuations with the escape character, comment and empty lines inside a
continuation dropped; heredocs (``<<EOF``, ``<<-EOF``, ``<<"EOF"``, several per
instruction) on ``RUN``, ``COPY`` and ``ADD``, whose bodies are not
instructions; case-insensitive keywords; leading ``--flag[=value]`` words
(``--mount``, ``--chmod``, ``--from``, ``--platform``, ``--checksum``…); the
exec (JSON) form. A UTF-8 BOM is kept and skipped; only ``\\n`` ends a line.

Every character of an instruction keeps its offset in the file, so that
``_stages`` can insert a digest into the exact byte a value came from. Nothing
here rejects a file: what cannot be read as an instruction is kept as one with
an unknown keyword, for the rules to judge.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

_DIRECTIVE = re.compile(r"#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*")
# "<<<" is a shell here-string, not a heredoc.
_HEREDOC = re.compile(r"(?<!<)<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_.-]*)\2")
_HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})
_FLAG = re.compile(r"--([A-Za-z][A-Za-z0-9-]*)(?:=(.*))?", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Heredoc:
    """One heredoc of an instruction: ``<<NAME`` and its body."""

    name: str
    body: str  # the lines between the marker line and the terminator, "\n"-joined
    strip_tabs: bool  # <<-NAME
    quoted: bool  # <<"NAME": no variable expansion in the body
    line: int  # 1-based line of the body's first line


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction: its keyword, leading flags, arguments and heredocs."""

    line: int  # 1-based line where it starts
    end_line: int  # last line, heredoc bodies included
    keyword: str  # upper case; what BuildKit would reject is kept as written
    text: str  # everything after the keyword, continuation lines joined
    flags: tuple[tuple[str, str | None], ...]  # ("mount", "type=cache,target=/root/.cache")
    arguments: str  # text after the flags
    heredocs: tuple[Heredoc, ...] = ()
    # Offset in the file of each character of the joined line (keyword included).
    offsets: tuple[int, ...] = field(default=(), repr=False, compare=False)
    raw: str = field(default="", repr=False, compare=False)  # the joined line itself

    def flag(self, name: str) -> str | None:
        """The value of the last ``--name=value`` flag; ``""`` for a bare ``--name``."""
        found = [v if v is not None else "" for n, v in self.flags if n == name.lower()]
        return found[-1] if found else None

    def flag_values(self, name: str) -> tuple[str, ...]:
        """Every value of a repeatable flag (``--mount``)."""
        return tuple(v or "" for n, v in self.flags if n == name.lower())

    @property
    def exec_form(self) -> tuple[str, ...] | None:
        """The JSON array of ``CMD ["a", "b"]`` (``HEALTHCHECK CMD [...]`` too); ``None`` in
        shell form."""
        text = self.arguments.strip()
        if self.keyword == "HEALTHCHECK" and text[:3].upper() == "CMD":
            text = text[3:].strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        return None

    @property
    def script(self) -> str:
        """What a ``RUN`` executes: the command line, then any heredoc bodies."""
        return "\n".join([self.arguments, *(h.body for h in self.heredocs)])


@dataclass(frozen=True, slots=True)
class DockerfileText:
    """A Dockerfile split into instructions, with its directives and comments."""

    source: str
    directives: Mapping[str, str]  # lower-cased names: "syntax", "escape", "check"
    escape: str
    instructions: tuple[Instruction, ...]
    comments: Mapping[int, str]  # 1-based line -> the comment text after "#"


def split_instructions(text: str, source: str = "Dockerfile") -> DockerfileText:
    """Split ``text`` into instructions; never raises."""
    bom = 1 if text.startswith("\ufeff") else 0  # a UTF-8 BOM is kept, never parsed
    lines = re.findall(r"[^\n]*\n|[^\n]+", text[bom:])
    starts = [bom]
    for line in lines:
        starts.append(starts[-1] + len(line))
    directives = _directives(lines)
    escape = directives.get("escape", "\\")
    escape = escape if escape in ("\\", "`") else "\\"
    comments = {
        number + 1: line.strip()[1:].strip()
        for number, line in enumerate(lines)
        if line.strip().startswith("#")
    }
    instructions = tuple(_logical(lines, starts, escape))
    # Comment-looking lines inside heredoc bodies are script, not comments.
    for instruction in instructions:
        for doc in instruction.heredocs:
            for number in range(doc.line, doc.line + doc.body.count("\n") + 1):
                comments.pop(number, None)
    return DockerfileText(source, directives, escape, instructions, comments)


def _directives(lines: list[str]) -> dict[str, str]:
    # Parser directives are only read from the top, before any other line.
    found: dict[str, str] = {}
    for line in lines:
        match = _DIRECTIVE.fullmatch(line.rstrip("\r\n"))
        if not match or match[1].lower() in found:
            break
        found[match[1].lower()] = match[2]
    return found


def _is_blank_or_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _logical(lines: list[str], starts: list[int], escape: str) -> Iterator[Instruction]:
    """Logical instructions, continuation lines joined, each character's offset kept."""
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
        if not joined.strip():
            continue
        last = index
        heredocs, index = _heredocs(joined, lines, index)
        yield _instruction(
            joined, tuple(offsets), first + 1, (index if heredocs else last), heredocs
        )


def _heredocs(joined: str, lines: list[str], index: int) -> tuple[tuple[Heredoc, ...], int]:
    keyword = joined.split(None, 1)[0].upper()
    if keyword not in _HEREDOC_KEYWORDS:
        return (), index
    found: list[Heredoc] = []
    for match in _HEREDOC.finditer(joined):
        strip_tabs, quoted, name = match[1] == "-", bool(match[2]), match[3]
        body: list[str] = []
        start = index + 1
        while index < len(lines):
            line = lines[index].rstrip("\r\n")
            index += 1
            line = line.lstrip("\t") if strip_tabs else line
            if line == name:
                break
            body.append(line)
        found.append(Heredoc(name, "\n".join(body), strip_tabs, quoted, start))
    return tuple(found), index


def _instruction(
    joined: str,
    offsets: tuple[int, ...],
    line: int,
    end_line: int,
    heredocs: tuple[Heredoc, ...],
) -> Instruction:
    stripped = joined.lstrip()
    keyword_start = len(joined) - len(stripped)
    keyword, _, _ = stripped.partition(" ")
    keyword = keyword.split("\t", 1)[0]
    rest_start = keyword_start + len(keyword)
    text = joined[rest_start:]
    flags: list[tuple[str, str | None]] = []
    position = 0
    for start, end in words(text):
        match = _FLAG.fullmatch(text, start, end)
        if match is None:
            break
        flags.append((match[1].lower(), match[2]))
        position = end
    arguments = text[position:].strip() if flags else text.strip()
    return Instruction(
        line=line,
        end_line=max(line, end_line),
        keyword=keyword.upper(),
        text=text,
        flags=tuple(flags),
        arguments=arguments,
        heredocs=heredocs,
        offsets=offsets,
        raw=joined,
    )


def words(text: str) -> list[tuple[int, int]]:
    """Spans of whitespace-separated words; quotes keep their spaces inside one word
    (in double quotes, a backslash escapes the next character: ``"a \\" b"``)."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    quote: str | None = None
    escaped = False
    for pos, char in enumerate(text):
        if escaped:
            escaped = False
        elif quote:
            escaped = quote == '"' and char == "\\"
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


def key_values(arguments: str, *, legacy: bool = False) -> tuple[tuple[str, str | None], ...]:
    """``ENV``/``LABEL``/``ARG`` pairs: ``A=1 B="two words"``; with ``legacy``, ``ENV A value``.

    Quotes are removed from values; ``None`` is an ``ARG`` declared without a default.
    """
    spans = words(arguments)
    if not spans:
        return ()
    first = arguments[spans[0][0] : spans[0][1]]
    if legacy and "=" not in first and len(spans) > 1:
        return ((first, _unquote(arguments[spans[0][1] :].strip())),)  # "ENV NAME a value"
    pairs: list[tuple[str, str | None]] = []
    for start, end in spans:
        name, eq, value = arguments[start:end].partition("=")
        pairs.append((_unquote(name), _unquote(value) if eq else None))
    return tuple(pairs)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text.replace('"', "").replace("'", "") if ('"' in text or "'" in text) else text
