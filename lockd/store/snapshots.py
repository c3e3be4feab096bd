"""Snapshot documents: each content stored once, under its sha256.

A deployment posts the same environment again and again; what changes between
two posts is ``taken_at``, which the ``snapshots`` row keeps. The rest, the
content, is stored once in ``snapshot_documents`` (canonical JSON, keyed by its
sha256: ``audit verify`` recomputes the key) and each ``snapshots`` row names it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa

from ..drift.standing import DEPLOYMENT_PREFIX, IMAGE_PREFIX, LOCAL
from ..lockset import canonical_json, sha256_text
from .locksets import iso
from .tables import SnapshotDocumentRow, SnapshotRow

DOCUMENTS: sa.Table = SnapshotDocumentRow.__table__  # type: ignore[attr-defined]
SNAPSHOTS: sa.Table = SnapshotRow.__table__  # type: ignore[attr-defined]


class SnapshotRef(NamedTuple):
    """A recorded snapshot: its ``snapshots`` row and its content's hash (the content alone
    decides a comparison; many rows share one content)."""

    id: int
    content: str


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """One snapshot as a drift report records it: which target, when, and its content."""

    target: str
    taken_at: str  # ISO 8601
    hash: str  # the sha256 of its content
    content: str | None = None  # None: known to be stored already (a deployment's baseline)

    @classmethod
    def of(cls, target: str, snapshot: Mapping[str, Any], default_time: str) -> SnapshotRecord:
        digest, content = snapshot_content(snapshot)
        return cls(target, str(snapshot.get("taken_at", default_time)), digest, content)


def snapshot_content(snapshot: Mapping[str, Any]) -> tuple[str, str]:
    """(sha256, canonical JSON) of a snapshot's content: the snapshot without ``taken_at``."""
    content = canonical_json({k: v for k, v in snapshot.items() if k != "taken_at"})
    return sha256_text(content), content


def snapshot_document(content: str, taken_at: datetime | str) -> dict[str, Any]:
    """A stored snapshot as recorded: its content with its ``taken_at`` back (UTC, to the
    second, as the ``snapshots`` row keeps it)."""
    if not isinstance(taken_at, datetime):  # a raw query's text: "2026-11-30 10:00:00.000000"
        taken_at = datetime.fromisoformat(taken_at.replace("Z", "+00:00"))
    return {**json.loads(content), "taken_at": iso(taken_at)}  # a naive time is UTC


def store_content(conn: sa.Connection, digest: str, content: str) -> None:
    """Store a snapshot's content unless it is stored already (its hash is the key)."""
    dialect = conn.dialect.name
    if dialect in {"sqlite", "postgresql"}:
        from sqlalchemy.dialects import postgresql, sqlite

        module: Any = sqlite if dialect == "sqlite" else postgresql
        statement = module.insert(DOCUMENTS).values(hash=digest, document=content)
        conn.execute(statement.on_conflict_do_nothing(index_elements=["hash"]))
        return
    if conn.execute(sa.select(DOCUMENTS.c.hash).where(DOCUMENTS.c.hash == digest)).first():
        return
    conn.execute(sa.insert(DOCUMENTS).values(hash=digest, document=content))


def stored_snapshot(
    conn: sa.Connection, where: sa.ColumnElement[bool]
) -> tuple[dict[str, Any], str] | None:
    """The newest snapshot row matching ``where`` (over ``snapshots``), as recorded, and
    its content's hash."""
    row = conn.execute(
        sa.select(DOCUMENTS.c.document, SNAPSHOTS.c.taken_at, DOCUMENTS.c.hash)
        .join_from(SNAPSHOTS, DOCUMENTS)
        .where(where)
        .order_by(SNAPSHOTS.c.id.desc())
        .limit(1)
    ).first()
    return (snapshot_document(row[0], row[1]), row[2]) if row else None


def report_origin(report_id: sa.ColumnElement[int]) -> sa.ColumnElement[str]:
    """``drift.standing.origin_of`` in SQL, from a report's ``snapshots`` rows: the deployment
    that posted its snapshot, else the image key it read, else the local checks."""
    rows = SNAPSHOTS.c
    posted = (
        sa.select(sa.func.min(sa.literal(DEPLOYMENT_PREFIX) + rows.deployment))
        .where(rows.drift_report_id == report_id, rows.deployment.is_not(None))
        .scalar_subquery()
    )
    image = (
        sa.select(sa.func.min(rows.target))
        .where(rows.drift_report_id == report_id, rows.target.like(IMAGE_PREFIX + "%"))
        .scalar_subquery()
    )
    return sa.func.coalesce(posted, image, sa.literal(LOCAL))
