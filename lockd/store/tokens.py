"""API tokens of ``lockd serve``: rows hold a token's sha256, never the token.

A token is ``lockd_`` followed by 32 random bytes (url-safe base64), so its
hash cannot be reversed by guessing: a plain sha256 is enough (a slow password
hash protects low-entropy secrets, and would cost every request its time) and
lets a request find its token through a unique index. The repository compares
the stored hash with the presented one in constant time all the same.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlmodel import Session, col, select

from .locksets import iso
from .tables import TokenRow

SCOPES = ("read", "ingest", "admin")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What is known about a token besides the token itself."""

    name: str
    scope: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None

    def state(self, now: datetime) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= iso(now):
            return "expired"
        return "active"

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "state": self.state(now),
        }


def _info(row: TokenRow) -> TokenInfo:
    return TokenInfo(
        row.name,
        row.scope,
        iso(row.created_at),
        iso(row.expires_at) if row.expires_at else None,
        iso(row.revoked_at) if row.revoked_at else None,
    )


def name_taken(session: Session, name: str) -> bool:
    return session.exec(select(TokenRow.id).where(TokenRow.name == name)).first() is not None


def add(session: Session, name: str, scope: str, token_hash: str, expires: datetime | None) -> None:
    session.add(
        TokenRow(
            name=name,
            scope=scope,
            token_hash=token_hash,
            created_at=datetime.now(UTC),
            expires_at=expires,
        )
    )


def listed(session: Session) -> list[TokenInfo]:
    return [_info(row) for row in session.exec(select(TokenRow).order_by(col(TokenRow.id)))]


def revoke(session: Session, name: str) -> TokenInfo | None:
    """Mark the token revoked (kept for the record); None if there is no such name."""
    row = session.exec(select(TokenRow).where(TokenRow.name == name)).first()
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.add(row)
    session.flush()
    return _info(row)


_TOKENS: sa.Table = TokenRow.__table__  # type: ignore[attr-defined]
# Built once: a statement built per request costs more than SQLite takes to answer it.
_BY_HASH = sa.select(_TOKENS).where(_TOKENS.c.token_hash == sa.bindparam("token_hash"))


def lookup(conn: Connection, token_hash: str) -> TokenInfo | None:
    """The token whose hash this is (revoked and expired ones too: the caller decides).

    Core, not ORM: it runs for every request.
    """
    row = conn.execute(_BY_HASH, {"token_hash": token_hash}).first()
    if row is None or not hmac.compare_digest(row.token_hash, token_hash):
        return None
    return _info(TokenRow.model_construct(**row._asdict()))
