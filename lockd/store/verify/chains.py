"""Walking a chain: parent links, documents against their hashes, where rows file them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from .records import DriftRecord, LocksetRecord, Problem


class _Chained(Protocol):
    @property
    def hash(self) -> str: ...

    @property
    def parent_hash(self) -> str | None: ...


class ChainWalk:
    """One chain walked record by record, in append order: each record's parent link.

    Only hashes are kept (the records already seen and their successors), so a
    chain of any length is walked in memory that grows with its hashes alone.
    """

    def __init__(self, project: str, kind: str) -> None:
        self.project, self.kind = project, kind
        self.count = 0
        self.head: str | None = None
        self._successor: dict[str, str] = {}  # hash -> the record appended after it

    def step(self, record: _Chained) -> Problem | None:
        """The next record: whether its parent is the record appended before it."""
        # The parent link first: a gap means the parent was removed (or rewritten).
        problem = link(self.project, self.kind, record, self.head, self._successor)
        if self.head is not None:
            self._successor.setdefault(self.head, record.hash)
        self.head = record.hash
        self.count += 1
        return problem


def link(
    project: str, kind: str, record: _Chained, previous: str | None, successor: dict[str, str]
) -> Problem | None:
    """Whether ``record`` continues the chain: its parent is the record appended before it."""
    parent, ref = record.parent_hash, record.hash
    if parent == previous:
        return None
    if parent is None:
        return Problem(
            project,
            kind,
            ref,
            "altered",
            "it names no parent although earlier records exist: the chain was cut here",
        )
    if parent in successor:  # an earlier record, which already has its successor
        return Problem(
            project,
            kind,
            ref,
            "forked",
            f"it names {parent[:12]} as its parent, which already has a successor "
            f"({successor[parent][:12]}): the chain forks here (two records appended to one "
            "parent, or a parent link edited)",
        )
    return Problem(
        project,
        kind,
        parent,
        "removed",
        f"{kind} {ref} names it as its parent, but it is not in the database before it "
        "(removed, or altered and re-hashed)",
    )


def parse_document(document: str) -> Mapping[str, Any] | None:
    """A record's document as a mapping, or None when it is not a JSON object."""
    try:
        data = json.loads(document)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parse_record(
    record: LocksetRecord | DriftRecord, fmt: str
) -> tuple[Mapping[str, Any] | None, str]:
    """The document as a mapping, or why it cannot be trusted.

    The sha256 of the stored text is the proof: a document rewritten together
    with its hash breaks its child's parent link instead (the head excepted,
    see the module docstring), so the text is not re-serialized here.
    """
    if hashlib.sha256(record.document.encode()).hexdigest() != record.hash:
        return None, "its document no longer matches its hash"
    data = record.data if record.data is not None else parse_document(record.document)
    if data is None:
        return None, "its document is not a JSON object"
    if data.get("format") != fmt:
        return None, f"its document is not a {fmt} document"
    return data, filing_difference(record, data)


def filing_difference(record: LocksetRecord | DriftRecord, data: Mapping[str, Any]) -> str:
    """Where the row files the document (project, parent) against what the document says."""
    if data.get("parent") != record.parent_hash:
        return (
            f"parent_hash column {short(record.parent_hash)} differs from the document's "
            f"parent {short(data.get('parent'))}"
        )
    if data.get("project") != record.project:
        return (
            f"it is filed under project {record.project!r}, "
            f"its document says {data.get('project')!r}"
        )
    return ""


def utc(value: str | datetime) -> str:
    """One spelling for a moment: ISO, UTC, seconds (how both sides are compared)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds") + "Z"


def short(value: object) -> str:
    return str(value)[:12] if value else "none"


def show(value: object) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "…"
