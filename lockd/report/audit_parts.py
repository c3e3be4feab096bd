"""An audit report written in parts, so that no format ever holds the whole report.

Every format (:class:`ReportParts`) renders two things: the *frame* (the head
with the chain verdict and the summary, and around each project's lockset
sections its head and tail) from the small report model, and one lockset's
*section* from its :class:`~lockd.report.audit_model.LocksetEntry`. The
sections are rendered as the locksets are read (oldest first) into a spool
file; :meth:`SectionSpool.write` writes the frame with each project's sections
copied back newest first. The newest section of a project is rendered last
(the HTML page opens it): it is held until then, not spooled.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import jinja2

    from .audit_model import AuditReport, LocksetEntry


class ReportParts(Protocol):
    """One format of the audit report."""

    separator: str  # between two lockset sections

    def frame(self, report: AuditReport) -> list[str]:
        """The text before the first project's sections, between each project's sections and
        the next project's, and after the last (``len(report.projects) + 1`` parts)."""

    def lockset(self, entry: LocksetEntry, first: bool) -> str:
        """One lockset's section (``first``: the project's newest)."""


class TemplateParts:
    """A format whose parts are the macros of one Jinja template: ``head(report)``,
    ``project_head(project, index)``, ``lockset(entry, first)``,
    ``project_tail(project, index)`` and ``foot(report)`` (``index``: from 1)."""

    separator = ""

    def __init__(self, template: jinja2.Template) -> None:
        self._macros: Any = template.module

    def frame(self, report: AuditReport) -> list[str]:
        macros = self._macros
        parts = [str(macros.head(report))]
        for index, project in enumerate(report.projects, 1):
            parts[-1] += str(macros.project_head(project, index))
            parts.append(str(macros.project_tail(project, index)))
        parts[-1] += str(macros.foot(report))
        return parts

    def lockset(self, entry: LocksetEntry, first: bool) -> str:
        return str(self._macros.lockset(entry, first))


class JsonReport:
    """``lockd.audit/1``: the frame is the document with a marker for each project's list of
    locksets, split there (byte for byte what one ``json.dumps`` of it all would write)."""

    separator = ", "

    def frame(self, report: AuditReport) -> list[str]:
        marker = "\x00locksets-" + secrets.token_hex(16)  # in no recorded text
        # Compact: indenting switches json to its pure-Python encoder, 5x slower on
        # a large record (pipe through `jq` to read it).
        text = _dumps(report.to_dict(lambda _: marker)) + "\n"
        first, *pieces = text.split(_dumps(marker))
        if not pieces:  # no project
            return [first]
        return [first + "[", *(f"]{piece}[" for piece in pieces[:-1]), "]" + pieces[-1]]

    def lockset(self, entry: LocksetEntry, first: bool) -> str:
        return _dumps(entry.to_dict())


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class SectionSpool:
    """Lockset sections rendered as they come (each project's oldest first) into ``spool``,
    and the whole report written out at the end."""

    def __init__(self, parts: ReportParts, spool: IO[bytes]) -> None:
        self._parts, self._spool = parts, spool
        self._newest: dict[str, LocksetEntry] = {}  # per project, not spooled yet
        self._spans: dict[str, list[tuple[int, int]]] = {}  # per project: (offset, length)
        self._end = 0

    def add(self, entry: LocksetEntry) -> None:
        """The next lockset section of its project (newer than the ones before)."""
        project = entry.lockset.project
        older = self._newest.get(project)
        self._newest[project] = entry
        if older is not None:
            data = self._parts.lockset(older, first=False).encode()
            self._spool.write(data)
            self._spans.setdefault(project, []).append((self._end, len(data)))
            self._end += len(data)

    def write(self, report: AuditReport, out: IO[bytes]) -> None:
        """The report: its frame, with each project's sections newest first."""
        self._spool.flush()
        fd = self._spool.fileno()
        separator = self._parts.separator.encode()
        frame = self._parts.frame(report)
        out.write(frame[0].encode())
        for project, after in zip(report.projects, frame[1:], strict=True):
            newest = self._newest.get(project.name)
            if newest is not None:
                out.write(self._parts.lockset(newest, first=True).encode())
            for offset, length in reversed(self._spans.get(project.name, ())):
                out.write(separator)
                out.write(_pread(fd, length, offset))
            out.write(after.encode())


def _pread(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    while len(data) < length:  # a short read (never seen on a regular file)
        more = os.pread(fd, length - len(data), offset + len(data))
        if not more:
            raise OSError(f"the audit spool file ends before offset {offset + length}")
        data += more
    return data


__all__ = ["JsonReport", "ReportParts", "SectionSpool", "TemplateParts"]
