"""Reading one input file: inside the project, a regular file, bounded, UTF-8.

Input files come from pull requests as often as from their authors, and an
include (``-r ../x``) can point anywhere. Every path is resolved (symbolic
links followed) and must then lie inside the project directory; only regular
files are opened (a FIFO would block, ``/dev/zero`` never ends), at most
``MAX_INPUT_BYTES`` are read, and the file is checked to be the one that was
inspected. A refusal names the path as it was written, never the content of
the file, so nothing outside the project is ever echoed.

What this cannot promise: a file inside the project that changes between two
compiles is read as it is at the time, like any other input.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from ..errors import UsageError

MAX_INPUT_BYTES = 10 * 1024 * 1024  # far above any real requirements file or pyproject.toml

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


@dataclass(frozen=True, slots=True)
class InputText:
    """The decoded text of an input file and the digest of the bytes read."""

    path: Path  # resolved
    relative: str  # posix path relative to the project root
    text: str
    sha256: str


def read_input(path: Path, root: Path, *, shown: str | None = None) -> InputText:
    """Read ``path`` if it is a regular file inside ``root``; ``shown`` names it in errors.

    Raises :class:`UsageError` (one paragraph, no file content) otherwise.
    """
    shown = shown or str(path)
    raw = read_input_bytes(path, root, shown=shown)
    return InputText(
        raw.path, raw.relative, decode_input(raw.data, shown), hashlib.sha256(raw.data).hexdigest()
    )


@dataclass(frozen=True, slots=True)
class InputBytes:
    """The bytes of an input file, as read (see :func:`read_input_bytes`)."""

    path: Path  # resolved
    relative: str  # posix path relative to the project root (the path as given without one)
    data: bytes


def read_input_bytes(
    path: Path,
    root: Path | None,
    *,
    shown: str | None = None,
    limit: int = MAX_INPUT_BYTES,
    kind: str = "Input file",
) -> InputBytes:
    """The bytes of ``path``: a regular file of at most ``limit`` bytes, inside ``root``.

    ``root=None`` is for a path the person running lockd typed on the command line
    (``lockd images pin ../app/Dockerfile``): it may lie anywhere, but a FIFO, a
    device or an endless file is still refused. A path named by a file that may come
    from a pull request (``lockd.json``, an include) always has a root. ``kind``
    names the file in messages ("Input file", "The Dockerfile", "The snapshot").
    """
    shown = shown or str(path)
    real = path.resolve()
    project = root.resolve() if root is not None else None
    if project is not None and not real.is_relative_to(project):
        link = " (through a symbolic link)" if _has_link(path) else ""
        raise UsageError(
            f"{shown} lies outside the project{link}: lockd reads inputs and their -r/-c "
            f"includes only from inside {project}.",
            hint="Copy the file into the project, or run lockd from a directory that "
            "contains every input.",
        )
    try:
        before = real.stat()
    except FileNotFoundError:
        raise UsageError(f"{kind} {shown} does not exist.") from None
    except OSError as exc:
        raise UsageError(f"Cannot read {kind.lower()} {shown}: {exc.strerror}.") from None
    _check_regular(before, f"{kind} {shown}", limit)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise UsageError(f"Cannot read {kind.lower()} {shown}: {exc.strerror}.") from None
    with os.fdopen(fd, "rb") as handle:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
            raise UsageError(f"{kind} {shown} was replaced while lockd read it.")
        _check_regular(now, f"{kind} {shown}", limit)
        data = handle.read(limit + 1)
    if len(data) > limit:
        _too_large(f"{kind} {shown}", limit)
    relative = real.relative_to(project).as_posix() if project is not None else str(path)
    return InputBytes(real, relative, data)


def read_lossless_text(path: Path, root: Path | None, *, kind: str) -> str:
    """The text of ``path`` (read as :func:`read_input_bytes` does), decoded so that bytes
    which are not UTF-8 survive a round trip: a Dockerfile is rewritten byte for byte."""
    return read_input_bytes(path, root, kind=kind).data.decode("utf-8", "surrogateescape")


def decode_input(data: bytes, shown: str) -> str:
    """UTF-8 text, with an optional UTF-8 byte-order mark (pip accepts one too)."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise _encoding(shown, "is UTF-32 encoded", "UTF-32")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _encoding(shown, "is UTF-16 encoded", "UTF-16")
    data = data.removeprefix(codecs.BOM_UTF8)
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise _encoding(
            shown,
            f"contains NUL bytes (line {line}): it is UTF-16 without a byte-order mark "
            "or not a text file",
            "UTF-16LE",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _encoding(shown, f"is not valid UTF-8 (line {line})", None) from None


def _encoding(shown: str, problem: str, source: str | None) -> UsageError:
    how = f" (iconv -f {source} -t UTF-8)" if source else ""
    return UsageError(
        f"Input file {shown} {problem}; lockd reads UTF-8 (a UTF-8 byte-order mark is fine).",
        hint=f"Save it as UTF-8{how}.",
    )


def _check_regular(info: os.stat_result, shown: str, limit: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        raise UsageError(
            f"{shown} is {kind}, not a regular file; lockd reads inputs only from regular files.",
            hint="Name the file itself (a requirements file, pyproject.toml, a Dockerfile…).",
        )
    if info.st_size > limit:
        _too_large(shown, limit)


def _too_large(shown: str, limit: int) -> NoReturn:
    raise UsageError(
        f"{shown} is larger than {limit // (1024 * 1024)} MiB, the most "
        "lockd reads from one input file of its kind.",
        hint="Check that the path names the file you meant; split a generated input file.",
    )


def _has_link(path: Path) -> bool:
    absolute = path.absolute()
    return any(p.is_symlink() for p in (absolute, *absolute.parents))
