"""Snapshot documents stored once by content hash.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

A deployment posts the same environment again and again; each post kept its
own copy of the snapshot (about 100 KiB for 300 dists). From this revision on a
snapshot's content (its canonical JSON without ``taken_at``, which the
``snapshots`` row keeps) is stored once in ``snapshot_documents`` under its
sha256, and each ``snapshots`` row names it. Recorded snapshots are moved
over here, their identical contents merged.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BATCH = 500


def upgrade() -> None:
    # SQLite rebuilds `snapshots` (deployments refer to it): see migrations/env.py.
    op.create_table(
        "snapshot_documents",
        sa.Column("hash", sa.String(), primary_key=True),
        sa.Column("document", sa.Text(), nullable=False),
    )
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("document_hash", sa.String(), nullable=True))
    _move_documents()
    with op.batch_alter_table("snapshots") as batch:
        batch.alter_column("document_hash", existing_type=sa.String(), nullable=False)
        batch.create_foreign_key(
            "fk_snapshots_document_hash", "snapshot_documents", ["document_hash"], ["hash"]
        )
        batch.drop_column("document")


def _move_documents() -> None:
    """Every recorded snapshot's content into ``snapshot_documents``, in batches."""
    import json

    from lockd.store.snapshots import snapshot_content

    bind = op.get_bind()
    stored: set[str] = set()
    last = 0
    while True:
        rows = bind.execute(
            sa.text("SELECT id, document FROM snapshots WHERE id > :last ORDER BY id LIMIT :n"),
            {"last": last, "n": _BATCH},
        ).all()
        if not rows:
            return
        new: dict[str, str] = {}
        links: list[dict[str, Any]] = []
        for row_id, document in rows:
            digest, content = snapshot_content(json.loads(document))
            if digest not in stored:
                new[digest] = content
            links.append({"id": row_id, "h": digest})
        if new:
            bind.execute(
                sa.text("INSERT INTO snapshot_documents (hash, document) VALUES (:h, :d)"),
                [{"h": h, "d": d} for h, d in new.items()],
            )
            stored.update(new)
        bind.execute(sa.text("UPDATE snapshots SET document_hash = :h WHERE id = :id"), links)
        last = rows[-1][0]


def downgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("document", sa.Text(), nullable=True))
    rows = bind.execute(
        sa.text(
            "SELECT s.id, s.taken_at, d.document FROM snapshots s "
            "JOIN snapshot_documents d ON d.hash = s.document_hash"
        )
    ).all()
    from lockd.lockset import canonical_json
    from lockd.store.snapshots import snapshot_document

    for row_id, taken_at, document in rows:
        bind.execute(
            sa.text("UPDATE snapshots SET document = :d WHERE id = :id"),
            {"id": row_id, "d": canonical_json(snapshot_document(document, taken_at))},
        )
    with op.batch_alter_table("snapshots") as batch:
        batch.alter_column("document", existing_type=sa.Text(), nullable=False)
        batch.drop_constraint("fk_snapshots_document_hash", type_="foreignkey")
        batch.drop_column("document_hash")
    op.drop_table("snapshot_documents")
