"""What ``uv pip compile`` says while it resolves: the wheels it picks, as it picks them.

uv 0.13.9 logs through ``tracing``; ``RUST_LOG`` turns on two of its targets
beside ``--quiet`` (which ``--verbose`` may not be combined with): the
resolver's ``Selecting: NAME==VERSION [compatible] (FILENAME)`` and the HTTP
cache's lines that name each URL it asks for (``No cache entry for: URL``,
``Sending fresh HEAD request for: URL``, ``… GET … URL.metadata``). A wheel is
reported once both its selection and its URL were seen, in either order. The
log is a hint: a name uv selected may be backtracked away from later, and what
it locked is read from its output file, never from here. The log lines are
taken out of uv's stderr (``without_log``), so errors read as they did.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

from ..urls import strip_credentials
from .interface import Candidate

# The targets whose debug lines name the picks and the URLs; nothing else is turned on.
RUST_LOG = "uv_resolver::resolver=debug,uv_client::cached_client=debug"

_ANSI = r"(?:\x1b\[[0-9;]*m)*"
_LOG_LINE = re.compile(rf"^{_ANSI}(?:TRACE|DEBUG|INFO|WARN|ERROR){_ANSI} ")
_SELECTING = re.compile(r"Selecting: (\S+?)==(\S+) \[[^\]]*\] \(([^()\s]+\.whl)\)")
_URL = re.compile(r"https?://\S+?\.whl(?=(?:\.metadata)?(?:[\s#?]|$))")


def without_log(stderr: str) -> str:
    """uv's stderr with the tracing lines ``RUST_LOG`` added taken out."""
    return "".join(line for line in stderr.splitlines(keepends=True) if not _LOG_LINE.match(line))


class PickWatcher:
    """Fed uv's stderr line by line; calls ``tell`` once per wheel uv selected whose URL
    it named (one reader thread per uv process: not thread-safe)."""

    def __init__(self, tell: Callable[[Candidate], None]) -> None:
        self._tell = tell
        self._urls: dict[str, str] = {}  # file name -> URL
        self._picked: dict[str, tuple[str, str]] = {}  # file name -> (name, version)
        self._told: set[str] = set()

    def __call__(self, line: str) -> None:
        if not _LOG_LINE.match(line):
            return
        selected = _SELECTING.search(line)
        if selected is not None:
            name, version, filename = selected.groups()
            self._picked.setdefault(filename, (canonicalize_name(name), version))
            self._maybe_tell(filename)
            return
        found = _URL.search(line)
        if found is not None:
            url = strip_credentials(found.group(0))
            filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
            self._urls.setdefault(filename, url)
            self._maybe_tell(filename)

    def _maybe_tell(self, filename: str) -> None:
        if filename in self._told or filename not in self._picked or filename not in self._urls:
            return
        self._told.add(filename)
        name, version = self._picked[filename]
        self._tell(Candidate(name, version, self._urls[filename]))
